import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { InfoHash, PieceIndex, PieceLayout } from '../metainfo/piece-layout.js';
import { silentLogger, type Logger } from '../log.js';
import { formatSize } from './cache-location.js';
import {
  PieceMissingError,
  PiecePinnedError,
  StoreBudgetError,
  StoreClosedError,
} from './errors.js';
import { FdCache, type OpenPieceFile } from './fd-cache.js';
import { errorCode, fileSize, isNoSpace, readAt } from './file-io.js';
import { LruList } from './lru-list.js';
import { PieceFiles } from './piece-files.js';
import { StoreLock } from './store-lock.js';
import type { VerifiedPiece } from './verified-piece.js';

export { PieceMissingError, PiecePinnedError, StoreBudgetError, StoreClosedError } from './errors.js';
export { StoreLockedError } from './errors.js';

export interface PieceStoreOptions {
  /** `--cache DIR`; this torrent's pieces live in `<cacheRoot>/<infoHash>/` and nowhere else. */
  cacheRoot: string;
  infoHash: InfoHash;
  layout: PieceLayout;
  /** `--cache-size`: piece bytes the store may keep on disk (pieces being written included). */
  budgetBytes: number;
  log?: Logger;
  /** Read-only piece fds kept open at most (default 64). */
  maxOpenFiles?: number;
  /** Pieces written to disk at once (default 4, the size of libuv's thread pool). */
  maxConcurrentWrites?: number;
}

export type PieceStoreEvents = {
  /** A piece became readable. */
  added: [index: PieceIndex];
  /** A piece stopped being readable: evicted for room, by request, or dropped as corrupt. */
  evicted: [index: PieceIndex];
};

/** Counters for `btmount status` and for tests. */
export interface PieceStoreStats {
  /** Pieces found on disk at open and SHA-1-checked on their first read. */
  verifiedOnRead: number;
  droppedCorrupt: number;
  /** `put`s that returned false (no room, disk full or I/O error). */
  droppedOnWrite: number;
  evictions: number;
  /** Writes that failed with ENOSPC/EDQUOT (each triggers evict + one retry). */
  noSpaceErrors: number;
}

// Per-piece state, one byte each.
const ABSENT = 0;
/** Space reserved, file being written; not readable yet. */
const WRITING = 1;
/** Found on disk at open; SHA-1-checked on first read. */
const UNVERIFIED = 2;
/** Written in this process or checked since open; readable without further checks. */
const VERIFIED = 3;

/**
 * The disk cache of verified pieces (see piece-files.ts for the format and the
 * crash-safety rule). Memory is fixed at open: one state byte and two LRU links
 * per piece of the torrent; the maps below hold only work in flight and pins.
 *
 * Budget rule: bytes of held pieces + bytes of pieces being written never exceed
 * `budgetBytes` (file-system block rounding aside). Pinned pieces are taken out of
 * the LRU order, so eviction never sees them; pins are refused (StoreBudgetError)
 * when the pinned pieces alone would not fit.
 */
export class PieceStore extends EventEmitter<PieceStoreEvents> {
  readonly dir: string;
  readonly layout: PieceLayout;
  readonly budgetBytes: number;
  readonly stats: PieceStoreStats = {
    verifiedOnRead: 0,
    droppedCorrupt: 0,
    droppedOnWrite: 0,
    evictions: 0,
    noSpaceErrors: 0,
  };

  readonly #log: Logger;
  readonly #files: PieceFiles;
  readonly #fds: FdCache;
  readonly #lock: StoreLock;
  readonly #state: Uint8Array;
  readonly #lru: LruList;
  readonly #pins = new Map<number, number>();
  #pinnedBytes = 0;
  #bytesUsed = 0;
  #haveCount = 0;
  #reservedBytes = 0;
  /** Lowered below the budget after the disk ran out of space (ENOSPC) in this process. */
  #diskLimit = Infinity;
  readonly #writes = new Map<number, Promise<boolean>>();
  readonly #verifications = new Map<number, Promise<'good' | 'corrupt'>>();
  readonly #unlinks = new Map<number, Promise<void>>();
  readonly #roomWaiters: Array<() => void> = [];
  readonly #writeSlotWaiters: Array<() => void> = [];
  #freeWriteSlots: number;
  #closing = false;
  #closed: Promise<void> | undefined;

