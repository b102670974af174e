import { setMaxListeners } from 'node:events';
import type { ByteMap } from '../metainfo/byte-map.js';
import type { TorrentFile } from '../metainfo/file-tree.js';
import type { PieceIndex } from '../metainfo/piece-layout.js';
import { ListingOrder, TorrentOrder, type ReadOrder } from './read-order.js';

/**
 * Sequential-read detection in the manner of mountpoint-s3's prefetcher, but
 * in a byte space that spans files (see ReadOrder), not per open file: reads
 * that continue where a recent read ended grow that stream's window (doubling)
 * of bytes to fetch ahead; a read that continues no stream starts a new one.
 * Reading file after file of a folder is one stream, so the next file's pieces
 * are on their way before it is opened.
 */
export interface ReadAheadOptions {
  /** First window after a sequential read is seen. */
  initialBytes: number;
  /** One stream's window never grows past this. */
  maxBytes: number;
  /**
   * All streams' windows together stay within this (default `maxBytes`): with n
   * active streams each gets at most totalBytes / n, but never less than
   * `initialBytes` (so the bound is max(totalBytes, maxStreams × initialBytes)).
   */
  totalBytes?: number;
  /**
   * A backward step this small is not a seek (the kernel's requests may arrive
   * out of order). Nor is a forward step of up to two of the stream's largest
   * reads (within this bound too): the kernel's next request often arrives
   * before the one it sent just before it.
   */
  backwardToleranceBytes: number;
  /** A stream not read for this long is over (its read-ahead cancelled). Default 10 s. */
  streamIdleMs?: number;
  /** Streams tracked at once; the least recently read is dropped first. Default 32. */
  maxStreams?: number;
}

const DEFAULT_STREAM_IDLE_MS = 10_000;
const DEFAULT_MAX_STREAMS = 32;
/** Directory listings remembered for folder streams (only those not in torrent order). */
const MAX_LISTINGS = 16;
/**
 * A listing is remembered only up to this many files (a position per file):
 * a bigger folder out of torrent order is followed in torrent order only, so
 * memory stays bounded whatever the torrent.
 */
const MAX_LISTING_FILES = 65_536;
/** Reads a stream remembers the starts of: about the most readers one walk has at once (a DataLoader's workers). */
const RECENT_READS = 32;

/** One run of forward reads in one ReadOrder. */
class ReadStream {
  /** Position just after the furthest byte read (in the order's space). */
  expected = 0;
  windowBytes = 0;
  /** Read-ahead has been asked for up to here (order space), so a growing window does not ask twice. */
  requestedThrough = 0;
  /** Its largest read: a forward step of up to two of them is the kernel's requests out of order, not a seek. */
  largestReadBytes = 0;
  /** The last piece asked for, so a piece straddling two asks is asked once. */
  lastRequestedPiece = -1;
  lastReadAt = 0;
  /** Who read it last (an open file): a jump by its only reader ends it. */
  lastReader: object | undefined;
  /** Read by more than one reader (a walk of several workers): one reader's jump is no seek of the stream. */
  shared = false;
  /** Where its last RECENT_READS reads started (order space), a ring: the band a walk of several readers spans. */
  readonly #recentStarts: number[] = [];
  #recentNext = 0;

