import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { SharedCacheView } from '../../store/piece-store.js';
import type { TreeSnapshot } from './tree-snapshot.js';

/** What JS hands the addon at mount. */
export interface NativeMountOptions {
  mountpoint: string;
  /** libfuse's -o list (kernelMountOptions joined with commas). */
  mountOptions: string;
  uid: number;
  gid: number;
  /** Permission bits of every file and directory. */
  fileMode: number;
  dirMode: number;
  /** Seconds since the epoch: every entry's mtime. */
  mtime: number;
  totalBytes: number;
  debug: number;
  /** Fault injection for tests: microseconds between checking a piece and reading its slot. */
  readDelayMicros?: number;
  tree: TreeSnapshot['arrays'];
  cache: SharedCacheView;
  /** A read C could not serve from the cache: answer with replyData or replyError. */
  onMiss(id: number, fh: number, node: number, offset: number, length: number): void;
  /** Reads C served are waiting to be taken (takeHits); called again only after a take. */
  onHits(): void;
}

declare const handleBrand: unique symbol;
export type NativeMountHandle = { readonly [handleBrand]: true };

export interface NativeAddon {
  /** Mounts and starts libfuse's worker threads; throws Error('btmount native: …'). */
  mount(options: NativeMountOptions): NativeMountHandle;
  replyData(handle: NativeMountHandle, id: number, data: Buffer, length: number): void;
  replyError(handle: NativeMountHandle, id: number, errno: number): void;
  /**
   * Call after unmounting. Ends the FUSE threads (each finishes its request in hand), fails
   * parked reads with EIO and closes the device, which also ends a connection that a lazy
   * unmount left alive for files still open. Resolves when no FUSE thread is left.
   */
  stop(handle: NativeMountHandle): Promise<void>;
  stats(handle: NativeMountHandle): { hits: number; misses: number; generationRetries: number; spliced: number; parked: number };
  /**
   * Reads C served since the last take, five numbers each: fh, node, offset, length, seconds.
   * Length -1: the handle was released; -2: the directory `node` was listed (readdir from its start).
   */
  takeHits(handle: NativeMountHandle): Float64Array | undefined;
}

/** native/build/Release/btmount_fuse.node, from this module's place in dist/src/fs/native. */
export const ADDON_PATH = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../../native/build/Release/btmount_fuse.node',
);

/** Every function JS calls on the addon. */
const ADDON_FUNCTIONS = ['mount', 'replyData', 'replyError', 'stop', 'stats', 'takeHits'] as const satisfies ReadonlyArray<keyof NativeAddon>;

let loaded: NativeAddon | Error | undefined;

/** The addon, or why it cannot be used (not built: no libfuse3-dev or compiler at install). */
export function loadNativeAddon(): NativeAddon | Error {
  if (loaded) return loaded;
  try {
    const addon = createRequire(import.meta.url)(ADDON_PATH) as Record<string, unknown>;
    // A checkout updated without rebuilding the addon (git pull, no npm ci) has an older one:
    // using it would end the daemon at the first call it lacks, so fall back instead.
    const missing = ADDON_FUNCTIONS.filter((name) => typeof addon[name] !== 'function');
    loaded = missing.length === 0
      ? (addon as unknown as NativeAddon)
      : new Error(`the native FUSE addon is older than this btmount (it lacks ${missing.join(', ')}): run npm run build:native`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    loaded = new Error(
      code === 'MODULE_NOT_FOUND'
        ? 'the native FUSE addon is not built (install libfuse3-dev and pkg-config, then run npm run build:native)'
        : `the native FUSE addon cannot load: ${(err as Error).message}`,
    );
  }
  return loaded;
}
