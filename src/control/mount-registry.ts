import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Running mounts, one small JSON file each in the user's runtime directory,
 * so `umount`, `status` and `warm` find the daemon of a mount point.
 */
export interface MountRecord {
  mountpoint: string;
  pid: number;
  infoHash: string;
  name: string;
  logFile: string;
  /** Unix socket of the control channel. */
  socket: string;
  startedAt: string;
}

export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_RUNTIME_DIR'];
  return xdg && path.isAbsolute(xdg) ? path.join(xdg, 'btmount') : path.join(tmpdir(), `btmount-${process.getuid?.() ?? 0}`);
}

function keyOf(mountpoint: string): string {
  return createHash('sha1').update(path.resolve(mountpoint)).digest('hex').slice(0, 16);
}

export function recordPath(mountpoint: string): string {
  return path.join(runtimeDir(), `${keyOf(mountpoint)}.json`);
}

export function socketPath(mountpoint: string): string {
  return path.join(runtimeDir(), `${keyOf(mountpoint)}.sock`);
}

export async function writeRecord(record: MountRecord): Promise<void> {
  await mkdir(runtimeDir(), { recursive: true, mode: 0o700 });
  await writeFile(recordPath(record.mountpoint), JSON.stringify(record, null, 2), { mode: 0o600 });
}

export async function readRecord(mountpoint: string): Promise<MountRecord | undefined> {
  try {
    return JSON.parse(await readFile(recordPath(mountpoint), 'utf8')) as MountRecord;
  } catch {
    return undefined;
  }
}

export async function removeRecord(mountpoint: string): Promise<void> {
  await rm(recordPath(mountpoint), { force: true });
}
