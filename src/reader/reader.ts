import type { Logger } from '../log.js';
import type { ByteMap, PieceSpan } from '../metainfo/byte-map.js';
import type { TorrentFile } from '../metainfo/file-tree.js';
import type { PieceIndex } from '../metainfo/piece-layout.js';
import type { Priority } from '../scheduler/index.js';
import { ReadStreams, type ReadAheadOptions } from './read-streams.js';
import { RecentTimeouts } from './recent-timeouts.js';

/** The verified pieces on local disk (the PieceStore). */
export interface CachedPieces {
  has(index: PieceIndex): boolean;
  /** Reads `length` bytes at `offset` of a held piece into `target` at `targetOffset`. */
  readInto(index: PieceIndex, offset: number, length: number, target: Buffer, targetOffset: number): Promise<void>;
  pin(index: PieceIndex): () => void;
  /** Marks a held piece as just used and checks it if not yet verified; false if it is not (or no longer) held. */
  refresh(index: PieceIndex): Promise<boolean>;
}

/** Whoever brings missing pieces into the cache (the Swarm). */
export interface PieceFetcher {
  /** `deadline` (ms since the epoch, urgent only): when the read wants it; urgent pieces are ordered by it. */
  fetch(index: PieceIndex, priority: Priority, signal?: AbortSignal, deadline?: number): Promise<void>;
  /** Why wanted pieces are not arriving, for the log line of a failed read. */
  waitingReason(): string;
  /** How many connected sources have the piece (a read that timed out waits again only if this grew). */
  sourcesOf(index: PieceIndex): number;
}

export interface ReaderOptions {
  byteMap: ByteMap;
  cache: CachedPieces;
  fetcher: PieceFetcher;
  /** How long one read may wait for its pieces before it fails. */
  readTimeoutMs: number;
  readAhead: ReadAheadOptions;
  log: Logger;
  /**
   * What a blocked read asks of the swarm: its pieces by this long after the
   * read began (the swarm's deadline; near it, missing blocks go to a second
   * peer). Default 3 s. Concurrent misses are ordered by it: first come, first served.
   */
  urgentTargetMs?: number;
  /** After a piece timed out, reads of it fail at once for this long unless a source appears. Default min(readTimeoutMs, 2 s). */
  timeoutHoldMs?: number;
  /** Injected in tests (fake clock); Date.now otherwise. */
  now?: () => number;
}

const DEFAULT_URGENT_TARGET_MS = 3000;
// Long enough for the kernel's own retry of a failed readahead page (it follows at once), short
// enough that a user who retries after starting a seeder waits for it again rather than failing.
const MAX_TIMEOUT_HOLD_MS = 2_000;

/** A read that could not be answered: the FUSE layer turns it into EIO. */
export class ReadFailedError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`read of ${path} failed: ${reason}`);
    this.name = 'ReadFailedError';
  }
}

/**
 * An open file. Read-ahead belongs to streams in the torrent's byte space, not
 * to a handle (ReadStreams), so closing a file leaves the read-ahead for the
 * files after it running: a folder walk's next file is on its way.
 */
export class OpenFile {
  constructor(readonly file: TorrentFile) {}

  /** Nothing to release: the stream the handle read, and its read-ahead, end by themselves (a seek, idleness). */
  close(): void {}
}

/**
 * The one way from a byte range of a file to bytes: FUSE reads, read-ahead
 * and warm all go through here. Pieces in the cache answer at once; missing
 * ones are fetched as urgent (shared between concurrent readers by the
 * fetcher); a read waits at most `readTimeoutMs`.
 */
export class Reader {
  /** Per read (what status shows): all reads, bytes of those that succeeded, hits (every piece it needed was cached), misses, failures. */
  readonly stats = { reads: 0, bytesRead: 0, cacheHits: 0, cacheMisses: 0, failedReads: 0 };
  /** Reads waiting for pieces now, with when they started: status shows the oldest. */
  readonly waiting = new Map<number, { path: string; piece: PieceIndex; since: number }>();
  #nextWaitId = 0;
  readonly #streams: ReadStreams;
  readonly #timeouts: RecentTimeouts;
  readonly #now: () => number;

  readonly #opts: ReaderOptions;
  constructor(opts: ReaderOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#streams = new ReadStreams(opts.byteMap, opts.readAhead, this.#now);
    this.#timeouts = new RecentTimeouts(opts.timeoutHoldMs ?? Math.min(opts.readTimeoutMs, MAX_TIMEOUT_HOLD_MS), this.#now);
  }

  open(file: TorrentFile): OpenFile {
    return new OpenFile(file);
  }

  /**
   * A directory was listed (readdir), its files in listing order: a reader
   * opening them in that order is then one read-ahead stream. Called by the
   * FUSE layer; costs O(files) once per listing not in torrent order.
   */
  listed(dir: string, files: readonly TorrentFile[]): void {
    this.#streams.listed(dir, files);
  }

