import type { PieceIndex } from '../metainfo/piece-layout.js';

/**
 * One place pieces come from, as the swarm schedules over it. Two kinds:
 * - 'peer' (PeerWireSource): a BitTorrent wire; it takes block requests, which the
 *   Scheduler hands out over all peers at once;
 * - 'web' (WebSeedSource): an HTTP origin; it takes whole pieces, which the web-seed
 *   picker hands out for what the peers cannot deliver.
 * `Ask` is what the source takes: a block request for a peer, a piece index for a web seed.
 * What either delivers ends up on the swarm's one path for verified pieces.
 */
export interface Source<Ask> {
  /** Unique within the swarm, stable for the source's life (the scheduler's key for a peer). */
  readonly key: string;
  readonly kind: 'peer' | 'web';
  /** It may be asked now: a peer's handshake is done (and it is not closing), a web seed is not backing off. */
  readonly usable: boolean;
  /** It could deliver the piece (a web seed has every piece). */
  has(index: PieceIndex): boolean;
  /** What it was asked for and has not delivered: blocks for a peer, pieces for a web seed. */
  readonly inflight: number;
  /** Asks it for these (the caller has decided they are its to serve). */
  take(asks: readonly Ask[], now: number): void;
  /** What was asked is no longer needed from it (another source was faster, nobody wants it). */
  cancel(ask: Ask, why: string): void;
  /** Ends it: a peer's connection is destroyed, a web seed's fetches are aborted and it is closed. */
  close(reason: string): void;
}
