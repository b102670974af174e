import type { PieceIndex } from '../metainfo/piece-layout.js';
import type { VerifiedPiece } from '../metainfo/verified-piece.js';
import type { Source } from './source.js';
import type { WebPieceSource } from './web-piece-source.js';

/** One web seed's line in `btmount status`. */
export interface WebSeedStats {
  name: string;
  /** Verified pieces it delivered. */
  piecesFetched: number;
  bytesFetched: number;
  /** Pieces asked of it and not yet settled. */
  inflight: number;
}

export interface WebSeedSourceHost {
  /** The verified piece it fetched, for the swarm to take like a peer-assembled one. */
  deliver(piece: VerifiedPiece, seed: string): void;
  /** A fetch failed (not one we cancelled): the piece stays with the peers. */
  failed(seed: string, index: PieceIndex, err: unknown): void;
}

/**
 * A web seed as a source: it takes whole pieces, each an HTTP fetch of its own that
 * `cancel` aborts, and counts what it delivered. Which pieces it is given is the picker's
 * business (web-seed-picker.ts, run by WebSeedFetches over all seeds).
 */
export class WebSeedSource implements Source<PieceIndex> {
  readonly kind = 'web';
  readonly key: string;
  readonly #origin: WebPieceSource;
  readonly #host: WebSeedSourceHost;
  /** Per piece asked of it: aborts the HTTP fetch. */
  readonly #inflight = new Map<PieceIndex, AbortController>();
  #piecesFetched = 0;
  #bytesFetched = 0;
  #closed = false;

  constructor(key: string, origin: WebPieceSource, host: WebSeedSourceHost) {
    this.key = key;
    this.#origin = origin;
    this.#host = host;
  }

  get name(): string {
    return this.#origin.name;
  }

  /** Not backing off after a failure (and not closed). */
  get usable(): boolean {
    return !this.#closed && this.#origin.ready;
  }

  /** An origin has every piece. */
  has(_index: PieceIndex): boolean {
    return true;
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  /** Pieces it may be given now (0 while it is not usable). */
  get freeSlots(): number {
    return this.usable ? Math.max(0, this.#origin.parallelPieces - this.#inflight.size) : 0;
  }

  isFetching(index: PieceIndex): boolean {
    return this.#inflight.has(index);
  }

  take(pieces: readonly PieceIndex[]): void {
    for (const index of pieces) if (!this.#closed && !this.#inflight.has(index)) this.#fetch(index);
  }

  cancel(index: PieceIndex, why: string): void {
    const ac = this.#inflight.get(index);
    if (!ac) return;
    this.#inflight.delete(index);
    ac.abort(new Error(why));
  }

  stats(): WebSeedStats {
    return { name: this.name, piecesFetched: this.#piecesFetched, bytesFetched: this.#bytesFetched, inflight: this.#inflight.size };
  }

  /** Aborts every fetch and closes the origin. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const ac of this.#inflight.values()) ac.abort(new Error(reason));
    this.#inflight.clear();
    this.#origin.close();
  }

  #fetch(index: PieceIndex): void {
    const ac = new AbortController();
    this.#inflight.set(index, ac);
    let fetched: Promise<VerifiedPiece>;
    try {
      fetched = this.#origin.fetchVerifiedPiece(index, ac.signal);
    } catch (err) {
      fetched = Promise.reject(err);
    }
    const settle = (): void => {
      if (this.#inflight.get(index) === ac) this.#inflight.delete(index);
    };
    fetched.then(
      (piece) => {
        settle();
        if (this.#closed) return;
        if (piece.index !== index) return this.#host.failed(this.name, index, new Error(`sent piece ${piece.index} when asked for ${index}`));
        this.#piecesFetched++;
        this.#bytesFetched += piece.data.length;
        this.#host.deliver(piece, this.name);
      },
      (err: unknown) => {
        settle();
        if (!this.#closed && !ac.signal.aborted) this.#host.failed(this.name, index, err);
      },
    );
  }
}
