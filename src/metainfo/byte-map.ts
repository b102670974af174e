import { pieceIndex, type PieceIndex, type PieceLayout } from './piece-layout.js';
import type { TorrentFile } from './file-tree.js';

/** Part of one piece: `length` bytes starting `offsetInPiece` bytes into piece `piece`. */
export interface PieceSpan {
  piece: PieceIndex;
  offsetInPiece: number;
  length: number;
}

/** Part of one file that lies inside a given piece. */
export interface FileSpan {
  file: TorrentFile;
  offsetInFile: number;
  offsetInPiece: number;
  length: number;
}

/**
 * The two directions between the byte stream and pieces: a byte range of a
 * file → the pieces it touches (for reads), and a piece → the files it covers
 * (for seeding from a folder and for status). O(pieces touched), and
 * O(log files) to find where a piece starts.
 */
export class ByteMap {
  constructor(
    readonly layout: PieceLayout,
    /** All files in torrent order, pad files included, so offsets are contiguous. */
    readonly files: readonly TorrentFile[],
  ) {}

  /** Pieces holding bytes [offset, offset + length) of the torrent's stream. */
  spansOfStreamRange(offset: number, length: number): PieceSpan[] {
    const spans: PieceSpan[] = [];
    const end = Math.min(offset + length, this.layout.totalLength);
    const { pieceLength } = this.layout;
    for (let at = Math.max(0, offset); at < end; ) {
      const piece = Math.floor(at / pieceLength);
      const offsetInPiece = at - piece * pieceLength;
      const take = Math.min(pieceLength - offsetInPiece, end - at);
      spans.push({ piece: pieceIndex(piece), offsetInPiece, length: take });
      at += take;
    }
    return spans;
  }

  /** Pieces holding bytes [offset, offset + length) of `file`, clipped to the file's end. */
  spansOfFileRange(file: TorrentFile, offset: number, length: number): PieceSpan[] {
    const clipped = Math.max(0, Math.min(length, file.length - offset));
    if (clipped === 0 || offset < 0) return [];
    return this.spansOfStreamRange(file.offset + offset, clipped);
  }

  /** First and last piece of a file, or undefined for an empty file. */
  pieceRangeOfFile(file: TorrentFile): { first: PieceIndex; last: PieceIndex } | undefined {
    if (file.length === 0) return undefined;
    const { pieceLength } = this.layout;
    return {
      first: pieceIndex(Math.floor(file.offset / pieceLength)),
      last: pieceIndex(Math.floor((file.offset + file.length - 1) / pieceLength)),
    };
  }

  /** The files (pad files included; skip them if you only want data) that piece `piece` covers. */
  filesOfPiece(piece: PieceIndex): FileSpan[] {
    const start = this.layout.pieceOffset(piece);
    const end = start + this.layout.pieceSize(piece);
    const spans: FileSpan[] = [];
    for (let i = this.#firstFileEndingAfter(start); i < this.files.length; i++) {
      const file = this.files[i]!;
      if (file.offset >= end) break;
      if (file.length === 0) continue;
      const from = Math.max(start, file.offset);
      const to = Math.min(end, file.offset + file.length);
      spans.push({ file, offsetInFile: from - file.offset, offsetInPiece: from - start, length: to - from });
    }
    return spans;
  }

  /** Binary search: index of the first file whose last byte is at or after `offset`. */
  #firstFileEndingAfter(offset: number): number {
    let lo = 0;
    let hi = this.files.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const file = this.files[mid]!;
      if (file.offset + file.length <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
