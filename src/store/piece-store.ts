import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import type { InfoHash, PieceIndex, PieceLayout } from '../metainfo/piece-layout.js';
import { silentLogger, type Logger } from '../log.js';
import { CacheDir } from './cache-dir.js';
import { formatSize } from '../byte-size.js';
import { PieceMissingError, PiecePinnedError, StoreBudgetError, StoreClosedError } from './errors.js';
import { errorCode, isNoSpace } from './file-io.js';
import { LruList } from './lru-list.js';
import { SlotFile } from './slot-file.js';
import { SlotMap } from './slot-map.js';
import { StoreLock } from './store-lock.js';
import type { VerifiedPiece } from '../metainfo/verified-piece.js';

export { PieceMissingError, PiecePinnedError, StoreBudgetError, StoreClosedError, StoreLockedError } from './errors.js';

export interface PieceStoreOptions {
  /** `--cache DIR`; this torrent's pieces live in `<cacheRoot>/<infoHash>/` and nowhere else. */
  cacheRoot: string;
  infoHash: InfoHash;
  layout: PieceLayout;
  /**
   * `--cache-size`: disk bytes the pieces may take. The store keeps
   * floor(budgetBytes / pieceLength) pieces (each in a slot of one piece length).
   */
  budgetBytes: number;
  log?: Logger;
  /** Pieces written to disk at once (default 4, the size of libuv's thread pool). */
  maxConcurrentWrites?: number;
  /**
   * Memory for the bytes of pieces lately stored or read whole for a peer (default 16 MiB;
   * 0: none). See `readBlock`.
   */
  recentPieceBytes?: number;
}

export type PieceStoreEvents = {
  /** A piece became readable. */
  added: [index: PieceIndex];
  /** A piece stopped being readable: evicted for room, by request, or dropped as corrupt. */
  evicted: [index: PieceIndex];
};

/**
 * The store's state as memory another thread may read (SharedArrayBuffers): the native FUSE
 * backend serves reads of pieces whose state is `verifiedValue` straight from the data file,
 * checking the slot's generation before and after, or pinning the slot while it splices from it
 * (see SlotMap). Read-only for its users, but for the pins.
 */
export interface SharedCacheView {
  dataFd: number;
  slotSize: number;
  pieceLength: number;
  /** Per piece; `verifiedValue` means checked in this run and readable from its slot. */
  pieceState: Uint8Array;
  /** Per piece: its slot, or -1. */
  pieceSlot: Int32Array;
  /** Per slot: changes whenever the slot changes hands. */
  slotGeneration: Uint32Array;
  /** Per slot: pins the reader holds while it splices from the slot (the one array it writes). */
  slotPins: Int32Array;
  verifiedValue: number;
}

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
/** Slot taken, bytes being written; not readable yet. */
const WRITING = 1;
/** Named by the slot table at open; SHA-1-checked on first read. */
const UNVERIFIED = 2;
/** Written by this process or checked since open; read without further checks. */
const VERIFIED = 3;

/**
 * The disk cache of verified pieces (see cache-dir.ts for the format and the
 * crash-safety rule). Memory is fixed at open: per piece of the torrent one state
 * byte, two LRU links and a slot number; per slot a piece number and a reader
 * count. The maps hold only work in flight and pins.
 *
 * Budget rule: at most floor(budgetBytes / pieceLength) slots exist, so the data
 * file, pieces being written included, never exceeds budgetBytes (the slot table
 * adds 4 bytes per slot, the recency file 4 bytes per piece). Pinned pieces are
 * out of the LRU order, so eviction never sees them; a pin is refused
 * (StoreBudgetError) when the pinned pieces alone would not fit.
 */
export class PieceStore extends EventEmitter<PieceStoreEvents> {
  readonly dir: string;
  readonly layout: PieceLayout;
  readonly budgetBytes: number;
  /** Pieces the budget holds: floor(budgetBytes / pieceLength). */
  readonly capacity: number;
  readonly stats: PieceStoreStats = {
    verifiedOnRead: 0,
    droppedCorrupt: 0,
    droppedOnWrite: 0,
    evictions: 0,
    noSpaceErrors: 0,
  };

