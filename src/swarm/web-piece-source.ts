import type { PieceIndex } from '../metainfo/index.js';
import type { VerifiedPiece } from '../metainfo/verified-piece.js';

/**
 * A source that has every piece and delivers whole verified pieces on request: a BEP 19 web
 * seed (an HTTP origin). The swarm asks it only for what connected peers cannot deliver in
 * time, at most `parallelPieces` at once, and never while it is not `ready`. The swarm layer
 * knows only this shape; src/webseed/ implements it over HTTP.
 */
export interface WebPieceSource {
  /** Stable name for logs and status: the seed's URL. */
  readonly name: string;
  /** False while the source backs off after a failure: ask peers instead. */
  readonly ready: boolean;
  /** How many pieces may be in flight from this source at once. */
  readonly parallelPieces: number;
  /** The piece's bytes, already checked against the torrent's hash; rejects on any failure or abort. */
  fetchVerifiedPiece(index: PieceIndex, signal?: AbortSignal): Promise<VerifiedPiece>;
  close(): void;
}
