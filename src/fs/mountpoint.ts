import { execFile } from 'node:child_process';
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { isMounted } from '../mount-table.js';

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

/** fusermount refused because files or directories under the mount are in use. */
export class MountBusyError extends Error {
  constructor(readonly mountpoint: string) {
    super(`${mountpoint} is busy`);
    this.name = 'MountBusyError';
  }
}

/**
 * `fusermount -u`, or `-uz` (lazy: detach now, finish when the last user lets
 * go). Throws MountBusyError when a plain unmount finds the mount in use.
 */
export async function fusermountUnmount(mountpoint: string, lazy: boolean): Promise<void> {
  const args = [lazy ? '-uz' : '-u', mountpoint];
  try {
    // libfuse 2's fusermount, else fuse3's fusermount3 (same flags): Debian has one or the other.
    await execFileAsync('fusermount', args).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return execFileAsync('fusermount3', args);
      throw err;
    });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '');
    if (/busy/i.test(stderr)) throw new MountBusyError(mountpoint);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('neither fusermount nor fusermount3 is installed (apt-get install fuse3)');
    throw new Error(stderr.trim() || (err as Error).message);
  }
}

/** A process that holds something under a mount: its cwd, root or an open file. */
export interface MountUser {
  pid: number;
  command: string;
}

/**
 * The processes this user may inspect whose cwd, root or open files lie under
 * `mountpoint`, from /proc (what `fuser -m` reports). Reading the links does
 * not enter the mounted file system, so a hung mount cannot hang this.
 */
export async function processesUsing(mountpoint: string): Promise<MountUser[]> {
  const where = path.resolve(mountpoint);
  const inside = (target: string): boolean => target === where || target.startsWith(where + '/');
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
  const users: MountUser[] = [];
  await Promise.all(
    pids.map(async (pid) => {
      const dir = `/proc/${pid}`;
      const links = ['cwd', 'root', ...(await readdir(`${dir}/fd`).catch(() => [] as string[])).map((fd) => `fd/${fd}`)];
      const targets = await Promise.all(links.map((link) => readlink(`${dir}/${link}`).catch(() => '')));
      if (!targets.some(inside)) return;
      const command = (await readFile(`${dir}/comm`, 'utf8').catch(() => '?')).trim();
      users.push({ pid: Number(pid), command });
    }),
  );
  return users.sort((a, b) => a.pid - b.pid);
}