  private constructor(opts: Required<PieceStoreOptions>, dir: string, files: PieceFiles, lock: StoreLock) {
    super();
    this.dir = dir;
    this.layout = opts.layout;
    this.budgetBytes = opts.budgetBytes;
    this.#log = opts.log;
    this.#files = files;
    this.#lock = lock;
    this.#fds = new FdCache(opts.maxOpenFiles, (index) => files.pathOf(index));
    this.#freeWriteSlots = opts.maxConcurrentWrites;
    this.#state = new Uint8Array(opts.layout.pieceCount);
    this.#lru = new LruList(opts.layout.pieceCount);
  }

  /**
   * Opens (creating if needed) the cache of one torrent and takes its lock.
   * Pieces already on disk are served again, each checked on its first read.
   */
  static async open(options: PieceStoreOptions): Promise<PieceStore> {
    const opts: Required<PieceStoreOptions> = {
      log: silentLogger,
      maxOpenFiles: 64,
      maxConcurrentWrites: 4,
      ...options,
    };
    const { layout, budgetBytes } = opts;
    const dir = storeDirectory(opts.cacheRoot, opts.infoHash);
    const largest = layout.pieceCount === 0 ? 0 : Math.max(layout.pieceLength, layout.lastPieceLength);
    if (!Number.isSafeInteger(budgetBytes) || budgetBytes < largest || budgetBytes <= 0) {
      throw new StoreBudgetError(
        `cache size ${Number.isFinite(budgetBytes) ? formatSize(budgetBytes) : String(budgetBytes)} is smaller than ` +
          `one piece of this torrent (${formatSize(largest)}); raise --cache-size`,
      );
    }
    const log = opts.log.child({ component: 'store', infoHash: opts.infoHash });
    const files = new PieceFiles(dir, layout);
    await mkdir(dir, { recursive: true });
    const lock = await StoreLock.acquire(dir);
    let store: PieceStore;
    try {
      // Only under the lock: prepare() may wipe pieces and empties incoming/.
      const { wiped } = await files.prepare();
      if (wiped) log.warn({ dir }, 'cached pieces were written for a different piece layout; discarded them');
      store = new PieceStore({ ...opts, log }, dir, files, lock);
      await store.#load();
    } catch (err) {
      await lock.release();
      throw err;
    }
    return store;
  }

  get haveCount(): number {
    return this.#haveCount;
  }

  /** Bytes of the pieces held (pieces being written are not counted; see `reservedBytes`). */
  get bytesUsed(): number {
    return this.#bytesUsed;
  }

  /** Bytes set aside for pieces being written now. */
  get reservedBytes(): number {
    return this.#reservedBytes;
  }

  /** Bytes of the distinct pieces pinned now, held or not. */
  get pinnedBytes(): number {
    return this.#pinnedBytes;
  }

