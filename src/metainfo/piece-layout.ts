/**
 * How a torrent's byte stream is cut into pieces. Every layer that talks about
 * pieces (store, swarm, scheduler, reader) takes this, never the whole Metainfo,
 * so it knows nothing of paths.
 */

/** Index of a piece in the torrent. A distinct type so it is never mixed up with a byte offset. */
export type PieceIndex = number & { readonly __brand: 'PieceIndex' };

export const pieceIndex = (n: number): PieceIndex => n as PieceIndex;

/** 40 lower-case hex characters. */
export type InfoHash = string & { readonly __brand: 'InfoHash' };

const INFO_HASH_HEX = /^[0-9a-f]{40}$/;

export function asInfoHash(text: string): InfoHash {
  const lower = text.toLowerCase();
  if (!INFO_HASH_HEX.test(lower)) throw new Error(`not a 40-hex infohash: ${text}`);
  return lower as InfoHash;
}

/** The standard block size of the peer wire protocol: requests are for 16 KiB. */
export const BLOCK_SIZE = 16 * 1024;

export class PieceLayout {
  readonly pieceCount: number;
  readonly lastPieceLength: number;

  constructor(
    readonly pieceLength: number,
    readonly totalLength: number,
    /** SHA-1 of each piece, 20 bytes each, concatenated. */
    readonly pieceHashes: Buffer,
  ) {
    this.pieceCount = pieceHashes.length / 20;
    const tail = totalLength % pieceLength;
    this.lastPieceLength = totalLength === 0 ? 0 : tail === 0 ? pieceLength : tail;
  }

  /** Bytes in piece `index` (the last one may be short). */
  pieceSize(index: PieceIndex): number {
    return index === this.pieceCount - 1 ? this.lastPieceLength : this.pieceLength;
  }

  /** Byte offset of the first byte of piece `index` in the torrent's stream. */
  pieceOffset(index: PieceIndex): number {
    return index * this.pieceLength;
  }

  /** The expected SHA-1 of piece `index` (a view, not a copy). */
  pieceHash(index: PieceIndex): Buffer {
    return this.pieceHashes.subarray(index * 20, index * 20 + 20);
  }

  isValidPiece(index: number): index is PieceIndex {
    return Number.isInteger(index) && index >= 0 && index < this.pieceCount;
  }

  /** Number of 16 KiB blocks in a piece. */
  blockCount(index: PieceIndex): number {
    return Math.ceil(this.pieceSize(index) / BLOCK_SIZE);
  }
}
