import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { readRecord, removeRecord } from '../control/mount-registry.js';
import { isAlive } from '../process-alive.js';
import { fusermountUnmount, isMounted } from '../fs/mountpoint.js';
import { UserError } from '../user-error.js';

const STOP_WAIT_MS = 15_000;

export function registerUmount(program: Command): void {
  program
    .command('umount')
    .alias('unmount')
    .description('unmount a btmount directory and stop its daemon (also cleans up after a daemon that died)')
    .argument('<mountpoint>')
    .action(async (mountpoint: string) => {
      await umount(path.resolve(mountpoint));
    });
}

async function umount(mountpoint: string): Promise<void> {
  const record = await readRecord(mountpoint);
  if (record && isAlive(record.pid)) {
    // The daemon unmounts and saves its cache state on SIGTERM.
    process.kill(record.pid, 'SIGTERM');
    const deadline = Date.now() + STOP_WAIT_MS;
    while (isAlive(record.pid) && Date.now() < deadline) await sleep(100);
    if (isAlive(record.pid)) {
      throw new UserError(`cannot unmount ${mountpoint}`, `daemon pid ${record.pid} did not stop within ${STOP_WAIT_MS / 1000} s (see ${record.logFile})`);
    }
  }
  if (await isMounted(mountpoint)) {
    // No live daemon behind it (killed, crashed) or it left the mount behind: detach it.
    try {
      await fusermountUnmount(mountpoint, true);
    } catch (err) {
      throw new UserError(`cannot unmount ${mountpoint}`, (err as Error).message.trim());
    }
    process.stderr.write(`btmount: ${mountpoint}: removed a mount whose daemon was gone\n`);
  } else if (!record) {
    throw new UserError(`cannot unmount ${mountpoint}`, 'not a btmount mount point');
  }
  await removeRecord(mountpoint);
}
