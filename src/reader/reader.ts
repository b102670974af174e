import type { Logger } from '../log.js';
import type { ByteMap, PieceSpan } from '../metainfo/byte-map.js';
import type { TorrentFile } from '../metainfo/file-tree.js';
import type { PieceIndex } from '../metainfo/piece-layout.js';
import type { Priority } from '../scheduler/index.js';
import { ReadAheadWindow, type ReadAheadOptions } from './readahead.js';

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
  fetch(index: PieceIndex, priority: Priority, signal?: AbortSignal): Promise<void>;
  /** Why wanted pieces are not arriving, for the log line of a failed read. */
  waitingReason(): string;
}

export interface ReaderOptions {
  byteMap: ByteMap;
  cache: CachedPieces;
  fetcher: PieceFetcher;
  /** How long one read may wait for its pieces before it fails. */
  readTimeoutMs: number;
  readAhead: ReadAheadOptions;
  log: Logger;
}

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

/** Per-open-file state: the read-ahead window and a way to cancel its fetches. */
export class OpenFile {
  readonly readAhead: ReadAheadWindow;
  readonly #abort = new AbortController();
  /** Highest piece read-ahead has asked for in the current run, so a growing window does not ask twice. */
  prefetchedThrough = -1;

  constructor(
    readonly file: TorrentFile,
    options: ReadAheadOptions,
  ) {
    this.readAhead = new ReadAheadWindow(options);
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  close(): void {
    this.#abort.abort(new Error('file closed'));
  }
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

  constructor(private readonly opts: ReaderOptions) {}

  open(file: TorrentFile): OpenFile {
    return new OpenFile(file, this.opts.readAhead);
  }

  /**
   * Reads up to `length` bytes at `offset` into `target` (the FUSE request's own
   * buffer: no allocation per read). Resolves with the count, short only at the end of the file.
   */
  async readInto(handle: OpenFile, offset: number, length: number, target: Buffer): Promise<number> {
    const spans = this.opts.byteMap.spansOfFileRange(handle.file, offset, Math.min(length, target.length));
    if (spans.length === 0) return 0;
    // Counted per read, as `status` shows them: a hit when every piece it needs is cached.
    this.stats.reads++;
    if (spans.every((span) => this.opts.cache.has(span.piece))) this.stats.cacheHits++;
    else this.stats.cacheMisses++;
    this.#readAhead(handle, offset, length);
    // One deadline for the whole read, made only if some piece has to be waited for:
    // a read served from the cache costs no timer.
    let signal: AbortSignal | undefined;
    const deadline = (): AbortSignal => (signal ??= AbortSignal.timeout(this.opts.readTimeoutMs));
    let at = 0;
    const reads = spans.map((span) => {
      const into = at;
      at += span.length;
      return this.#readSpan(handle.file.path, span, deadline, target, into);
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
   * Brings the pieces of a byte range into the cache at `priority` without
   * reading them (warm). A piece already held counts as just used, and one
   * found on disk at open is checked now, so cached means verified. Resolves
   * when all are cached; rejects on abort.
   */
  async prefetch(file: TorrentFile, offset: number, length: number, priority: Priority, signal?: AbortSignal): Promise<void> {
    const pieces = this.opts.byteMap.spansOfFileRange(file, offset, length).map((s) => s.piece);
    await Promise.all(pieces.map((p) => this.#prefetchPiece(p, priority, signal)));
  }

  async #prefetchPiece(piece: PieceIndex, priority: Priority, signal: AbortSignal | undefined): Promise<void> {
    const { cache, fetcher } = this.opts;
    if (cache.has(piece) && (await cache.refresh(piece))) return;
    await fetcher.fetch(piece, priority, signal);
  }

  async #readSpan(path: string, span: PieceSpan, deadline: () => AbortSignal, target: Buffer, targetOffset: number): Promise<void> {
    const { cache, fetcher } = this.opts;
    // A piece can vanish between "have" and "read" (evicted, or found corrupt on disk): fetch again.
    for (let attempt = 0; ; attempt++) {
      if (!cache.has(span.piece)) await this.#fetchUrgent(path, span.piece, deadline());
      let unpin: (() => void) | undefined;
      try {
        unpin = cache.pin(span.piece);
        return await cache.readInto(span.piece, span.offsetInPiece, span.length, target, targetOffset);
      } catch (err) {
        if (attempt >= 2 || deadline().aborted) throw this.#failed(path, span.piece, `cache: ${(err as Error).message}`);
        this.opts.log.warn({ path, piece: span.piece, err }, 'cached piece unreadable; fetching it again');
      } finally {
        unpin?.();
      }
    }
  }

  async #fetchUrgent(path: string, piece: PieceIndex, signal: AbortSignal): Promise<void> {
    const id = this.#nextWaitId++;
    this.waiting.set(id, { path, piece, since: Date.now() });
    try {
      await this.opts.fetcher.fetch(piece, 'urgent', signal);
    } catch (err) {
      const why = signal.aborted
        ? `no data within ${this.opts.readTimeoutMs / 1000} s (${this.opts.fetcher.waitingReason()})`
        : (err as Error).message;
      throw this.#failed(path, piece, why);
    } finally {
      this.waiting.delete(id);
    }
  }

  #failed(path: string, piece: PieceIndex, reason: string): ReadFailedError {
    const err = new ReadFailedError(path, `piece ${piece}: ${reason}`);
    this.opts.log.warn({ path, piece, reason }, err.message);
    return err;
  }

  #readAhead(handle: OpenFile, offset: number, length: number): void {
    const ahead = handle.readAhead.observe(offset, length);
    if (!ahead) {
      handle.prefetchedThrough = -1;
      return;
    }
    for (const { piece } of this.opts.byteMap.spansOfFileRange(handle.file, ahead.offset, ahead.length)) {
      if (piece <= handle.prefetchedThrough) continue;
      handle.prefetchedThrough = piece;
      if (this.opts.cache.has(piece)) continue;
      // Read-ahead is a hint: a later real read of the piece fetches it urgently and reports failures.
      this.opts.fetcher.fetch(piece, 'readahead', handle.signal).catch(() => undefined);
    }
  }
}
