import { LRUCache } from 'lru-cache';
import { constants as osConstants } from 'node:os';
import { kernelMountOptions } from '../fuse-options.js';
import { isMounted } from '../../mount-table.js';
import { fusermountUnmount } from '../mountpoint.js';
import { TorrentFile, type TorrentDir } from '../../metainfo/file-tree.js';
import type { OpenFile } from '../../reader/reader.js';
import type { NativeAddon, NativeMountHandle } from './addon.js';
import type { MountFilesystemOptions } from './mount-backend.js';
import { snapshotTree } from './tree-snapshot.js';

const RECORD = 5;
/** A hit record's length for "directory listed" (HIT_LISTED in native/src/session.h). */
const LISTED = -2;
/**
 * Files read at once with read-ahead state kept, when the kernel sends no open/release
 * (no_open): the Reader's per-file state is then per file, not per open, and bounded.
 */
const FILES_TRACKED_WITHOUT_OPEN = 4096;
/**
 * Hits are taken this long after C says some are waiting: one wake-up of the JS thread then
 * carries all the reads of that time (at 30,000 reads/s, a wake-up per read or two cost the
 * 2-core machine as much as the reads' bookkeeping). Read-ahead, the LRU order and the
 * counters are that much later, which nothing needs sooner.
 */
const HIT_DRAIN_DELAY_MS = 2;

/**
 * A mount served by the libfuse3 addon: metadata and reads of verified pieces are answered
 * on libfuse's threads; a read C cannot serve comes here as a miss and goes through the
 * Reader like any fuse-native read (priorities, deadlines, --read-timeout, EIO). Reads C
 * served arrive in batches and are shown to the Reader, so read-ahead and status stay true.
 */
export class NativeMount {
  readonly backend = 'native' as const;
  /** By kernel file handle, while open (kernels without no_open send open and release). */
  readonly #handles = new Map<number, OpenFile>();
  /** By node, for reads with no file handle (fh 0: the kernel skips open). */
  readonly #byNode = new LRUCache<number, OpenFile>({ max: FILES_TRACKED_WITHOUT_OPEN, dispose: (open) => open.close() });
  #stopped: Promise<void> | undefined;
  #hitDrain: NodeJS.Timeout | undefined;

  readonly #addon: NativeAddon;
  readonly #opts: MountFilesystemOptions;
  readonly #fileIndexOfNode: Int32Array;
  readonly #dirOfNode: Map<number, TorrentDir>;
  #handle: NativeMountHandle | undefined;

  private constructor(
    readonly mountpoint: string,
    addon: NativeAddon,
    opts: MountFilesystemOptions,
    fileIndexOfNode: Int32Array,
    dirOfNode: Map<number, TorrentDir>,
    handle: NativeMountHandle | undefined = undefined,
  ) {
    this.#addon = addon;
    this.#opts = opts;
    this.#fileIndexOfNode = fileIndexOfNode;
    this.#dirOfNode = dirOfNode;
    this.#handle = handle;
  }

