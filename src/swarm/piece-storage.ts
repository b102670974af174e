import { EventEmitter } from 'node:events';
import type { PieceIndex, PieceLayout } from '../metainfo/piece-layout.js';
import type { VerifiedPiece } from '../metainfo/verified-piece.js';

/**
 * What the swarm needs of a place that holds verified pieces. The disk cache
 * (PieceStore) satisfies it for a mount and DirectoryPieceStorage for `seed`,
 * both in store/ and by shape (the store imports nothing of the swarm);
 * MemoryPieceStorage for tests and benchmarks.
 *
 * Emits 'added'(index) when a piece becomes readable and 'evicted'(index)
 * when it stops being readable.
 */
export interface PieceStorage extends EventEmitter {
  has(index: PieceIndex): boolean;
  haveIndices(): Iterable<PieceIndex>;
  /**
   * Resolves true once the piece is readable; false if it was dropped (no room).
   * The swarm reuses `piece.data` for another piece once this settles: an
   * implementation that keeps the bytes in memory must copy them.
   */
  put(piece: VerifiedPiece): Promise<boolean>;
  /** A copy or view of `length` bytes at `offset` of a held piece; rejects if not held. */
  readBlock(index: PieceIndex, offset: number, length: number): Promise<Buffer>;
}

/** Verified pieces in memory, optionally bounded (oldest evicted first). */
export class MemoryPieceStorage extends EventEmitter implements PieceStorage {
  readonly #pieces = new Map<PieceIndex, Buffer>();

  readonly #maxPieces: number;

  constructor(
    readonly layout: PieceLayout,
    maxPieces: number = Infinity,
  ) {
    super();
    this.#maxPieces = maxPieces;
  }

  get size(): number {
    return this.#pieces.size;
  }

  has(index: PieceIndex): boolean {
    return this.#pieces.has(index);
  }

  haveIndices(): Iterable<PieceIndex> {
    return [...this.#pieces.keys()];
  }

  async put(piece: VerifiedPiece): Promise<boolean> {
    if (this.#pieces.has(piece.index)) return true;
    if (this.#pieces.size >= this.#maxPieces) {
      const oldest = this.#pieces.keys().next().value as PieceIndex;
      this.#pieces.delete(oldest);
      this.emit('evicted', oldest);
    }
    this.#pieces.set(piece.index, Buffer.from(piece.data)); // a copy: the swarm reuses its buffer
    this.emit('added', piece.index);
    return true;
  }

  async readBlock(index: PieceIndex, offset: number, length: number): Promise<Buffer> {
    const data = this.#pieces.get(index);
    if (!data) throw new Error(`piece ${index} is not held`);
    if (offset < 0 || length < 0 || offset + length > data.length) throw new RangeError(`block ${offset}+${length} outside piece ${index}`);
    return data.subarray(offset, offset + length);
  }

  /** The piece's bytes (tests). */
  get(index: PieceIndex): Buffer | undefined {
    return this.#pieces.get(index);
  }
}
