/**
 * Which upload requests an origin serves, so that it sends each piece about
 * once and the nodes trade the rest (the aim of BEP 16 super-seeding and
 * libtorrent's share mode). A seed cannot refuse a request in plain BitTorrent;
 * with the fast extension it can reject one, and that is the lever used here,
 * rather than hiding pieces from HAVE messages: a node whose read is blocked must
 * always be able to see who has its piece.
 *
 * - A request for a piece another connected peer has (one still downloading: a
 *   peer with every piece is another origin, see Swarm), or that we are sending
 *   another peer right now, is rejected: the requester gets it from that peer
 *   (btmount's scheduler does not ask us again for a while).
 * - A request for a piece only we and other seeds have is served, up to
 *   `copiesBesideSeeds` copies in all (then the seeds serve it): once the only
 *   node that had a piece finishes, it is a seed, and rejecting in its favour made
 *   its one upload the source of the last pieces for every other node while we
 *   idled (8 nodes: 10–15 s); serving without a bound cost the origin 1.4–1.7× the
 *   dataset.
 * - A request repeated after a reject (`repeatAfterMs` later, so not the rest of
 *   the same burst) is served: the requester's deadline is near, or the other
 *   peer did not deliver. Nobody is starved.
 * - Once we serve a peer a block of a piece, the rest of that piece is served to it
 *   too (while we keep sending it, `holdMs`): else each repeat got one block and the
 *   other blocks of the piece were rejected again, a piece took a round of rejects
 *   per block, and the nodes stalled behind it (8 nodes: the origin sent ~7 blocks a
 *   second for seconds while every node waited for the same piece).
 *
 * Pure: the Swarm tells it what it sends and who left; `othersHave` answers
 * from the peers' bitfields and HAVEs.
 */
export type ShareMode = 'distinct' | 'all';

export type ShareVerdict = 'serve' | 'reject';

export interface SharePolicyOptions {
  /** A peer we sent a block of a piece within this long is taken to be getting that piece. Default 3 s. */
  holdMs?: number;
  /** A request repeated this long after we rejected it is served. Default 250 ms. */
  repeatAfterMs?: number;
  /** Copies of a piece we send while another seed has it (see above). Default 1. */
  copiesBesideSeeds?: number;
}

/** Reject records kept at most (each is a few bytes; old ones are dropped first). */
const MAX_REJECTED = 65_536;

export class SharePolicy {
  readonly #holdMs: number;
  readonly #repeatAfterMs: number;
  readonly #copiesBesideSeeds: number;
  /** piece → peers we started sending it to (a peer again once its hold lapsed counts again). */
  readonly #copies = new Map<number, number>();
  /** piece → peer → when we last accepted or sent it a block of the piece. */
  readonly #sending = new Map<number, Map<string, number>>();
  /** `piece peer` → when we first rejected that peer's request for the piece. */
  readonly #rejected = new Map<string, number>();

  constructor(opts: SharePolicyOptions = {}) {
    this.#holdMs = opts.holdMs ?? 3000;
    this.#repeatAfterMs = opts.repeatAfterMs ?? 250;
    this.#copiesBesideSeeds = opts.copiesBesideSeeds ?? 1;
  }

  /**
   * `othersHave(piece, peer)`: some connected peer other than `peer`, still downloading, has
   * the piece; `seedHas(piece, peer)`: some other connected peer with every piece has it.
   */
  decide(
    peer: string,
    piece: number,
    now: number,
    othersHave: (piece: number, peer: string) => boolean,
    seedHas: (piece: number, peer: string) => boolean = () => false,
  ): ShareVerdict {
    if (this.#sendingTo(piece, peer, now)) return 'serve';
    const key = `${piece} ${peer}`;
    const rejectedAt = this.#rejected.get(key);
    if (rejectedAt !== undefined) {
      if (now - rejectedAt < this.#repeatAfterMs) return 'reject';
      this.#rejected.delete(key);
      return 'serve';
    }
    const seedsServeIt = (): boolean => (this.#copies.get(piece) ?? 0) >= this.#copiesBesideSeeds && seedHas(piece, peer);
    if (!othersHave(piece, peer) && !this.#sendingToAnother(piece, peer, now) && !seedsServeIt()) return 'serve';
    if (this.#rejected.size >= MAX_REJECTED) this.#rejected.delete(this.#rejected.keys().next().value as string);
    this.#rejected.set(key, now);
    return 'reject';
  }

  /** We accepted (or sent) a request of `peer` for a block of `piece`. */
  serving(peer: string, piece: number, now: number): void {
    let peers = this.#sending.get(piece);
    if (!peers) this.#sending.set(piece, (peers = new Map()));
    if (!peers.has(peer)) this.#copies.set(piece, (this.#copies.get(piece) ?? 0) + 1);
    peers.set(peer, now);
  }

  peerLeft(peer: string): void {
    for (const [piece, peers] of this.#sending) {
      peers.delete(peer);
      if (peers.size === 0) this.#sending.delete(piece);
    }
    const suffix = ` ${peer}`;
    for (const key of this.#rejected.keys()) if (key.endsWith(suffix)) this.#rejected.delete(key);
  }

  /** We accepted or sent `peer` a block of the piece within holdMs. */
  #sendingTo(piece: number, peer: string, now: number): boolean {
    const at = this.#sending.get(piece)?.get(peer);
    return at !== undefined && now - at < this.#holdMs;
  }

  #sendingToAnother(piece: number, peer: string, now: number): boolean {
    const peers = this.#sending.get(piece);
    if (!peers) return false;
    for (const [other, at] of peers) {
      if (now - at >= this.#holdMs) peers.delete(other);
      else if (other !== peer) return true;
    }
    if (peers.size === 0) this.#sending.delete(piece);
    return false;
  }
}
