import Fuse, { type Operations } from 'fuse-native';
import { fusermountUnmount, isMounted } from './mountpoint.js';
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
  constructor(mountpoint: string, ops: Operations, private readonly mountOptions: FuseMountOptions) {
    // Reads end by the Reader's own deadline (--read-timeout) with EIO; fuse-native's
    // 15 s default would cut them short. Metadata answers at once from memory.
    super(mountpoint, ops, { timeout: { default: 30_000, read: false } });
  }

  /** Overrides fuse-native's option builder (called once, by mount). */
  _fuseOptions(): string {
    const list = [
      ...kernelMountOptions(this.mountOptions),
      'kernel_cache',
      `entry_timeout=${DAY_SECONDS}`,
      `attr_timeout=${DAY_SECONDS}`,
      // libfuse 2 caps requests at 128 KiB; ask for all of it.
      `max_read=${128 * 1024}`,
    ];
    if (this.mountOptions.debug) list.push('debug');
    return `-o${list.join(',')}`;
  }
}

/** A live FUSE mount served by fuse-native. */
export class FuseMount {
  readonly backend = 'fuse-native' as const;

  private constructor(
    readonly mountpoint: string,
    private readonly fuse: Fuse,
  ) {}

  static async mount(mountpoint: string, ops: Operations, opts: FuseMountOptions): Promise<FuseMount> {
    const fuse = new ReadOnlyFuse(mountpoint, ops, opts);
    await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
    return new FuseMount(mountpoint, fuse);
  }

  /** Unmounts; when busy or already gone from under us, falls back to a lazy unmount. */
  async unmount(): Promise<void> {
    if (!(await isMounted(this.mountpoint))) return;
    try {
      await new Promise<void>((resolve, reject) => this.fuse.unmount((err) => (err ? reject(err) : resolve())));
    } catch {
      if (await isMounted(this.mountpoint)) await fusermountUnmount(this.mountpoint, true);
    }
  }
}