  static mount(addon: NativeAddon, mountpoint: string, opts: MountFilesystemOptions): NativeMount {
    const snapshot = snapshotTree(opts.tree);
    const mount = new NativeMount(mountpoint, addon, opts, snapshot.arrays.fileIndex, snapshot.dirs);
    mount.#handle = addon.mount({
      mountpoint,
      mountOptions: kernelMountOptions(opts.mount).join(','),
      uid: opts.mount.uid,
      gid: opts.mount.gid,
      fileMode: opts.mount.fileMode,
      dirMode: opts.mount.dirMode,
      mtime: Math.floor(opts.mtime.getTime() / 1000),
      totalBytes: snapshot.totalBytes,
      debug: opts.mount.debug ? 1 : 0,
      // Test only (the eviction-churn test widens the race the slot generations must catch).
      readDelayMicros: Number(process.env.BTMOUNT_NATIVE_READ_DELAY_US ?? 0) || 0,
      tree: snapshot.arrays,
      cache: opts.cache,
      onMiss: (id, fh, node, offset, length) => mount.#serveMiss(id, fh, node, offset, length),
      onHits: () => mount.#hitsWaiting(),
    });
    return mount;
  }

  /** Reads served in C, reads sent to JS, reads whose slot changed hands during the read, misses waiting. */
  nativeStats(): { hits: number; misses: number; generationRetries: number; spliced: number; parked: number } {
    return this.#handle ? this.#addon.stats(this.#handle) : { hits: 0, misses: 0, generationRetries: 0, spliced: 0, parked: 0 };
  }

  /** Unmounts (lazily when busy), then waits for libfuse's threads to end. Safe to call more than once. */
  unmount(): Promise<void> {
    this.#stopped ??= (async () => {
      if (await isMounted(this.mountpoint)) {
        try {
          await fusermountUnmount(this.mountpoint, false);
        } catch {
          if (await isMounted(this.mountpoint)) await fusermountUnmount(this.mountpoint, true);
        }
      }
      clearTimeout(this.#hitDrain);
      if (this.#handle) {
        this.#opts.log.info(this.nativeStats(), 'native FUSE backend: reads served in C (hits), sent to the Reader (misses)');
        await this.#addon.stop(this.#handle);
      }
      for (const open of this.#handles.values()) open.close();
      this.#handles.clear();
      this.#byNode.clear();
    })();
    return this.#stopped;
  }

  /** The Reader's per-open state for a kernel file handle, or per file without one (made on its first read that reaches JS). */
  #openFile(fh: number, node: number): OpenFile | undefined {
    let open = fh === 0 ? this.#byNode.get(node) : this.#handles.get(fh);
    if (!open) {
      const file = this.#opts.tree.files[this.#fileIndexOfNode[node] ?? -1];
      if (!file) return undefined;
      open = this.#opts.reader.open(file);
      if (fh === 0) this.#byNode.set(node, open);
      else this.#handles.set(fh, open);
    }
    return open;
  }

  #serveMiss(id: number, fh: number, node: number, offset: number, length: number): void {
    const addon = this.#addon;
    const handle = this.#handle;
    if (!handle) return;
    const open = this.#openFile(fh, node);
    if (!open) return addon.replyError(handle, id, osConstants.errno.EIO);
    const buf = Buffer.allocUnsafe(length);
    const { onReadDone } = this.#opts;
    const started = onReadDone ? performance.now() : 0;
    this.#opts.reader.readInto(open, offset, length, buf).then(
      (n) => {
        addon.replyData(handle, id, buf, n);
        onReadDone?.((performance.now() - started) / 1000);
      },
      (err: Error) => {
        this.#opts.log.debug({ path: open.file.path, offset, length, err: err.message }, 'read failed: EIO');
        addon.replyError(handle, id, osConstants.errno.EIO);
        onReadDone?.((performance.now() - started) / 1000);
      },
    );
  }

  takePendingHits(): void {
    clearTimeout(this.#hitDrain);
    this.#hitDrain = undefined;
    const records = this.#handle && this.#addon.takeHits(this.#handle);
    if (records) this.#noteHits(records);
  }

  #hitsWaiting(): void {
    this.#hitDrain ??= setTimeout(() => this.takePendingHits(), HIT_DRAIN_DELAY_MS);
  }

  #noteHits(records: Float64Array): void {
    for (let i = 0; i + RECORD <= records.length; i += RECORD) {
      const fh = records[i]!;
      const length = records[i + 3]!;
      if (length === LISTED) {
        this.#listed(records[i + 1]!);
        continue;
      }
      if (length < 0) {
        this.#handles.get(fh)?.close();
        this.#handles.delete(fh);
        continue;
      }
      const open = this.#openFile(fh, records[i + 1]!);
      if (open) this.#opts.reader.recordCachedRead(open, records[i + 2]!, length);
      this.#opts.onReadDone?.(records[i + 4]!);
    }
  }

  /** A directory C listed: its files in listing order (C lists children in the snapshot's order, the Map's). */
  #listed(node: number): void {
    const dir = this.#dirOfNode.get(node);
    if (!dir) return;
    const files: TorrentFile[] = [];
    for (const child of dir.children.values()) if (child instanceof TorrentFile) files.push(child);
    this.#opts.reader.listed(dir.path, files);
  }
}
