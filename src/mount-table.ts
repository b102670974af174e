import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** The kernel's mount table as this process sees it: what is mounted where, and as what. */

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
