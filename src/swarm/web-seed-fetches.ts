import type { PieceIndex } from '../metainfo/piece-layout.js';
import type { WebPieceSource } from './web-piece-source.js';
import { pickWebSeedFetches, type WantedPieceSupply } from './web-seed-picker.js';
import { WebSeedSource, type WebSeedSourceHost, type WebSeedStats } from './web-seed-source.js';

export type { WebSeedStats } from './web-seed-source.js';
export type WebSeedFetchesHost = WebSeedSourceHost;

/**
 * The web seeds of a swarm (WebSeedSources): what the picker says to start over all of
 * them, the aborts when a piece comes from elsewhere or is not wanted, and their summary.
 * Verified pieces go back to the swarm through the host's `deliver`, the path peers' pieces take.
 */
export class WebSeedFetches {
  readonly #host: WebSeedSourceHost;
  readonly #random: () => number;
  readonly #seeds: WebSeedSource[] = [];
  #closed = false;

  constructor(host: WebSeedSourceHost, random: () => number = Math.random) {
    this.#host = host;
    this.#random = random;
  }

  get size(): number {
    return this.#seeds.length;
  }

  /** The seeds, in the order added. */
  get sources(): readonly WebSeedSource[] {
    return this.#seeds;
  }

  add(origin: WebPieceSource): void {
    if (this.#closed) return origin.close();
    this.#seeds.push(new WebSeedSource(`web#${this.#seeds.length}`, origin, this.#host));
  }

  /** Some seed has a free slot and is ready: worth gathering candidates for `start`. */
  get canStart(): boolean {
    return this.#seeds.some((s) => s.freeSlots > 0);
  }

  isFetching(index: PieceIndex): boolean {
    return this.#seeds.some((s) => s.isFetching(index));
  }

  /** Starts what the picker says among `candidates` (wanted pieces no seed is fetching). */
  start(candidates: Iterable<WantedPieceSupply>, now: number): void {
    if (this.#closed || !this.canStart) return;
    const capacity = this.#seeds.map((s, id) => ({ id, ready: s.usable, freeSlots: s.freeSlots }));
    for (const pick of pickWebSeedFetches(candidates, capacity, now, { random: this.#random })) this.#seeds[pick.seed]!.take([pick.index]);
  }

  /** The piece came from another source, or nobody wants it: its fetches are aborted. */
  stop(index: PieceIndex, why: string): void {
    for (const s of this.#seeds) s.cancel(index, why);
  }

  stats(): WebSeedStats[] {
    return this.#seeds.map((s) => s.stats());
  }

  /** A few words for "why are reads waiting", or undefined without seeds. */
  summary(): string | undefined {
    if (this.#seeds.length === 0) return undefined;
    const fetching = this.#seeds.reduce((n, s) => n + s.inflight, 0);
    const backingOff = this.#seeds.filter((s) => !s.usable).length;
    return `${this.#seeds.length} web seed${this.#seeds.length === 1 ? '' : 's'}: ${fetching} pieces in flight` + (backingOff > 0 ? `, ${backingOff} backing off` : '');
  }

  /** Aborts every fetch and closes the seeds. */
  close(): void {
    this.#closed = true;
    for (const s of this.#seeds) s.close('swarm closing');
  }
}
