import { execFile } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Why a directory cannot be mounted on, in words for the user; undefined when it can. */
export async function mountpointProblem(mountpoint: string): Promise<string | undefined> {
  if (await isMounted(mountpoint)) return `${mountpoint} is already a mount point (btmount umount ${mountpoint} first)`;
  let info;
  try {
    info = await stat(mountpoint);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${mountpoint} does not exist (create the directory first)`;
    if (code === 'ENOTCONN') return `${mountpoint} is a dead mount (run btmount umount ${mountpoint})`;
    return `${mountpoint}: ${(err as Error).message}`;
  }
  if (!info.isDirectory()) return `${mountpoint} is not a directory`;
  if ((await readdir(mountpoint)).length > 0) return `${mountpoint} is not an empty directory`;
  return undefined;
}

/** Mount points as /proc/self/mountinfo lists them (octal escapes decoded). */
export async function mountedPaths(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const mounts = new Set<string>();
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 0 || fields.length < 5) continue;
    const where = fields[4]!.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    mounts.add(where);
  }
  return mounts;
}

export async function isMounted(mountpoint: string): Promise<boolean> {
  return (await mountedPaths()).has(path.resolve(mountpoint));
}

/** `fusermount -u` (or `-uz`, lazy, for a mount whose daemon is gone or busy). */
export async function fusermountUnmount(mountpoint: string, lazy: boolean): Promise<void> {
  await execFileAsync('fusermount', [lazy ? '-uz' : '-u', mountpoint]);
}