  /** The budget in force: `budgetBytes`, or less after the disk ran out of space. */
  get effectiveBudgetBytes(): number {
    return Math.min(this.budgetBytes, this.#diskLimit);
  }

  get openFileCount(): number {
    return this.#fds.openCount;
  }

  has(index: PieceIndex): boolean {
    const s = this.#state[index];
    return s === VERIFIED || s === UNVERIFIED;
  }

  isPinned(index: PieceIndex): boolean {
    return this.#pins.has(index);
  }

  *haveIndices(): Generator<PieceIndex> {
    const state = this.#state;
    for (let i = 0; i < state.length; i++) {
      if (state[i] === VERIFIED || state[i] === UNVERIFIED) yield i as PieceIndex;
    }
  }

  /**
   * Stores a verified piece. Resolves true once it is on disk and readable,
   * false if it was dropped: no room within the budget (everything held is pinned),
   * or the disk was full / failed even after evicting and retrying once. Never
   * throws for I/O errors; throws only for a piece of another layout or a closed store.
   */
  async put(piece: VerifiedPiece): Promise<boolean> {
    this.#assertOpen();
    const index = piece.index;
    if (!this.layout.isValidPiece(index) || piece.data.length !== this.layout.pieceSize(index)) {
      throw new RangeError(`piece ${index} (${piece.data.length} bytes) does not fit this torrent's piece layout`);
    }
    const s = this.#state[index];
    if (s === VERIFIED || s === UNVERIFIED) {
      if (this.#lru.has(index)) this.#lru.touch(index);
      return true;
    }
    const pending = this.#writes.get(index);
    if (pending) return pending;
    const write = this.#write(index, piece.data).finally(() => this.#writes.delete(index));
    this.#writes.set(index, write);
    return write;
  }

  /**
   * Reads `length` bytes at `offset` of a held piece into a new buffer of that size.
   * Throws PieceMissingError when the piece is not held, or when its file turns out
   * damaged (the piece is then dropped, so the swarm fetches it again).
   */
  async readBlock(index: PieceIndex, offset: number, length: number): Promise<Buffer> {
    this.#assertOpen();
    this.#checkRange(index, offset, length);
    let s = this.#state[index];
    if (s === UNVERIFIED) {
      if ((await this.#verify(index)) === 'corrupt') throw new PieceMissingError(index, 'corrupt');
      s = this.#state[index];
    }
    if (s !== VERIFIED) throw new PieceMissingError(index, 'not-held');
    if (this.#lru.has(index)) this.#lru.touch(index);
    const buf = Buffer.allocUnsafe(length);
    if (length === 0) return buf;
    let file: OpenPieceFile | undefined = this.#fds.tryAcquire(index);
    let n = -1;
    let failure: unknown;
    try {
      file ??= await this.#fds.acquire(index);
      n = await readAt(file.fd, buf, 0, length, offset);
    } catch (err) {
      failure = err;
    } finally {
      if (file) this.#fds.release(file);
    }
    if (n === length) return buf;
    // The file vanished, shrank or failed to read after it was checked: it cannot be trusted.
    if (this.#state[index] === VERIFIED) {
      this.#log.warn({ index, err: failure, bytesRead: n }, `piece ${index}: cannot read its cache file; dropped it`);
      this.stats.droppedCorrupt++;
      this.#remove(index);
    }
    throw new PieceMissingError(index, 'corrupt');
  }

  /**
   * Keeps `index` from being evicted (held or not yet arrived) until the returned
   * function is called. Pins nest: each pin needs its own unpin. Throws
   * StoreBudgetError if the pinned pieces would no longer fit in the budget.
   */
  pin(index: PieceIndex): () => void {
    this.#assertOpen();
    if (!this.layout.isValidPiece(index)) throw new RangeError(`no piece ${index} in this torrent`);
    const count = this.#pins.get(index) ?? 0;
    if (count === 0) {
      const size = this.layout.pieceSize(index);
      if (this.#pinnedBytes + size > this.budgetBytes) {
        const need = this.#pinnedBytes + size;
        throw new StoreBudgetError(
          `cache size ${formatSize(this.budgetBytes)} cannot hold the ${this.#pins.size + 1} pieces ` +
            `(${formatSize(need)}) that reads need at the same time; raise --cache-size to at least ${formatSize(need)}`,
        );
      }
      this.#pinnedBytes += size;
      this.#lru.remove(index);
    }
    this.#pins.set(index, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#unpin(index);
    };
  }

  /** Removes a held piece now (no-op if absent). Throws PiecePinnedError if a reader has it pinned. */
  async evict(index: PieceIndex): Promise<void> {
    this.#assertOpen();
    if (!this.layout.isValidPiece(index)) throw new RangeError(`no piece ${index} in this torrent`);
    const pending = this.#writes.get(index);
    if (pending) await pending;
    if (this.#pins.has(index)) throw new PiecePinnedError(index);
    if (this.#remove(index)) await this.#unlinks.get(index);
  }

  /** Finishes writes in flight, saves the LRU order, closes fds and releases the lock. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  // ---------------------------------------------------------------- internals

  async #load(): Promise<void> {
    const state = this.#state;
    await this.#files.scan((index) => {
      state[index] = UNVERIFIED;
      this.#haveCount++;
      this.#bytesUsed += this.layout.pieceSize(index as PieceIndex);
    });
    // Saved order first (oldest first), then pieces the last run stored after it saved the
    // order (it crashed), as the most recent.
    const recency = await this.#files.readRecency();
    for (const index of recency) {
      if (index < state.length && state[index] === UNVERIFIED && !this.#lru.has(index)) this.#lru.touch(index);
    }
    for (let i = 0; i < state.length; i++) if (state[i] === UNVERIFIED && !this.#lru.has(i)) this.#lru.touch(i);
    if (this.#bytesUsed > this.budgetBytes) {
      const before = this.#haveCount;
      this.#evictUntilFits(0, this.budgetBytes);
      this.#log.info({ evicted: before - this.#haveCount }, 'cache larger than its budget; evicted the oldest pieces');
      await Promise.all(this.#unlinks.values());
    }
    this.#log.info({ pieces: this.#haveCount, bytes: this.#bytesUsed, budget: this.budgetBytes }, 'piece store open');
  }

  async #write(index: PieceIndex, data: Buffer): Promise<boolean> {
    await this.#takeWriteSlot();
    try {
      const size = data.length;
      if (!(await this.#reserve(size))) {
        if (!this.#closing) {
          this.#log.warn(
            { index, pinnedBytes: this.#pinnedBytes, budget: this.effectiveBudgetBytes },
            `piece ${index} dropped: no room in the cache, every piece held is pinned by a read`,
          );
          this.stats.droppedOnWrite++;
        }
        return false;
      }
      this.#state[index] = WRITING;
      let stored = false;
      try {
        // Wait for the files evicted to make room (and any old copy of this piece) to be
        // gone, so the piece files on disk stay within the budget at every moment.
        if (this.#unlinks.size > 0) await Promise.all(this.#unlinks.values());
        stored = await this.#writeWithRetry(index, data);
      } finally {
        this.#reservedBytes -= size;
        if (stored) {
          this.#state[index] = VERIFIED;
          this.#bytesUsed += size;
          this.#haveCount++;
          if (!this.#pins.has(index)) this.#lru.touch(index);
        } else {
          this.#state[index] = ABSENT;
        }
        this.#wakeRoomWaiters();
      }
      if (stored) this.emit('added', index);
      return stored;
    } finally {
      this.#releaseWriteSlot();
    }
  }

  async #writeWithRetry(index: PieceIndex, data: Buffer): Promise<boolean> {
    try {
      await this.#files.writePiece(index, data);
      return true;
    } catch (err) {
      if (isNoSpace(err)) {
        this.stats.noSpaceErrors++;
        // The disk holds less than the budget: keep the cache below what fitted from now on.
        this.#diskLimit = Math.max(data.length, this.#bytesUsed + this.#reservedBytes - data.length);
        const evicted = this.#evictBytes(data.length);
        await Promise.all(this.#unlinks.values());
        this.#log.warn(
          { index, code: errorCode(err), evicted, limit: this.#diskLimit },
          `disk full while storing piece ${index}; evicted ${evicted} pieces, cache limited to ${formatSize(this.#diskLimit)}, retrying`,
        );
      } else {
        this.#log.warn({ index, err }, `I/O error storing piece ${index}; retrying once`);
      }
    }
    try {
      await this.#files.writePiece(index, data);
      return true;
    } catch (err) {
      if (isNoSpace(err)) this.stats.noSpaceErrors++;
      this.stats.droppedOnWrite++;
      this.#log.warn({ index, err }, `piece ${index} dropped: cannot store it in the cache (${errorCode(err) ?? String(err)})`);
      return false;
    }
  }

  /** Sets aside `size` bytes, evicting LRU pieces; waits while writes in flight hold the room. */
  async #reserve(size: number): Promise<boolean> {
    for (;;) {
      if (this.#closing) return false;
      if (this.#evictUntilFits(size, this.effectiveBudgetBytes)) {
        this.#reservedBytes += size;
        return true;
      }
      // Nothing evictable is left. If other writes hold reservations, they end soon and
      // their pieces become evictable (or their room returns); otherwise it cannot fit.
      if (this.#reservedBytes === 0) return false;
      await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    }
  }

  #evictUntilFits(size: number, limit: number): boolean {
    while (this.#bytesUsed + this.#reservedBytes + size > limit) {
      const oldest = this.#lru.oldest();
      if (oldest < 0) return false;
      this.stats.evictions++;
      this.#remove(oldest as PieceIndex);
    }
    return true;
  }

  /** Evicts LRU pieces totalling at least `bytes` (or all evictable ones); returns how many. */
  #evictBytes(bytes: number): number {
    let freed = 0;
    let count = 0;
    while (freed < bytes) {
      const oldest = this.#lru.oldest();
      if (oldest < 0) break;
      freed += this.layout.pieceSize(oldest as PieceIndex);
      count++;
      this.stats.evictions++;
      this.#remove(oldest as PieceIndex);
    }
    return count;
  }

  /** Makes a held piece absent: out of the order, fd dropped, file unlinked, 'evicted' emitted. */
  #remove(index: PieceIndex): boolean {
    const s = this.#state[index];
    if (s !== VERIFIED && s !== UNVERIFIED) return false;
    this.#state[index] = ABSENT;
    this.#lru.remove(index);
    this.#bytesUsed -= this.layout.pieceSize(index);
    this.#haveCount--;
    this.#fds.invalidate(index);
    const unlinking = this.#files
      .removePiece(index)
      .catch((err: unknown) => this.#log.warn({ index, err }, `cannot remove evicted piece file ${index}`))
      .finally(() => {
        if (this.#unlinks.get(index) === unlinking) this.#unlinks.delete(index);
      });
    this.#unlinks.set(index, unlinking);
    this.emit('evicted', index);
    return true;
  }

  #verify(index: PieceIndex): Promise<'good' | 'corrupt'> {
    let check = this.#verifications.get(index);
    if (!check) {
      check = this.#verifyFile(index).finally(() => this.#verifications.delete(index));
      this.#verifications.set(index, check);
    }
    return check;
  }

  /** Reads a piece found on disk at open in full and checks its SHA-1; drops it if it does not match. */
  async #verifyFile(index: PieceIndex): Promise<'good' | 'corrupt'> {
    const size = this.layout.pieceSize(index);
    let good = false;
    let reason = '';
    let file: OpenPieceFile | undefined;
    try {
      file = await this.#fds.acquire(index);
      const actual = await fileSize(file.fd);
      if (actual !== size) {
        reason = `file is ${actual} bytes, piece is ${size}`;
      } else {
        const buf = Buffer.allocUnsafe(size);
        const n = await readAt(file.fd, buf, 0, size, 0);
        good = n === size && createHash('sha1').update(buf).digest().equals(this.layout.pieceHash(index));
        if (!good) reason = 'SHA-1 does not match the torrent';
      }
    } catch (err) {
      reason = `cannot read it (${errorCode(err) ?? String(err)})`;
    } finally {
      if (file) this.#fds.release(file);
    }
    this.stats.verifiedOnRead++;
    // Evicted (or evicted and stored again) while being checked: the result no longer applies.
    if (this.#state[index] !== UNVERIFIED) return 'good';
    if (good) {
      this.#state[index] = VERIFIED;
      return 'good';
    }
    this.#log.warn({ index, reason }, `piece ${index} in the cache is damaged (${reason}); dropped it`);
    this.stats.droppedCorrupt++;
    this.#remove(index);
    return 'corrupt';
  }

  #unpin(index: PieceIndex): void {
    const count = this.#pins.get(index);
    if (count === undefined) return;
    if (count > 1) {
      this.#pins.set(index, count - 1);
      return;
    }
    this.#pins.delete(index);
    this.#pinnedBytes -= this.layout.pieceSize(index);
    if (this.has(index)) {
      this.#lru.touch(index);
      this.#wakeRoomWaiters();
    }
  }

  #wakeRoomWaiters(): void {
    for (const wake of this.#roomWaiters.splice(0)) wake();
  }

  async #takeWriteSlot(): Promise<void> {
    while (this.#freeWriteSlots === 0) await new Promise<void>((resolve) => this.#writeSlotWaiters.push(resolve));
    this.#freeWriteSlots--;
  }

  #releaseWriteSlot(): void {
    this.#freeWriteSlots++;
    this.#writeSlotWaiters.shift()?.();
  }

  #checkRange(index: PieceIndex, offset: number, length: number): void {
    if (!this.layout.isValidPiece(index)) throw new RangeError(`no piece ${index} in this torrent`);
    const size = this.layout.pieceSize(index);
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      throw new RangeError(`bytes ${offset}+${length} are outside piece ${index} (${size} bytes)`);
    }
  }

  #assertOpen(): void {
    if (this.#closing) throw new StoreClosedError();
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#wakeRoomWaiters();
    await Promise.allSettled([...this.#writes.values(), ...this.#verifications.values()]);
    await Promise.allSettled([...this.#unlinks.values()]);
    try {
      const pinnedHeld = [...this.#pins.keys()].filter((i) => this.has(i as PieceIndex));
      const order = [...this.#lru.values(), ...pinnedHeld];
      await this.#files.writeRecency(order, order.length);
    } catch (err) {
      this.#log.warn({ err }, 'cannot save the cache order; the next open starts with an arbitrary one');
    }
    this.#fds.closeAll();
    await this.#lock.release();
    this.#log.info({ pieces: this.#haveCount, bytes: this.#bytesUsed }, 'piece store closed');
  }
}

const INFO_HASH = /^[0-9a-f]{40}$/;

/**
 * `<cacheRoot>/<infoHash>`, refusing anything but 40 lower-case hex digits: the
 * infohash may come from a magnet link typed by a stranger, and is cast, not parsed,
 * by careless callers. The result is checked to be a direct child of the root.
 */
export function storeDirectory(cacheRoot: string, infoHash: string): string {
  if (typeof infoHash !== 'string' || !INFO_HASH.test(infoHash)) {
    throw new Error(`not a 40-hex-digit infohash: ${JSON.stringify(infoHash)}`);
  }
  if (typeof cacheRoot !== 'string' || cacheRoot === '' || cacheRoot.includes('\0')) {
    throw new Error(`invalid cache directory: ${JSON.stringify(cacheRoot)}`);
  }
  const root = path.resolve(cacheRoot);
  const dir = path.join(root, infoHash);
  if (path.dirname(dir) !== root) throw new Error(`cache directory for ${infoHash} would be outside ${root}`);
  return dir;
}
