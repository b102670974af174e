import type { ByteMap } from '../metainfo/byte-map.js';
import type { TorrentFile } from '../metainfo/file-tree.js';
import type { PieceIndex } from '../metainfo/piece-layout.js';

/**
 * An order in which a reader may walk files, seen as one contiguous byte
 * space: the end of one file is the start of the next. A stream is a run of
 * reads that moves forward in such a space, so a reader walking a folder is
 * one stream across its files, and read-ahead runs past the end of the open
 * file into the files that come next.
 */
export interface ReadOrder {
  /** Where byte `offset` of `file` is in this order's space; undefined if the file is not in it. */
  positionOf(file: TorrentFile, offset: number): number | undefined;
  /** The pieces holding [from, to) of this order's space, in order, each once in a row. */
  piecesOf(from: number, to: number): PieceIndex[];
}

/** The torrent's own order: its byte stream (pad files keep their place; they are part of pieces anyway). */
export class TorrentOrder implements ReadOrder {
  readonly #byteMap: ByteMap;
  constructor(byteMap: ByteMap) {
    this.#byteMap = byteMap;
  }

  positionOf(file: TorrentFile, offset: number): number {
    if (offset > 0) return file.offset + offset;
    // A file's start is where the data before it ended: pad and empty files between do not break a walk.
    let at = file.index;
    while (at > 0 && this.#isGap(this.#byteMap.files[at - 1]!)) at--;
    return this.#byteMap.files[at]!.offset;
  }

  /** Whether `files`, walked in this order, read the torrent's data in order (only pad and empty files between). */
  follows(files: readonly TorrentFile[]): boolean {
    for (let i = 1; i < files.length; i++) {
      const prev = files[i - 1]!;
      const next = files[i]!;
      if (next.index <= prev.index) return false;
      for (let j = prev.index + 1; j < next.index; j++) if (!this.#isGap(this.#byteMap.files[j]!)) return false;
    }
    return true;
  }

  #isGap(file: TorrentFile): boolean {
    return file.pad || file.length === 0;
  }

  piecesOf(from: number, to: number): PieceIndex[] {
    return this.#byteMap.spansOfStreamRange(from, to - from).map((s) => s.piece);
  }
}

/**
 * The files of one directory listing, in the order readdir gave them, when
 * that is not the torrent's order (a torrent may list a/1, b/1, a/2: walking
 * `a` is then no run of the torrent's bytes). Positions are prefix sums of the
 * file lengths, built once per listing.
 */
export class ListingOrder implements ReadOrder {
  readonly #position = new Map<TorrentFile, number>();
  /** starts[i]: position of files[i]'s first byte; one more entry for the end. */
  readonly #starts: number[];

  readonly #byteMap: ByteMap;
  readonly #files: readonly TorrentFile[];

  constructor(
    byteMap: ByteMap,
    files: readonly TorrentFile[],
  ) {
    this.#byteMap = byteMap;
    this.#files = files;
    this.#starts = new Array<number>(files.length + 1);
    let at = 0;
    files.forEach((f, i) => {
      this.#starts[i] = at;
      this.#position.set(f, i);
      at += f.length;
    });
    this.#starts[files.length] = at;
  }

  positionOf(file: TorrentFile, offset: number): number | undefined {
    const i = this.#position.get(file);
    return i === undefined ? undefined : this.#starts[i]! + offset;
  }

  piecesOf(from: number, to: number): PieceIndex[] {
    const pieces: PieceIndex[] = [];
    for (let i = this.#fileAt(from); i < this.#files.length && this.#starts[i]! < to; i++) {
      const file = this.#files[i]!;
      const start = this.#starts[i]!;
      const offset = Math.max(0, from - start);
      for (const { piece } of this.#byteMap.spansOfFileRange(file, offset, Math.min(file.length, to - start) - offset)) {
        if (pieces[pieces.length - 1] !== piece) pieces.push(piece);
      }
    }
    return pieces;
  }

  /** Index of the file holding position `at` (binary search over the prefix sums). */
  #fileAt(at: number): number {
    let lo = 0;
    let hi = this.#files.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#starts[mid + 1]! <= at) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