  readonly #log: Logger;
  readonly #cacheDir: CacheDir;
  readonly #file: SlotFile;
  readonly #slots: SlotMap;
  readonly #lock: StoreLock;
  readonly #state: Uint8Array;
  readonly #lru: LruList;
  readonly #pins = new Map<number, number>();
  #pinnedBytes = 0;
  #bytesUsed = 0;
  #haveCount = 0;
  #writingCount = 0;
  readonly #writes = new Map<number, Promise<boolean>>();
  readonly #verifications = new Map<number, Promise<'good' | 'corrupt'>>();
  /** Slot-table writes in flight, per slot, chained so they land in order. */
  readonly #entryWrites = new Map<number, Promise<void>>();
  readonly #roomWaiters: Array<() => void> = [];
  readonly #writeSlotWaiters: Array<() => void> = [];
  #freeWriteSlots: number;
  /**
   * Bytes of verified pieces lately stored or read for a peer, held only while the piece is
   * VERIFIED (#remove drops it). Never reused once dropped: readBlock hands out views of them.
   */
  readonly #recent: LRUCache<number, Buffer> | undefined;
  /** Whole-piece reads for readBlock in flight, so concurrent requests for one piece share one read. */
  readonly #loading = new Map<number, Promise<Buffer>>();
  /** Reads of the data file in flight: close() waits for them before closing its fd. */
  #activeReads = 0;
  #readsDrained: (() => void) | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;

  private constructor(
    opts: Required<PieceStoreOptions>,
    dir: string,
    cacheDir: CacheDir,
    file: SlotFile,
    slots: SlotMap,
    lock: StoreLock,
  ) {
    super();
    this.dir = dir;
    this.layout = opts.layout;
    this.budgetBytes = opts.budgetBytes;
    this.capacity = slots.capacity;
    this.#log = opts.log;
    this.#cacheDir = cacheDir;
    this.#file = file;
    this.#slots = slots;
    this.#lock = lock;
    this.#freeWriteSlots = opts.maxConcurrentWrites;
    this.#state = new Uint8Array(new SharedArrayBuffer(opts.layout.pieceCount));
    this.#lru = new LruList(opts.layout.pieceCount);
    if (opts.recentPieceBytes >= file.slotSize) {
      this.#recent = new LRUCache<number, Buffer>({ maxSize: opts.recentPieceBytes, sizeCalculation: (b) => b.length });
    }
  }

  /**
   * Opens (creating if needed) the cache of one torrent and takes its lock.
   * Pieces already on disk are served again, each checked on its first read.
   */
  static async open(options: PieceStoreOptions): Promise<PieceStore> {
    const opts: Required<PieceStoreOptions> = { log: silentLogger, maxConcurrentWrites: 4, recentPieceBytes: 16 * 1024 * 1024, ...options };
    const { layout, budgetBytes } = opts;
    const dir = storeDirectory(opts.cacheRoot, opts.infoHash);
    const slotSize = slotSizeOf(layout);
    if (!Number.isSafeInteger(budgetBytes) || budgetBytes < slotSize || budgetBytes <= 0) {
      throw new StoreBudgetError(
        `cache size ${Number.isFinite(budgetBytes) ? formatSize(budgetBytes) : String(budgetBytes)} is smaller than ` +
          `one piece of this torrent (${formatSize(slotSize)}); raise --cache-size`,
      );
    }
    const capacity = Math.min(layout.pieceCount, Math.floor(budgetBytes / slotSize));
    const log = opts.log.child({ component: 'store', infoHash: opts.infoHash });
    await mkdir(dir, { recursive: true });
    const lock = await StoreLock.acquire(dir);
    let file: SlotFile | undefined;
    try {
      // Only under the lock: prepare() may discard the cache.
      const cacheDir = new CacheDir(dir, layout);
      const { wiped } = await cacheDir.prepare();
      if (wiped) log.warn({ dir }, 'the cache was written for a different piece layout; discarded it');
      const opened = await SlotFile.open(cacheDir.dataPath, cacheDir.slotsPath, slotSize, capacity);
      file = opened.file;
      if (opened.reset) log.warn({ dir }, 'unreadable slot table; starting with an empty cache');
      if (opened.cutOff > 0) {
        log.info({ dropped: opened.cutOff, capacity }, 'the cache size shrank since the last run; dropped the pieces beyond it');
      }
      const slots = new SlotMap(layout.pieceCount, capacity);
      const store = new PieceStore({ ...opts, log }, dir, cacheDir, file, slots, lock);
      await store.#load(opened.table);
      return store;
    } catch (err) {
      await file?.close();
      await lock.release();
      throw err;
    }
  }

