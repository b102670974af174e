import type { PieceIndex } from '../metainfo/piece-layout.js';

/**
 * Pieces waiting to be started, grouped by how many peers have them (rarest
 * first). Moving a piece between groups is O(1); iteration goes rarest group
 * first, and within a group in insertion order (deterministic).
 */
export class AvailabilityBuckets {
  readonly #buckets = new Map<number, Set<PieceIndex>>();
  readonly #where = new Map<PieceIndex, number>();
  #sortedKeys: number[] = [];

  get size(): number {
    return this.#where.size;
  }

  has(index: PieceIndex): boolean {
    return this.#where.has(index);
  }

  add(index: PieceIndex, availability: number): void {
    if (this.#where.has(index)) this.delete(index);
    let bucket = this.#buckets.get(availability);
    if (!bucket) {
      bucket = new Set();
      this.#buckets.set(availability, bucket);
      this.#sortedKeys = [...this.#buckets.keys()].sort((a, b) => a - b);
    }
    bucket.add(index);
    this.#where.set(index, availability);
  }

  delete(index: PieceIndex): boolean {
    const availability = this.#where.get(index);
    if (availability === undefined) return false;
    this.#where.delete(index);
    const bucket = this.#buckets.get(availability)!;
    bucket.delete(index);
    if (bucket.size === 0) {
      this.#buckets.delete(availability);
      this.#sortedKeys = this.#sortedKeys.filter((k) => k !== availability);
    }
    return true;
  }

  /** Re-files a piece whose availability changed. */
  update(index: PieceIndex, availability: number): void {
    const current = this.#where.get(index);
    if (current === undefined || current === availability) return;
    this.delete(index);
    this.add(index, availability);
  }

  /**
   * Rarest first. Deleting or re-filing pieces while iterating is safe (a Set
   * iterator skips deleted entries); a re-filed piece may be visited again.
   */
  *inOrder(): Generator<PieceIndex> {
    for (const key of [...this.#sortedKeys]) {
      const bucket = this.#buckets.get(key);
      if (!bucket) continue;
      for (const index of bucket) yield index;
    }
  }
}
