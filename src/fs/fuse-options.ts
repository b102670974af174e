import { readFile } from 'node:fs/promises';

/**
 * Everything the kernel side of a mount is told, in one object every fs
 * backend takes (fuse-native today, the native libfuse3 addon next): who may
 * enter the mount and how its entries look to them. Content is immutable, so
 * every backend mounts `ro` with `default_permissions` (the kernel checks the
 * modes below against the caller; the daemon never sees a refused open).
 */
export interface FuseMountOptions {
  /** Shown in /proc/mounts as the source: `btmount:<infohash>`. */
  fsname: string;
  /** Others than the mounting user may use the mount (FUSE `allow_other`). */
  allowOther: boolean;
  /** The mounting user and root may use it (FUSE `allow_root`); exclusive with allowOther. */
  allowRoot: boolean;
  /** Owner and group of every entry (default: the mounting user's). */
  uid: number;
  gid: number;
  /** Permission bits of files and directories (default 0444 and 0555). */
  fileMode: number;
  dirMode: number;
  /** libfuse's own debug output on stderr. */
  debug: boolean;
}

/** What the user decides (`--allow-other`, `--uid`, `--file-mode`, …); the session adds fsname and debug. */
export type FuseAccessOptions = Pick<FuseMountOptions, 'allowOther' | 'allowRoot' | 'uid' | 'gid' | 'fileMode' | 'dirMode'>;

export const DEFAULT_FILE_MODE = 0o444;
export const DEFAULT_DIR_MODE = 0o555;

/**
 * The `-o` mount options every backend passes to libfuse, in this order.
 * Backend-specific tuning (max_read, timeouts, kernel_cache) is each backend's own.
 */
export function kernelMountOptions(opts: FuseMountOptions): string[] {
  const list = ['ro', 'default_permissions', `fsname=${opts.fsname}`, 'subtype=btmount'];
  if (opts.allowOther) list.push('allow_other');
  if (opts.allowRoot) list.push('allow_root');
  return list;
}

/** Why these options cannot be mounted by this user, in words to act on; undefined when they can. */
export function accessProblem(opts: Pick<FuseMountOptions, 'allowOther' | 'allowRoot'>, uid: number, fuseConf: string | undefined): string | undefined {
  if (opts.allowOther && opts.allowRoot) return '--allow-other and --allow-root exclude each other (--allow-other already lets root in)';
  if (!(opts.allowOther || opts.allowRoot) || uid === 0) return undefined;
  if (fuseConf !== undefined && allowsUserAllowOther(fuseConf)) return undefined;
  const flag = opts.allowOther ? '--allow-other' : '--allow-root';
  return `${flag} needs the line "user_allow_other" in /etc/fuse.conf (as root: echo user_allow_other >> /etc/fuse.conf), or mount as root`;
}

/** True when fuse.conf lets non-root users ask for allow_other/allow_root (a `user_allow_other` line, not commented out). */
export function allowsUserAllowOther(fuseConf: string): boolean {
  return fuseConf.split('\n').some((line) => line.replace(/#.*/, '').trim() === 'user_allow_other');
}

/** /etc/fuse.conf, or undefined when there is none. */
export async function readFuseConf(file = '/etc/fuse.conf'): Promise<string | undefined> {
  return readFile(file, 'utf8').catch(() => undefined);
}
