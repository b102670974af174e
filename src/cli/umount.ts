import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { readRecord, removeRecord, type MountRecord } from '../control/mount-registry.js';
import { MountBusyError, fusermountUnmount, processesUsing } from '../fs/mountpoint.js';
import { BTMOUNT_FSTYPE, fuseOwner, mountEntry, type MountEntry } from '../mount-table.js';
import { isAlive } from '../process-alive.js';
import { UserError } from '../user-error.js';

const STOP_WAIT_MS = 15_000;
/** How many processes a "busy" message names. */
const NAMED_USERS = 5;

export function registerUmount(program: Command): void {
  program
    .command('umount')
    .alias('unmount')
    .description('unmount a btmount directory and stop its daemon (also cleans up after a daemon that died)')
    .argument('<mountpoint>')
    .option('--lazy', 'detach the mount even while it is in use (processes using it keep what they have open)')
    .action(async (mountpoint: string, opts: { lazy?: boolean }) => {
      await umount(path.resolve(mountpoint), opts.lazy ?? false);
    });
}

/**
 * Unmounts first, then stops the daemon: a busy mount is left mounted and
 * served, never half torn down. Only btmount's own mounts are touched, and a
 * user only their own (root anyone's).
 */
async function umount(mountpoint: string, lazy: boolean): Promise<void> {
  const action = `cannot unmount ${mountpoint}`;
  const record = await readRecord(mountpoint);
  const entry = await mountEntry(mountpoint);
  if (entry) {
    refuseForeign(entry, action);
    try {
      await fusermountUnmount(mountpoint, lazy);
    } catch (err) {
      if (err instanceof MountBusyError) throw new UserError(action, await busyReason(mountpoint));
      throw new UserError(action, (err as Error).message);
    }
  } else if (!record) {
    throw new UserError(action, 'not a btmount mount point');
  }
  if (record && isAlive(record.pid)) await stopDaemon(record, action);
  else if (entry && record) process.stderr.write(`btmount: ${mountpoint}: removed a mount whose daemon was gone\n`);
  else if (entry) process.stderr.write(`btmount: ${mountpoint}: unmounted (not mounted from this user's btmount registry: its daemon, if any, exits by itself)\n`);
  await removeRecord(mountpoint);
}

/** Anything but a btmount mount, or another user's btmount mount when not root, is refused. */
function refuseForeign(entry: MountEntry, action: string): void {
  if (entry.fstype !== BTMOUNT_FSTYPE) {
    throw new UserError(action, `it is a ${entry.fstype} mount (${entry.source}), not a btmount one; nothing was done`);
  }
  const uid = process.getuid?.() ?? 0;
  const owner = fuseOwner(entry);
  if (uid !== 0 && owner !== undefined && owner !== uid) {
    throw new UserError(action, `it was mounted by uid ${owner}; only that user or root can unmount it`);
  }
}

async function busyReason(mountpoint: string): Promise<string> {
  const users = await processesUsing(mountpoint).catch(() => []);
  const named = users.slice(0, NAMED_USERS).map((u) => `${u.command} (pid ${u.pid})`);
  if (users.length > NAMED_USERS) named.push(`${users.length - NAMED_USERS} more`);
  const by = named.length > 0 ? ` (in use by ${named.join(', ')})` : '';
  return `it is busy${by}; close what uses it, or run btmount umount --lazy ${mountpoint} to detach it now`;
}

/** SIGTERM: the daemon saves its cache state and exits (its mount is gone already, or goes now). */
async function stopDaemon(record: MountRecord, action: string): Promise<void> {
  process.kill(record.pid, 'SIGTERM');
  const deadline = Date.now() + STOP_WAIT_MS;
  while (isAlive(record.pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(record.pid)) {
    throw new UserError(action, `daemon pid ${record.pid} did not stop within ${STOP_WAIT_MS / 1000} s (see ${record.logFile})`);
  }
}
