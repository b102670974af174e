import type { PieceIndex } from '../metainfo/piece-layout.js';

/**
 * Pieces a read just waited for in vain, so the next read of one fails at once
 * instead of waiting the whole timeout again. The kernel retries a page by
 * itself when its readahead request failed: without this, one failed `cat`
 * waited twice --read-timeout. A piece waits again as soon as a source for it
 * has appeared (more connected peers have it than when it timed out), and
 * after `holdMs` in any case (a user retrying later gets a full wait).
 */
export class RecentTimeouts {
  /** Piece → when it timed out and how many sources had it then. Oldest first (Map order). */
  readonly #failed = new Map<PieceIndex, { at: number; sources: number }>();

  readonly #holdMs: number;
  readonly #now: () => number;

  constructor(
    holdMs: number,
    now: () => number = Date.now,
  ) {
    this.#holdMs = holdMs;
    this.#now = now;
  }

  record(piece: PieceIndex, sources: number): void {
    this.#failed.delete(piece);
    this.#failed.set(piece, { at: this.#now(), sources });
    this.#expire();
  }

  /**
   * Why a read of `piece` should fail now without waiting, or undefined if it
   * should wait: it did not time out lately, or a source has appeared since.
   */
  failFastReason(piece: PieceIndex, sourcesNow: () => number): string | undefined {
    this.#expire();
    const failed = this.#failed.get(piece);
    if (!failed) return undefined;
    if (sourcesNow() > failed.sources) {
      this.#failed.delete(piece);
      return undefined;
    }
    const ago = ((this.#now() - failed.at) / 1000).toFixed(1);
    return `timed out ${ago} s ago and no new source for it has appeared since`;
  }

  /** A piece that arrived is no longer failing. */
  forget(piece: PieceIndex): void {
    this.#failed.delete(piece);
  }

  #expire(): void {
    const cutoff = this.#now() - this.#holdMs;
    for (const [piece, { at }] of this.#failed) {
      if (at > cutoff) break;
      this.#failed.delete(piece);
    }
  }
}