  /** Notes where a read of the stream started. */
  noteRead(at: number): void {
    if (this.#recentStarts.length < RECENT_READS) this.#recentStarts.push(at);
    else this.#recentStarts[this.#recentNext] = at;
    this.#recentNext = (this.#recentNext + 1) % RECENT_READS;
  }

  /** The lowest start among its recent reads (`expected` if none). */
  get bandLow(): number {
    let low = this.expected;
    for (const at of this.#recentStarts) if (at < low) low = at;
    return low;
  }
  /**
   * Made when the stream first asks for read-ahead: most streams never do (each random read
   * starts one), and an AbortController per read, aborted with an Error, cost the native
   * backend's JS thread more than all its other work per cached read.
   */
  #abort: AbortController | undefined;
  #ended = false;

  /** Streams found to be this one walk (see ReadStreams.#continued) whose read-ahead is still ahead of it: they end with it. */
  #absorbed: ReadStream[] | undefined;

  constructor(readonly order: ReadOrder) {}

  /** Cancels its read-ahead that has not arrived yet. */
  end(why: string): void {
    this.#ended = true;
    this.#abort?.abort(new Error(why));
    for (const s of this.#absorbed ?? []) s.end(why);
  }

  /** Takes over `other`, the same walk: its position, window and what it asked for (cancelled when this one ends). */
  absorb(other: ReadStream): void {
    this.noteRead(other.bandLow);
    this.shared = true;
    this.expected = Math.max(this.expected, other.expected);
    this.requestedThrough = Math.max(this.requestedThrough, other.requestedThrough);
    this.windowBytes = Math.max(this.windowBytes, other.windowBytes);
    this.largestReadBytes = Math.max(this.largestReadBytes, other.largestReadBytes);
    // Streams the walk has read past have nothing left to cancel: the list stays as short as the
    // streams ahead of it, however long the walk lives.
    this.#absorbed = (this.#absorbed ?? []).filter((s) => s.requestedThrough > this.expected);
    this.#absorbed.push(other);
  }

  get signal(): AbortSignal {
    if (!this.#abort) {
      this.#abort = new AbortController();
      // Every read-ahead fetch of the stream listens to this one signal: dozens at once is normal.
      setMaxListeners(0, this.#abort.signal);
      if (this.#ended) this.#abort.abort(new Error('read-ahead stream ended'));
    }
    return this.#abort.signal;
  }
}

/** What a read asks to be fetched ahead: pieces in stream order, cancelled by `signal` when the stream ends. */
export interface ReadAheadRequest {
  pieces: PieceIndex[];
  signal: AbortSignal;
}

export class ReadStreams {
  readonly #torrentOrder: TorrentOrder;
  /** Most recently read last (Set order). */
  readonly #streams = new Set<ReadStream>();
  /** Listings not in torrent order, by directory, most recently listed last. */
  readonly #listings = new Map<string, ListingOrder>();
  readonly #idleMs: number;
  readonly #maxStreams: number;
  readonly #totalBytes: number;

  readonly #byteMap: ByteMap;
  readonly #opts: ReadAheadOptions;
  readonly #now: () => number;

  constructor(
    byteMap: ByteMap,
    opts: ReadAheadOptions,
    now: () => number = Date.now,
  ) {
    this.#byteMap = byteMap;
    this.#opts = opts;
    this.#now = now;
    this.#torrentOrder = new TorrentOrder(byteMap);
    this.#idleMs = opts.streamIdleMs ?? DEFAULT_STREAM_IDLE_MS;
    this.#maxStreams = opts.maxStreams ?? DEFAULT_MAX_STREAMS;
    this.#totalBytes = opts.totalBytes ?? opts.maxBytes;
  }

  /** Streams being read now (for status and tests). */
  get activeStreams(): number {
    this.#expire(this.#now());
    return this.#streams.size;
  }

  /** Sum of the active streams' windows: at most max(totalBytes, maxStreams × initialBytes). */
  get windowBytesTotal(): number {
    this.#expire(this.#now());
    let sum = 0;
    for (const s of this.#streams) sum += s.windowBytes;
    return sum;
  }

  /**
   * A directory was listed (readdir): its files, in listing order. A reader
   * that then opens them in that order is one stream. Listings in torrent
   * order need nothing (the torrent's order already is that walk, and goes on
   * past the folder's end).
   */
  listed(dir: string, files: readonly TorrentFile[]): void {
    const known = this.#listings.get(dir);
    this.#listings.delete(dir);
    if (known) return void this.#listings.set(dir, known);
    if (files.length > MAX_LISTING_FILES || this.#torrentOrder.follows(files)) return;
    this.#listings.set(dir, new ListingOrder(this.#byteMap, files));
    if (this.#listings.size > MAX_LISTINGS) this.#listings.delete(this.#listings.keys().next().value!);
  }

  /**
   * Records a read by `reader` (an open file) of [offset, offset + length) of
   * `file` and returns what to fetch ahead of it, if anything.
   */
  observe(reader: object, file: TorrentFile, offset: number, length: number): ReadAheadRequest | undefined {
    const now = this.#now();
    this.#expire(now);
    const end = Math.min(file.length, offset + length);
    const continued = this.#continued(reader, file, offset);
    let stream = continued.pop();
    // The read continues several streams: they are one walk of several readers, and one window serves it.
    for (const same of continued) {
      if (same.order !== stream!.order) continue;
      this.#streams.delete(same);
      stream!.absorb(same);
    }
    if (stream) {
      stream.windowBytes = Math.min(this.#shareCap(stream), stream.windowBytes === 0 ? this.#opts.initialBytes : stream.windowBytes * 2);
    } else {
      this.#endSeekedFrom(reader);
      stream = this.#start(file, offset);
    }
    if (stream.lastReader !== undefined && stream.lastReader !== reader) stream.shared = true;
    stream.lastReader = reader;
    stream.noteRead(stream.order.positionOf(file, offset)!);
    stream.largestReadBytes = Math.max(stream.largestReadBytes, end - offset);
    stream.lastReadAt = now;
    this.#streams.delete(stream);
    this.#streams.add(stream); // most recently read last
    stream.expected = Math.max(stream.expected, stream.order.positionOf(file, end)!);
    if (stream.windowBytes === 0) return undefined;

    const from = Math.max(stream.expected, stream.requestedThrough);
    const to = stream.expected + stream.windowBytes;
    if (from >= to) return undefined;
    stream.requestedThrough = to;
    const pieces = stream.order.piecesOf(from, to).filter((p) => p !== stream.lastRequestedPiece);
    if (pieces.length === 0) return undefined;
    stream.lastRequestedPiece = pieces[pieces.length - 1]!;
    return { pieces, signal: stream.signal };
  }

  /**
   * The streams this read continues, the most recently read last: it starts where one ended, or a
   * little before or after; or, in a stream read by several readers (or by another reader than
   * its last), anywhere from the lowest of its recent reads to what it has already asked to
   * fetch ahead. The last is a walk read by several readers at once (a DataLoader's workers
   * opening the next files of a folder): their reads land in any order within that band. Taken
   * as new streams, each got a share of the read-ahead budget over the same few megabytes (16
   * workers, ~17 streams: 2 MiB ahead where one stream looks up to 32 MiB ahead; in an 8-node
   * cluster that shallow demand left one node the only one asking the origin for new pieces,
   * see README "Clusters"). A stream's
   * only reader jumping is a seek, as before; one reader of a shared walk lagging or jumping
   * ends nothing (before, it ended the walk and cancelled ~1,000 requests of its read-ahead).
   */
  #continued(reader: object, file: TorrentFile, offset: number): ReadStream[] {
    const found: ReadStream[] = [];
    for (const s of this.#streams) {
      const at = s.order.positionOf(file, offset);
      if (at === undefined) continue;
      const tolerance = this.#opts.backwardToleranceBytes;
      const step = s.expected + Math.min(tolerance, 2 * s.largestReadBytes);
      const alone = reader === s.lastReader && !s.shared;
      if (at > (alone ? step : Math.max(step, s.requestedThrough))) continue;
      // bandLow scans the stream's recent reads: only for a read behind it that only a walk explains.
      if (at >= s.expected - tolerance || (!alone && at >= s.bandLow - tolerance)) found.push(s);
    }
    return found;
  }

  /**
   * A read that continues nothing: a new stream, in the order of a listing
   * that holds the file if one does (a folder walk), else the torrent's. A
   * read at a file's start is likely the start of a sequential read, so it
   * fetches ahead at once; elsewhere the window opens on the next read that continues it.
   */
  #start(file: TorrentFile, offset: number): ReadStream {
    let order: ReadOrder = this.#torrentOrder;
    for (const listing of this.#listings.values()) if (listing.positionOf(file, 0) !== undefined) order = listing;
    const stream = new ReadStream(order);
    stream.expected = stream.requestedThrough = order.positionOf(file, offset)!;
    if (offset === 0) stream.windowBytes = Math.min(this.#shareCap(stream), this.#opts.initialBytes);
    this.#streams.add(stream);
    if (this.#streams.size > this.#maxStreams) {
      const oldest = this.#streams.values().next().value!;
      this.#streams.delete(oldest);
      oldest.end('read-ahead stream dropped: too many streams');
    }
    return stream;
  }

  /** A reader that jumped away from the stream it alone was reading has left it: its read-ahead is not needed. */
  #endSeekedFrom(reader: object): void {
    for (const s of this.#streams) {
      if (s.lastReader !== reader || s.shared) continue; // a walk of several readers ends by idleness
      this.#streams.delete(s);
      s.end('read-ahead stream left by a seek');
    }
  }

  /** A fair share of the total for one stream among those reading now (itself included). */
  #shareCap(stream: ReadStream): number {
    let active = this.#streams.has(stream) ? 0 : 1;
    for (const s of this.#streams) if (s.windowBytes > 0 || s === stream) active++;
    return Math.min(this.#opts.maxBytes, Math.max(this.#opts.initialBytes, Math.floor(this.#totalBytes / active)));
  }

  #expire(now: number): void {
    for (const s of this.#streams) {
      if (now - s.lastReadAt < this.#idleMs) break; // oldest first: the rest are newer
      this.#streams.delete(s);
      s.end('read-ahead stream idle');
    }
  }
}
