import Fuse, { type Operations } from 'fuse-native';
import { fusermountUnmount, isMounted } from './mountpoint.js';

/** Kernel read-ahead for the mount: several 128 KiB requests in flight instead of one. */
const MAX_READAHEAD_BYTES = 4 * 1024 * 1024;

/**
 * fuse-native builds libfuse's `-o` list from a fixed set of options and has no
 * way to pass `max_readahead`. Without it the kernel keeps one 128 KiB read in
 * flight and a warm sequential read is bound by the round trip into Node.
 */
class TunedFuse extends Fuse {
  _fuseOptions(): string {
    const base = (Fuse.prototype as unknown as { _fuseOptions(this: Fuse): string })._fuseOptions.call(this);
    const extra = `max_readahead=${MAX_READAHEAD_BYTES}`;
    return base ? `${base},${extra}` : `-o${extra}`;
  }
}

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
    const fuse = new TunedFuse(mountpoint, ops, {
      fsname: opts.fsname,
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