  /** Read-ahead streams being followed now, and their windows' total (status, tests). */
  readAheadState(): { streams: number; windowBytes: number } {
    return { streams: this.#streams.activeStreams, windowBytes: this.#streams.windowBytesTotal };
  }

  /**
   * Reads up to `length` bytes at `offset` into `target` (the FUSE request's own
   * buffer: no allocation per read). Resolves with the count, short only at the end of the file.
   */
  async readInto(handle: OpenFile, offset: number, length: number, target: Buffer): Promise<number> {
    const spans = this.#opts.byteMap.spansOfFileRange(handle.file, offset, Math.min(length, target.length));
    if (spans.length === 0) return 0;
    // Counted per read, as `status` shows them: a hit when every piece it needs is cached.
    this.stats.reads++;
    if (spans.every((span) => this.#opts.cache.has(span.piece))) this.stats.cacheHits++;
    else this.stats.cacheMisses++;
    this.#readAhead(handle, offset, length);
    // One timeout for the whole read, made only if some piece has to be waited for:
    // a read served from the cache costs no timer.
    let signal: AbortSignal | undefined;
    const timeout = (): AbortSignal => (signal ??= AbortSignal.timeout(this.#opts.readTimeoutMs));
    const wait: UrgentWait = { timeout, deadline: this.#now() + (this.#opts.urgentTargetMs ?? DEFAULT_URGENT_TARGET_MS) };
    let at = 0;
    const reads = spans.map((span) => {
      const into = at;
      at += span.length;
      return this.#readSpan(handle.file.path, span, wait, target, into);
    });
    try {
      await Promise.all(reads);
    } catch (err) {
      this.stats.failedReads++;
      throw err;
    }
    this.stats.bytesRead += at;
    return at;
  }

  /**
   * Counts a read that another server answered from the cache (the native FUSE backend reads
   * verified pieces itself), marks its pieces as just used and lets read-ahead see it, so
   * sequential detection, the hit rate and the read counters stay true.
   */
  recordCachedRead(handle: OpenFile, offset: number, length: number): void {
    const spans = this.#opts.byteMap.spansOfFileRange(handle.file, offset, length);
    if (spans.length === 0) return;
    this.stats.reads++;
    this.stats.cacheHits += spans.length;
    for (const span of spans) {
      this.stats.bytesRead += span.length;
      this.#opts.cache.refresh(span.piece).catch(() => undefined);
    }
    this.#readAhead(handle, offset, length);
  }

  /**
   * Brings the pieces of a byte range into the cache at `priority` without
   * reading them (warm). A piece already held counts as just used, and one
   * found on disk at open is checked now, so cached means verified. Resolves
   * when all are cached; rejects on abort.
   */
  async prefetch(file: TorrentFile, offset: number, length: number, priority: Priority, signal?: AbortSignal): Promise<void> {
    const pieces = this.#opts.byteMap.spansOfFileRange(file, offset, length).map((s) => s.piece);
    await Promise.all(pieces.map((p) => this.#prefetchPiece(p, priority, signal)));
  }

  async #prefetchPiece(piece: PieceIndex, priority: Priority, signal: AbortSignal | undefined): Promise<void> {
    const { cache, fetcher } = this.#opts;
    if (cache.has(piece) && (await cache.refresh(piece))) return;
    await fetcher.fetch(piece, priority, signal);
  }

  async #readSpan(path: string, span: PieceSpan, wait: UrgentWait, target: Buffer, targetOffset: number): Promise<void> {
    const { cache, fetcher } = this.#opts;
    // A piece can vanish between "have" and "read" (evicted, or found corrupt on disk): fetch again.
    for (let attempt = 0; ; attempt++) {
      if (!cache.has(span.piece)) await this.#fetchUrgent(path, span.piece, wait);
      let unpin: (() => void) | undefined;
      try {
        unpin = cache.pin(span.piece);
        return await cache.readInto(span.piece, span.offsetInPiece, span.length, target, targetOffset);
      } catch (err) {
        if (attempt >= 2 || wait.timeout().aborted) throw this.#failed(path, span.piece, `cache: ${(err as Error).message}`);
        this.#opts.log.warn({ path, piece: span.piece, err }, 'cached piece unreadable; fetching it again');
      } finally {
        unpin?.();
      }
    }
  }

  async #fetchUrgent(path: string, piece: PieceIndex, wait: UrgentWait): Promise<void> {
    const { fetcher } = this.#opts;
    const failFast = this.#timeouts.failFastReason(piece, () => fetcher.sourcesOf(piece));
    if (failFast) throw this.#failed(path, piece, failFast);
    const signal = wait.timeout();
    const id = this.#nextWaitId++;
    this.waiting.set(id, { path, piece, since: Date.now() });
    try {
      await fetcher.fetch(piece, 'urgent', signal, wait.deadline);
      this.#timeouts.forget(piece);
    } catch (err) {
      if (!signal.aborted) throw this.#failed(path, piece, (err as Error).message);
      this.#timeouts.record(piece, fetcher.sourcesOf(piece));
      throw this.#failed(path, piece, `no data within ${this.#opts.readTimeoutMs / 1000} s (${fetcher.waitingReason()})`);
    } finally {
      this.waiting.delete(id);
    }
  }

  #failed(path: string, piece: PieceIndex, reason: string): ReadFailedError {
    const err = new ReadFailedError(path, `piece ${piece}: ${reason}`);
    this.#opts.log.warn({ path, piece, reason }, err.message);
    return err;
  }

  #readAhead(handle: OpenFile, offset: number, length: number): void {
    const ahead = this.#streams.observe(handle, handle.file, offset, length);
    if (!ahead) return;
    for (const piece of ahead.pieces) {
      if (this.#opts.cache.has(piece)) continue;
      // Read-ahead is a hint: a later real read of the piece fetches it urgently and reports failures.
      this.#opts.fetcher.fetch(piece, 'readahead', ahead.signal).catch(() => undefined);
    }
  }
}

/** What the spans of one read share: one timeout (made on the first miss) and one deadline for the swarm. */
interface UrgentWait {
  timeout: () => AbortSignal;
  deadline: number;
}