  get haveCount(): number {
    return this.#haveCount;
  }

  /** Bytes of the pieces held (pieces being written are not counted). */
  get bytesUsed(): number {
    return this.#bytesUsed;
  }

  /** Bytes of the distinct pieces pinned now, held or not. */
  get pinnedBytes(): number {
    return this.#pinnedBytes;
  }

  /** The budget in force: `budgetBytes` rounded down to whole slots, or less after the disk ran out of space. */
  get effectiveBudgetBytes(): number {
    return this.#slots.limit * this.#file.slotSize;
  }

  /** File descriptors the store keeps open, however many pieces: the data file, the slot table, the lock. */
  get openFileCount(): number {
    return this.#closed ? 0 : 3;
  }

  /** The piece → slot table, slot generations and piece states, for a reader on another thread. */
  sharedCacheView(): SharedCacheView {
    return {
      dataFd: this.#file.dataFd,
      slotSize: this.#file.slotSize,
      pieceLength: this.layout.pieceLength,
      pieceState: this.#state,
      pieceSlot: this.#slots.pieceSlot,
      slotGeneration: this.#slots.slotGeneration,
      slotPins: this.#slots.slotPins,
      verifiedValue: VERIFIED,
    };
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
   * false if it was dropped: no room (everything held is pinned), or the disk was
   * full / failed even after evicting and retrying once. Never throws for I/O
   * errors; throws only for a piece of another layout or a closed store.
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
   * `length` bytes at `offset` of a held piece, for a peer: a read-only view of the whole
   * piece's bytes, kept in memory (recentPieceBytes) once read. Peers ask for a piece block by
   * block, and in a cluster several peers for the same piece right after it arrived: one
   * memory copy at `put`, or one disk read of the piece, serves them all, instead of a
   * thread-pool read and a buffer per 16 KiB block. The view stays valid after the piece is
   * evicted (its buffer is dropped, never reused).
   * Throws PieceMissingError when the piece is not held, or when its bytes on disk
   * turn out damaged (the piece is then dropped, so the swarm fetches it again).
   */
  async readBlock(index: PieceIndex, offset: number, length: number): Promise<Buffer> {
    this.#assertOpen();
    this.#checkRange(index, offset, length);
    const recent = this.#recent;
    if (!recent) {
      const buf = Buffer.allocUnsafe(length);
      await this.readInto(index, offset, length, buf, 0);
      return buf;
    }
    const cached = this.#recentBytes(index);
    if (cached) return cached.subarray(offset, offset + length);
    let loading = this.#loading.get(index);
    if (!loading) {
      const size = this.layout.pieceSize(index);
      const buf = Buffer.allocUnsafeSlow(size);
      loading = this.readInto(index, 0, size, buf, 0)
        .then(() => {
          if (this.#state[index] === VERIFIED) recent.set(index, buf);
          return buf;
        })
        .finally(() => this.#loading.delete(index));
      this.#loading.set(index, loading);
    }
    return (await loading).subarray(offset, offset + length);
  }

  /** The piece's bytes if it is held, verified and in memory (marking it used in both orders). */
  #recentBytes(index: PieceIndex): Buffer | undefined {
    if (this.#state[index] !== VERIFIED) return undefined;
    const bytes = this.#recent?.get(index);
    if (bytes && this.#lru.has(index)) this.#lru.touch(index);
    return bytes;
  }

  /**
   * Like readBlock, but into `target` at `targetOffset`: the FUSE read path
   * fills the kernel's buffer directly, with no 128 KiB allocation per request.
   */
  async readInto(index: PieceIndex, offset: number, length: number, target: Buffer, targetOffset: number): Promise<void> {
    this.#assertOpen();
    this.#checkRange(index, offset, length);
    if (targetOffset < 0 || targetOffset + length > target.length) throw new RangeError('read does not fit its target buffer');
    let s = this.#state[index];
    if (s === UNVERIFIED) {
      if ((await this.#verify(index)) === 'corrupt') throw new PieceMissingError(index, 'corrupt');
      s = this.#state[index];
    }
    if (s !== VERIFIED) throw new PieceMissingError(index, 'not-held');
    const cached = this.#recentBytes(index);
    if (cached) {
      cached.copy(target, targetOffset, offset, offset + length);
      return;
    }
    if (this.#lru.has(index)) this.#lru.touch(index);
    if (length === 0) return;
    const slot = this.#slots.pieceSlot[index]!;
    this.#beginRead(slot);
    let n = -1;
    let failure: unknown;
    try {
      n = await this.#file.read(slot, target, targetOffset, offset, length);
    } catch (err) {
      failure = err;
    } finally {
      this.#endRead(slot);
    }
    if (n === length) return;
    // The data file shrank or failed to read after the piece was checked: drop it.
    if (this.#state[index] === VERIFIED && this.#slots.pieceSlot[index] === slot) {
      this.#log.warn({ index, err: failure, bytesRead: n }, `piece ${index}: cannot read it from the cache; dropped it`);
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
      if (this.#pins.size + 1 > this.capacity) {
        const need = (this.#pins.size + 1) * this.#file.slotSize;
        throw new StoreBudgetError(
          `cache size ${formatSize(this.budgetBytes)} cannot hold the ${this.#pins.size + 1} pieces ` +
            `(${formatSize(need)}) that reads need at the same time; raise --cache-size to at least ${formatSize(need)}`,
        );
      }
      this.#pinnedBytes += this.layout.pieceSize(index);
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

  /**
   * Marks a held piece as just used (last in the eviction order) and, if it was
   * found on disk at open and not read since, checks its SHA-1 now. Resolves true
   * when the piece is held and verified; false when it is absent or was found
   * damaged (and dropped). For warm: "cached" must mean verified and kept.
   */
  async refresh(index: PieceIndex): Promise<boolean> {
    this.#assertOpen();
    if (!this.layout.isValidPiece(index)) throw new RangeError(`no piece ${index} in this torrent`);
    if (this.#state[index] === UNVERIFIED && (await this.#verify(index)) === 'corrupt') return false;
    if (this.#state[index] !== VERIFIED) return false;
    if (this.#lru.has(index)) this.#lru.touch(index);
    return true;
  }

  /** Removes a held piece now (no-op if absent). Throws PiecePinnedError if a reader has it pinned. */
  async evict(index: PieceIndex): Promise<void> {
    this.#assertOpen();
    if (!this.layout.isValidPiece(index)) throw new RangeError(`no piece ${index} in this torrent`);
    const pending = this.#writes.get(index);
    if (pending) await pending;
    if (this.#pins.has(index)) throw new PiecePinnedError(index);
    const slot = this.#slots.pieceSlot[index]!;
    if (this.#remove(index)) await this.#entryWrites.get(slot);
  }

  /** Finishes writes in flight, saves the LRU order, closes the files and releases the lock. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  // ---------------------------------------------------------------- internals

  async #load(table: Int32Array): Promise<void> {
    const state = this.#state;
    let ignored = 0;
    for (let slot = 0; slot < table.length; slot++) {
      const index = table[slot]!;
      if (index === -1) continue;
      if (!this.layout.isValidPiece(index) || state[index] !== ABSENT) {
        ignored++; // not a piece of this torrent, or named twice: the slot is free
        this.#writeEntry(slot, -1);
        continue;
      }
      this.#slots.assign(slot, index);
      state[index] = UNVERIFIED;
      this.#haveCount++;
      this.#bytesUsed += this.layout.pieceSize(index);
    }
    this.#slots.rebuildFreeList();
    // The saved order first (oldest first), then pieces stored after it was saved
    // (the last run crashed), as the most recent.
    for (const index of await this.#cacheDir.readRecency()) {
      if (index < state.length && state[index] === UNVERIFIED && !this.#lru.has(index)) this.#lru.touch(index);
    }
    for (let i = 0; i < state.length; i++) if (state[i] === UNVERIFIED && !this.#lru.has(i)) this.#lru.touch(i);
    await Promise.all(this.#entryWrites.values());
    this.#log.info(
      { pieces: this.#haveCount, bytes: this.#bytesUsed, capacity: this.capacity, ignored },
      'piece store open',
    );
  }

  async #write(index: PieceIndex, data: Buffer): Promise<boolean> {
    await this.#takeWriteSlot();
    try {
      let slot = await this.#allocate(index);
      if (slot < 0) {
        if (!this.#closing) {
          this.#log.warn(
            { index, pinned: this.#pins.size, capacity: this.#slots.limit },
            `piece ${index} dropped: no room in the cache, every piece held is pinned by a read`,
          );
          this.stats.droppedOnWrite++;
        }
        return false;
      }
      this.#state[index] = WRITING;
      this.#writingCount++;
      let stored = false;
      try {
        slot = await this.#writeWithRetry(index, slot, data);
        stored = slot >= 0;
      } finally {
        this.#writingCount--;
        if (stored) {
          this.#state[index] = VERIFIED;
          // A copy: the caller reuses `data` once put settles. Peers and waiting reads want it next.
          this.#recent?.set(index, Buffer.from(data));
          this.#bytesUsed += data.length;
          this.#haveCount++;
          if (!this.#pins.has(index)) this.#lru.touch(index);
        } else {
          this.#state[index] = ABSENT;
          this.#slots.release(index);
        }
        this.#wakeRoomWaiters();
      }
      if (stored) this.emit('added', index);
      return stored;
    } finally {
      this.#releaseWriteSlot();
    }
  }

  /** Writes the piece into `slot`, then its slot-table entry; resolves to the slot used, or -1. */
  async #writeWithRetry(index: PieceIndex, slot: number, data: Buffer): Promise<number> {
    try {
      await this.#writeInto(slot, index, data);
      return slot;
    } catch (err) {
      if (isNoSpace(err)) {
        this.stats.noSpaceErrors++;
        // The disk holds fewer slots than the budget: from now on, reuse slots instead of
        // growing the data file, by capping the slots in use at what fitted so far.
        this.#slots.lowerLimit(this.#slots.inUse - 1);
        // Move to a slot that already has disk space: evict the oldest piece and take its slot.
        this.#slots.release(index);
        slot = this.#takeSlot(index);
        this.#log.warn(
          { index, code: errorCode(err), limit: this.#slots.limit },
          `disk full while storing piece ${index}; the cache now keeps at most ` +
            `${formatSize(this.effectiveBudgetBytes)}${slot >= 0 ? '; evicted a piece, retrying' : ''}`,
        );
        if (slot < 0) {
          this.stats.droppedOnWrite++;
          this.#log.warn({ index }, `piece ${index} dropped: the disk is full and no piece can be evicted (ENOSPC)`);
          return -1;
        }
      } else {
        this.#log.warn({ index, err }, `I/O error storing piece ${index}; retrying once`);
      }
    }
    try {
      await this.#writeInto(slot, index, data);
      return slot;
    } catch (err) {
      if (isNoSpace(err)) this.stats.noSpaceErrors++;
      this.stats.droppedOnWrite++;
      this.#log.warn({ index, err }, `piece ${index} dropped: cannot store it in the cache (${errorCode(err) ?? String(err)})`);
      return -1;
    }
  }

  async #writeInto(slot: number, index: PieceIndex, data: Buffer): Promise<void> {
    await this.#file.writeSlot(slot, data);
    // After the data: an entry never names a slot whose bytes are not yet written.
    await this.#writeEntry(slot, index);
  }

  /** A slot for `index`: a free one, else the oldest unpinned piece's; waits while writes hold them all. */
  async #allocate(index: PieceIndex): Promise<number> {
    for (;;) {
      if (this.#closing) return -1;
      const slot = this.#takeSlot(index);
      if (slot >= 0) return slot;
      // Nothing evictable. Writes in flight end soon (their pieces become evictable, or
      // their slots free); draining slots free when their reads end. Otherwise: no room.
      if (this.#writingCount === 0 && this.#slots.drainingCount === 0) return -1;
      // A slot held only by the native backend's pins frees without an event here: look again soon.
      if (this.#slots.pinnedDrainingCount > 0) await new Promise<void>((resolve) => setTimeout(resolve, 1));
      else await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    }
  }

  #takeSlot(index: PieceIndex): number {
    let slot = this.#slots.take(index);
    while (slot < 0) {
      const oldest = this.#lru.oldest();
      if (oldest < 0) return -1;
      this.stats.evictions++;
      this.#remove(oldest as PieceIndex);
      slot = this.#slots.take(index);
    }
    return slot;
  }

  /** Makes a held piece absent: out of the order, its slot freed, its entry cleared, 'evicted' emitted. */
  #remove(index: PieceIndex): boolean {
    const s = this.#state[index];
    if (s !== VERIFIED && s !== UNVERIFIED) return false;
    const slot = this.#slots.pieceSlot[index]!;
    this.#state[index] = ABSENT;
    this.#recent?.delete(index);
    this.#lru.remove(index);
    this.#bytesUsed -= this.layout.pieceSize(index);
    this.#haveCount--;
    this.#slots.release(index);
    // Not needed for safety (a stale entry fails its check at the next open), but keeps a
    // restart from bringing back pieces that were evicted.
    void this.#writeEntry(slot, -1);
    this.emit('evicted', index);
    return true;
  }

  /** Slot-table entry writes for one slot are chained, so the last one issued is the one on disk. */
  #writeEntry(slot: number, value: number): Promise<void> {
    const previous = this.#entryWrites.get(slot);
    const write = (previous ? previous.then(() => this.#file.writeEntry(slot, value)) : this.#file.writeEntry(slot, value))
      .catch((err: unknown) => this.#log.warn({ slot, err }, 'cannot update the slot table'))
      .finally(() => {
        if (this.#entryWrites.get(slot) === write) this.#entryWrites.delete(slot);
      });
    this.#entryWrites.set(slot, write);
    return write;
  }

  #verify(index: PieceIndex): Promise<'good' | 'corrupt'> {
    let check = this.#verifications.get(index);
    if (!check) {
      check = this.#verifySlot(index).finally(() => this.#verifications.delete(index));
      this.#verifications.set(index, check);
    }
    return check;
  }

  /** Reads a piece named by the slot table at open in full and checks its SHA-1; drops it on a mismatch. */
  async #verifySlot(index: PieceIndex): Promise<'good' | 'corrupt'> {
    const size = this.layout.pieceSize(index);
    const slot = this.#slots.pieceSlot[index]!;
    let good = false;
    let reason = '';
    this.#beginRead(slot);
    try {
      const buf = Buffer.allocUnsafe(size);
      const n = await this.#file.read(slot, buf, 0, 0, size);
      good = n === size && createHash('sha1').update(buf).digest().equals(this.layout.pieceHash(index));
      if (!good) reason = n === size ? 'SHA-1 does not match the torrent' : `only ${n} of ${size} bytes on disk`;
    } catch (err) {
      reason = `cannot read it (${errorCode(err) ?? String(err)})`;
    } finally {
      this.#endRead(slot);
    }
    this.stats.verifiedOnRead++;
    // Evicted (or evicted and stored again) while being checked: this result no longer applies.
    if (this.#state[index] !== UNVERIFIED || this.#slots.pieceSlot[index] !== slot) return 'good';
    if (good) {
      this.#state[index] = VERIFIED;
      return 'good';
    }
    this.#log.warn({ index, slot, reason }, `piece ${index} in the cache is damaged (${reason}); dropped it`);
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

  #beginRead(slot: number): void {
    this.#activeReads++;
    this.#slots.beginRead(slot);
  }

  #endRead(slot: number): void {
    if (this.#slots.endRead(slot)) this.#wakeRoomWaiters();
    if (--this.#activeReads === 0) this.#readsDrained?.();
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
    await Promise.allSettled([...this.#entryWrites.values()]);
    try {
      const pinnedHeld = [...this.#pins.keys()].filter((i) => this.has(i as PieceIndex));
      const order = [...this.#lru.values(), ...pinnedHeld];
      await this.#cacheDir.writeRecency(order, order.length);
    } catch (err) {
      this.#log.warn({ err }, 'cannot save the cache order; the next open starts with an arbitrary one');
    }
    // A read still in flight must finish before its fd is closed (and its number reused).
    if (this.#activeReads > 0) await new Promise<void>((resolve) => (this.#readsDrained = resolve));
    await this.#file.close();
    await this.#lock.release();
    this.#log.info({ pieces: this.#haveCount, bytes: this.#bytesUsed }, 'piece store closed');
  }
}

/** A slot holds one piece: the piece length (or the only piece's length). */
function slotSizeOf(layout: PieceLayout): number {
  return layout.pieceCount <= 1 ? Math.max(1, layout.lastPieceLength) : layout.pieceLength;
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
