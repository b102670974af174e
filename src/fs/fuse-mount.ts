import Fuse, { type Operations } from 'fuse-native';
import { fusermountUnmount, isMounted } from './mountpoint.js';

export interface FuseMountOptions {
  /** Shown in /proc/mounts as the source: `btmount:<name>`. */
  fsname: string;
  debug?: boolean;
}

/**
 * A live FUSE mount. Torrent content is immutable, so the kernel may keep
 * file data in its page cache (kernel_cache) and attributes and names
 * practically forever: a second epoch is served without entering Node.
 */
export class FuseMount {
  private constructor(
    readonly mountpoint: string,
    private readonly fuse: Fuse,
  ) {}

  static async mount(mountpoint: string, ops: Operations, opts: FuseMountOptions): Promise<FuseMount> {
    const day = 86_400;
    const fuse = new Fuse(mountpoint, ops, {
      // fuse-native has no option for `ro`; its options reach libfuse as one comma-separated
      // `-o` list, so `ro` goes after the name: the kernel then lists the mount read-only.
      fsname: `${opts.fsname},ro`,
      subtype: 'btmount',
      kernelCache: true,
      entryTimeout: day,
      attrTimeout: day,
      // libfuse 2 caps requests at 128 KiB; ask for all of it.
      maxRead: 128 * 1024,
      debug: opts.debug ?? false,
      // Reads end by the Reader's own deadline (--read-timeout) with EIO; fuse-native's
      // 15 s default would cut them short. Metadata answers at once from memory.
      timeout: { default: 30_000, read: false },
    });
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
