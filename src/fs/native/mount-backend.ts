import type { Logger } from '../../log.js';
import type { FileTree } from '../../metainfo/file-tree.js';
import type { Reader } from '../../reader/reader.js';
import type { SharedCacheView } from '../../store/piece-store.js';
import { buildFuseOps } from '../fuse-ops.js';
import { FuseMount, fuseProblem } from '../fuse-mount.js';
import type { FuseMountOptions } from '../fuse-options.js';
import { loadNativeAddon } from './addon.js';
import { NativeMount } from './native-mount.js';

/** Which FUSE implementation serves a mount: the libfuse3 addon, or fuse-native (libfuse 2) as the fallback. */
export type FuseBackendName = 'native' | 'fuse-native';

export interface MountedFilesystem {
  readonly backend: FuseBackendName;
  readonly mountpoint: string;
  unmount(): Promise<void>;
  /** Native backend: reads served in C (hits) and sent to the Reader (misses). */
  nativeStats?(): { hits: number; misses: number; generationRetries: number; spliced: number };
  /** Native backend: hands the Reader now the hits C logged since its last batch. */
  takePendingHits?(): void;
}

export interface MountFilesystemOptions {
  tree: FileTree;
  reader: Reader;
  cache: SharedCacheView;
  /** Every entry's mtime: the torrent's creation date. */
  mtime: Date;
  /** What the kernel is told (shared by both backends: fuse-options.ts). */
  mount: FuseMountOptions;
  /** Told how long each read took once answered (the metrics' latency histogram). */
  onReadDone?: (seconds: number) => void;
  log: Logger;
  /** Default: BTMOUNT_FUSE_BACKEND, else native when the addon loads. */
  backend?: FuseBackendName | undefined;
}

/** BTMOUNT_FUSE_BACKEND=native|fuse-native picks a backend; unset: native if it loads. */
export function requestedBackend(env: NodeJS.ProcessEnv = process.env): FuseBackendName | undefined {
  const value = env.BTMOUNT_FUSE_BACKEND;
  if (value === undefined || value === '') return undefined;
  if (value === 'native' || value === 'fuse-native') return value;
  throw new Error(`BTMOUNT_FUSE_BACKEND must be native or fuse-native, not ${JSON.stringify(value)}`);
}

/**
 * Mounts the tree with the native backend where it can load, else with fuse-native after
 * one warning line. A backend asked for by name and unavailable is an error, not a fallback.
 */
export async function mountFilesystem(mountpoint: string, opts: MountFilesystemOptions): Promise<MountedFilesystem> {
  const wanted = opts.backend ?? requestedBackend();
  if (wanted !== 'fuse-native') {
    const addon = loadNativeAddon();
    if (!(addon instanceof Error)) {
      try {
        return NativeMount.mount(addon, mountpoint, opts);
      } catch (err) {
        // libfuse3 says why only on the daemon's stderr: name the cause where one is found.
        throw new Error((await fuseProblem(undefined, 'fusermount3')) ?? (err as Error).message);
      }
    }
    if (wanted === 'native') throw addon;
    opts.log.warn(`${addon.message}; serving the mount with fuse-native (libfuse 2), which is slower on cached reads`);
  }
  const { mount } = opts;
  const ops = buildFuseOps({
    tree: opts.tree,
    reader: opts.reader,
    mtime: opts.mtime,
    uid: mount.uid,
    gid: mount.gid,
    fileMode: mount.fileMode,
    dirMode: mount.dirMode,
    ...(opts.onReadDone ? { onReadDone: opts.onReadDone } : {}),
    log: opts.log,
  });
  return FuseMount.mount(mountpoint, ops, mount);
}
