import Fuse, { type Operations } from 'fuse-native';
import { constants } from 'node:fs';
import { access, open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isMounted } from '../mount-table.js';
import { fusermountUnmount } from './mountpoint.js';
import { kernelMountOptions, type FuseMountOptions } from './fuse-options.js';

export type { FuseMountOptions } from './fuse-options.js';

const DAY_SECONDS = 86_400;

/**
 * fuse-native with the mount's `-o` list built here: fuse-native has no
 * spelling for `ro`, so the whole list comes from kernelMountOptions (shared
 * with the native backend) plus this backend's own tuning. Torrent content is
 * immutable, so the kernel may keep file data in its page cache (kernel_cache)
 * and attributes and names practically forever: a second epoch is served
 * without entering Node.
 */
class ReadOnlyFuse extends Fuse {
  readonly #mountOptions: FuseMountOptions;
  constructor(mountpoint: string, ops: Operations, mountOptions: FuseMountOptions) {
    // Reads end by the Reader's own deadline (--read-timeout) with EIO; fuse-native's
    // 15 s default would cut them short. Metadata answers at once from memory.
    super(mountpoint, ops, { timeout: { default: 30_000, read: false } });
    this.#mountOptions = mountOptions;
  }

  /** Overrides fuse-native's option builder (called once, by mount). */
  _fuseOptions(): string {
    const list = [
      ...kernelMountOptions(this.#mountOptions),
      'kernel_cache',
      `entry_timeout=${DAY_SECONDS}`,
      `attr_timeout=${DAY_SECONDS}`,
      // libfuse 2 caps requests at 128 KiB; ask for all of it.
      `max_read=${128 * 1024}`,
    ];
    if (this.#mountOptions.debug) list.push('debug');
    return `-o${list.join(',')}`;
  }
}

/** A live FUSE mount served by fuse-native. */
export class FuseMount {
  readonly backend = 'fuse-native' as const;

  readonly #fuse: Fuse;

  private constructor(
    readonly mountpoint: string,
    fuse: Fuse,
  ) {
    this.#fuse = fuse;
  }

  static async mount(mountpoint: string, ops: Operations, opts: FuseMountOptions): Promise<FuseMount> {
    const fuse = new ReadOnlyFuse(mountpoint, ops, opts);
    try {
      await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
    } catch (err) {
      // libfuse says why only on the daemon's stderr; fuse-native's error is just "fuse failed".
      if ((err as Error).message !== 'fuse failed') throw err;
      throw new Error((await fuseProblem()) ?? 'fuse failed (libfuse gave no reason here; btmount mount --foreground shows its messages)');
    }
    return new FuseMount(mountpoint, fuse);
  }

  /** Unmounts; when busy or already gone from under us, falls back to a lazy unmount. */
  async unmount(): Promise<void> {
    if (!(await isMounted(this.mountpoint))) return;
    try {
      await new Promise<void>((resolve, reject) => this.#fuse.unmount((err) => (err ? reject(err) : resolve())));
    } catch {
      if (await isMounted(this.mountpoint)) await fusermountUnmount(this.mountpoint, true);
    }
  }
}

const DOCKER_HINT = 'in Docker: --device /dev/fuse --cap-add SYS_ADMIN';
const CAP_SYS_ADMIN = 21;
const SETUID_BIT = 0o4000;

/** Where to look: the device, who mounts, and where libfuse finds fusermount(3) (its own directory first, then PATH). */
export interface FuseEnvironment {
  device: string;
  uid: number;
  fusermountDirs: readonly string[];
}

function defaultEnvironment(): FuseEnvironment {
  const searchPath = (process.env['PATH'] ?? '').split(':').filter((dir) => path.isAbsolute(dir));
  return { device: '/dev/fuse', uid: process.getuid?.() ?? 0, fusermountDirs: ['/usr/bin', '/bin', ...searchPath] };
}

/**
 * Why mounting with FUSE fails here, in words a person can act on; undefined
 * when no cause is found. Root opens the device and mounts itself (so it needs
 * the device and CAP_SYS_ADMIN); anyone else goes through the setuid fusermount.
 */
export async function fuseProblem(
  env: FuseEnvironment = defaultEnvironment(),
  userHelper: 'fusermount' | 'fusermount3' = 'fusermount',
): Promise<string | undefined> {
  try {
    await stat(env.device);
  } catch {
    return `${env.device} does not exist: the fuse kernel module is not loaded (modprobe fuse; ${DOCKER_HINT})`;
  }
  if (env.uid === 0) {
    try {
      await (await open(env.device, constants.O_RDWR)).close();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (err as Error).message;
      return `cannot open ${env.device}: ${why} (${DOCKER_HINT})`;
    }
    if (!(await hasCapability(CAP_SYS_ADMIN))) return `no permission to mount: CAP_SYS_ADMIN is missing (${DOCKER_HINT})`;
    return undefined;
  }
  if (userHelper === 'fusermount3') {
    // libfuse3 (the native backend) mounts for users other than root through fuse3's fusermount3.
    const fusermount3 = await findExecutable('fusermount3', env.fusermountDirs);
    if (!fusermount3) return 'fusermount3 is not installed, and the native backend (libfuse3) needs it to mount as a user other than root (apt-get install fuse3, or mount as root)';
    if (((await stat(fusermount3)).mode & SETUID_BIT) === 0) return `${fusermount3} is not setuid root, so only root can mount (chmod u+s ${fusermount3}, or mount as root)`;
    return undefined;
  }
  const fusermount = await findExecutable('fusermount', env.fusermountDirs);
  if (!fusermount) {
    const fuse3 = await findExecutable('fusermount3', env.fusermountDirs);
    return fuse3
      ? `fusermount is not installed, only fuse3's ${fuse3}, and fuse-native (libfuse 2) needs fusermount to mount as a user other than root; mount as root`
      : 'fusermount is not installed, and a user other than root needs it to mount (apt-get install fuse)';
  }
  if (((await stat(fusermount)).mode & SETUID_BIT) === 0) {
    return `${fusermount} is not setuid root, so only root can mount (chmod u+s ${fusermount}, or mount as root)`;
  }
  return undefined;
}

async function findExecutable(name: string, dirs: readonly string[]): Promise<string | undefined> {
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  return undefined;
}

async function hasCapability(bit: number): Promise<boolean> {
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return hex === undefined || ((BigInt(`0x${hex}`) >> BigInt(bit)) & 1n) === 1n;
}
