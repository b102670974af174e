import type { PieceIndex } from '../metainfo/piece-layout.js';
import type { BlockRequest, Scheduler } from '../scheduler/index.js';
import type { PeerConnection } from './peer-connection.js';
import type { Source } from './source.js';

/** What a peer source reads of the scheduler, which keeps every peer's pieces, requests and rate. */
export type PeerScheduling = Pick<Scheduler, 'hasPeer' | 'peerHas' | 'peerIsSeed' | 'inflightCount' | 'rate'>;

/** One peer's row in `btmount status`. */
export interface SwarmPeerStats {
  address: string;
  source: string;
  client: string | undefined;
  downloadRate: number;
  uploadRate: number;
  /** The peer chokes us. */
  choked: boolean;
  /** We choke the peer. */
  choking: boolean;
  interested: boolean;
  inflight: number;
}

/**
 * A peer wire as a source: its connection, its key in the scheduler, and what the swarm
 * tracks of it to judge it (when it last sent a block, since when it has owed us one).
 * `C` is the swarm's handle on where the peer came from (its peer-list candidate).
 */
export class PeerWireSource<C = unknown> implements Source<BlockRequest> {
  readonly kind = 'peer';
  readonly key: string;
  readonly pc: PeerConnection;
  /** The peer-list entry it was dialled from; undefined for an incoming connection. */
  readonly candidate: C | undefined;
  /** Set once the handshake is done. */
  peerId: string | undefined;
  /** When its last block came (0: none yet). */
  lastBlockAt = 0;
  /**
   * Since when the peer has owed us a block: its last block, or our first
   * request after it owed none. Requests cancelled because another peer was
   * faster do not restart the clock of a peer that has sent nothing since.
   */
  owingSince = 0;
  readonly #scheduler: PeerScheduling;

  constructor(key: string, pc: PeerConnection, candidate: C | undefined, scheduler: PeerScheduling) {
    this.key = key;
    this.pc = pc;
    this.candidate = candidate;
    this.#scheduler = scheduler;
  }

  /** Handshake done and known to the scheduler (which drops a peer as it closes). */
  get usable(): boolean {
    return this.pc.ready && !this.pc.closed && this.#scheduler.hasPeer(this.key);
  }

  has(index: PieceIndex): boolean {
    return this.usable && this.#scheduler.peerHas(this.key, index);
  }

  /** True when it has any of the pieces. */
  hasAny(pieces: readonly PieceIndex[]): boolean {
    return this.usable && pieces.some((i) => this.#scheduler.peerHas(this.key, i));
  }

  get inflight(): number {
    return this.#scheduler.inflightCount(this.key);
  }

  /** Sends requests the scheduler has already counted as this peer's. */
  take(requests: readonly BlockRequest[], now: number): void {
    if (this.pc.closed || requests.length === 0) return;
    // If they are all it has in flight, the peer owed nothing until now.
    if (this.lastBlockAt >= this.owingSince && this.inflight === requests.length) this.owingSince = now;
    for (const r of requests) this.pc.request(r.index, r.offset, r.length);
  }

  cancel(request: BlockRequest): void {
    if (!this.pc.closed) this.pc.cancel(request.index, request.offset, request.length);
  }

  /** A block came: it owes nothing older than now. */
  delivered(now: number): void {
    this.lastBlockAt = this.owingSince = now;
  }

  /** It holds our requests and has sent nothing for `ms`. */
  stalled(now: number, ms: number): boolean {
    return this.inflight > 0 && now - this.owingSince >= ms;
  }

  /**
   * HAVE for a piece we verified, even to a btmount seed that has it: an origin learns
   * from it who can serve what (and hands out other pieces). Other clients' seeds are not
   * told: they gain nothing, and some (aria2c) hang up on a peer that turns out complete.
   */
  announce(index: PieceIndex): void {
    if (!this.usable) return;
    if (this.#scheduler.peerIsSeed(this.key) && !this.pc.peerClient?.startsWith('btmount')) return;
    this.pc.have(index);
  }

  stats(now: number): SwarmPeerStats {
    const { pc } = this;
    return {
      address: pc.address,
      source: pc.source,
      client: pc.peerClient,
      downloadRate: Math.round(this.#scheduler.rate(this.key, now)),
      uploadRate: Math.round(pc.uploadSpeed()),
      choked: pc.peerChoking,
      choking: pc.amChoking,
      interested: pc.peerInterested,
      inflight: this.inflight,
    };
  }

  close(reason: string): void {
    this.pc.destroy(reason);
  }
}
