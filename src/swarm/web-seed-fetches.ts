import type { PieceIndex } from '../metainfo/piece-layout.js';
import type { VerifiedPiece } from '../metainfo/verified-piece.js';
import type { WebPieceSource } from './web-piece-source.js';
import { pickWebSeedFetches, type WantedPieceSupply } from './web-seed-picker.js';

/**
 * The web seeds of a swarm as one kind of source: the fetches each has running (at most
 * its parallelPieces, none while it is not ready), what the picker says to start, the
 * aborts when a piece comes from elsewhere or is not wanted, and their counters. Verified
 * pieces go back to the swarm through `deliver`, the path peers' pieces take.
 */

export interface WebSeedStats {
  name: string;
  /** Verified pieces it delivered. */
  piecesFetched: number;
  bytesFetched: number;
  /** Pieces asked of it and not yet settled. */
  inflight: number;
}

export interface WebSeedFetchesHost {
  /** The verified piece a seed fetched, for the swarm to take like a peer-assembled one. */
  deliver(piece: VerifiedPiece, seed: string): void;
  /** A fetch failed (not one we aborted): the piece stays with the peers. */
  failed(seed: string, index: PieceIndex, err: unknown): void;
}

interface SeedState {
  readonly id: number;
  readonly source: WebPieceSource;
  /** Per piece asked of it: aborts the HTTP fetch. */
  readonly inflight: Map<PieceIndex, AbortController>;
  piecesFetched: number;
  bytesFetched: number;
}

export class WebSeedFetches {
  readonly #host: WebSeedFetchesHost;
  readonly #random: () => number;
  readonly #seeds: SeedState[] = [];
  #closed = false;

  constructor(host: WebSeedFetchesHost, random: () => number = Math.random) {
    this.#host = host;
    this.#random = random;
  }

  get size(): number {
    return this.#seeds.length;
  }

  add(source: WebPieceSource): void {
    if (this.#closed) return source.close();
    this.#seeds.push({ id: this.#seeds.length, source, inflight: new Map(), piecesFetched: 0, bytesFetched: 0 });
  }

  /** Some seed has a free slot and is ready: worth gathering candidates for `start`. */
  get canStart(): boolean {
    return this.#seeds.some((s) => s.source.ready && s.inflight.size < s.source.parallelPieces);
  }

  isFetching(index: PieceIndex): boolean {
    return this.#seeds.some((s) => s.inflight.has(index));
  }

  /** Starts what the picker says among `candidates` (wanted pieces no seed is fetching). */
  start(candidates: Iterable<WantedPieceSupply>, now: number): void {
    if (this.#closed || !this.canStart) return;
    const capacity = this.#seeds.map((s) => ({ id: s.id, ready: s.source.ready, freeSlots: s.source.parallelPieces - s.inflight.size }));
    for (const pick of pickWebSeedFetches(candidates, capacity, now, { random: this.#random })) this.#fetch(this.#seeds[pick.seed]!, pick.index);
  }

  /** The piece came from another source, or nobody wants it: its fetches are aborted. */
  stop(index: PieceIndex, why: string): void {
    for (const s of this.#seeds) {
      const ac = s.inflight.get(index);
      if (!ac) continue;
      s.inflight.delete(index);
      ac.abort(new Error(why));
    }
  }

  stats(): WebSeedStats[] {
    return this.#seeds.map((s) => ({ name: s.source.name, piecesFetched: s.piecesFetched, bytesFetched: s.bytesFetched, inflight: s.inflight.size }));
  }

  /** A few words for "why are reads waiting", or undefined without seeds. */
  summary(): string | undefined {
    if (this.#seeds.length === 0) return undefined;
    const fetching = this.#seeds.reduce((n, s) => n + s.inflight.size, 0);
    const backingOff = this.#seeds.filter((s) => !s.source.ready).length;
    return `${this.#seeds.length} web seed${this.#seeds.length === 1 ? '' : 's'}: ${fetching} pieces in flight` + (backingOff > 0 ? `, ${backingOff} backing off` : '');
  }

  /** Aborts every fetch and closes the seeds. */
  close(): void {
    this.#closed = true;
    for (const s of this.#seeds) {
      for (const ac of s.inflight.values()) ac.abort(new Error('swarm closing'));
      s.inflight.clear();
      s.source.close();
    }
  }

  #fetch(seed: SeedState, index: PieceIndex): void {
    const ac = new AbortController();
    seed.inflight.set(index, ac);
    const name = seed.source.name;
    let fetched: Promise<VerifiedPiece>;
    try {
      fetched = seed.source.fetchVerifiedPiece(index, ac.signal);
    } catch (err) {
      fetched = Promise.reject(err);
    }
    fetched.then(
      (piece) => {
        if (seed.inflight.get(index) === ac) seed.inflight.delete(index);
        if (this.#closed) return;
        if (piece.index !== index) return this.#host.failed(name, index, new Error(`sent piece ${piece.index} when asked for ${index}`));
        seed.piecesFetched++;
        seed.bytesFetched += piece.data.length;
        this.#host.deliver(piece, name);
      },
      (err: unknown) => {
        if (seed.inflight.get(index) === ac) seed.inflight.delete(index);
        if (!this.#closed && !ac.signal.aborted) this.#host.failed(name, index, err);
      },
    );
  }
}
