import { execFile } from 'node:child_process';
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
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

/** One line of /proc/self/mountinfo. */
export interface MountEntry {
  mountpoint: string;
  /** `fuse.btmount` for a btmount mount (FUSE with subtype btmount), else `tmpfs`, `ext4`, `nfs4`, … */
  fstype: string;
  /** `btmount:<infohash>` for a btmount mount. */
  source: string;
  /** The per-mount options: `ro,nosuid,…`. */
  options: string[];
  /** The file system's own options; FUSE lists `user_id=<uid of who mounted it>`. */
  superOptions: string[];
}

/** The file system type of every btmount mount. */
export const BTMOUNT_FSTYPE = 'fuse.btmount';

const unescape = (field: string): string => field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/** The mount table as /proc/self/mountinfo lists it (octal escapes decoded), in mount order. */
export async function mountEntries(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 0 || fields.length < sep + 4) continue;
    entries.push({
      mountpoint: unescape(fields[4]!),
      options: fields[5]!.split(','),
      fstype: fields[sep + 1]!,
      source: unescape(fields[sep + 2]!),
      superOptions: fields[sep + 3]!.split(','),
    });
  }
  return entries;
}

/** The mount on top at `mountpoint` (the one a path there reaches), or undefined. */
export async function mountEntry(mountpoint: string): Promise<MountEntry | undefined> {
  const where = path.resolve(mountpoint);
  return (await mountEntries()).filter((e) => e.mountpoint === where).pop();
}

/** The uid FUSE recorded for the user who mounted it (`user_id=`), or undefined if not FUSE. */
export function fuseOwner(entry: MountEntry): number | undefined {
  const option = entry.superOptions.find((o) => o.startsWith('user_id='));
  return option === undefined ? undefined : Number(option.slice('user_id='.length));
}

/** Mount points as /proc/self/mountinfo lists them. */
export async function mountedPaths(): Promise<Set<string>> {
  return new Set((await mountEntries()).map((e) => e.mountpoint));
}

export async function isMounted(mountpoint: string): Promise<boolean> {
  return (await mountedPaths()).has(path.resolve(mountpoint));
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
