import { createHash } from 'node:crypto';
import type { PieceIndex, PieceLayout } from './piece-layout.js';

/**
 * A piece whose SHA-1 matched the torrent. The only way to make one is
 * `VerifiedPiece.check`, so any function that takes a VerifiedPiece cannot be handed
 * bytes a peer sent but nobody checked.
 */
export class VerifiedPiece {
  // A private brand: structurally identical objects do not type-check as VerifiedPiece.
  readonly #verified = true;

  private constructor(
    readonly index: PieceIndex,
    readonly data: Buffer,
  ) {}

  static check(layout: PieceLayout, index: PieceIndex, data: Buffer): VerifiedPiece | undefined {
    if (!layout.isValidPiece(index) || data.length !== layout.pieceSize(index)) return undefined;
    const digest = createHash('sha1').update(data).digest();
    return digest.equals(layout.pieceHash(index)) ? new VerifiedPiece(index, data) : undefined;
  }
}
