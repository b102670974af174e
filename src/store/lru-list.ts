/**
 * Recency order of the evictable pieces: an intrusive doubly linked list over
 * two Int32Arrays indexed by piece index. Touch, insert, remove and "take the
 * least recently used" are O(1) and allocate nothing, so the store's memory is
 * 8 bytes per piece of the torrent, fixed at open, however many pieces it holds.
 * (lru-cache would keep a JS value per entry and evict on its own; the store
 * needs to keep pinned pieces out of the order and decide when to evict.)
 */
export class LruList {
  readonly #prev: Int32Array;
  readonly #next: Int32Array;
  /** Sentinel slot: next[head] is the most recent, prev[head] the least recent. */
  readonly #head: number;
  #size = 0;

  constructor(capacity: number) {
    this.#prev = new Int32Array(capacity + 1).fill(-1);
    this.#next = new Int32Array(capacity + 1).fill(-1);
    this.#head = capacity;
    this.#prev[capacity] = capacity;
    this.#next[capacity] = capacity;
  }

  get size(): number {
    return this.#size;
  }

  has(i: number): boolean {
    return this.#next[i] !== -1;
  }

  /** Makes `i` the most recently used, inserting it if absent. */
  touch(i: number): void {
    if (this.has(i)) this.#unlink(i);
    else this.#size++;
    const head = this.#head;
    const first = this.#next[head]!;
    this.#prev[i] = head;
    this.#next[i] = first;
    this.#prev[first] = i;
    this.#next[head] = i;
  }

  /** Inserts `i` as the least recently used (used when rebuilding the order at open). */
  pushOldest(i: number): void {
    if (this.has(i)) this.#unlink(i);
    else this.#size++;
    const head = this.#head;
    const last = this.#prev[head]!;
    this.#next[i] = head;
    this.#prev[i] = last;
    this.#next[last] = i;
    this.#prev[head] = i;
  }

  remove(i: number): boolean {
    if (!this.has(i)) return false;
    this.#unlink(i);
    this.#size--;
    return true;
  }

  /** The least recently used entry, or -1 when empty. */
  oldest(): number {
    const last = this.#prev[this.#head]!;
    return last === this.#head ? -1 : last;
  }

  /** Oldest to newest. */
  *values(): Generator<number> {
    for (let i = this.#prev[this.#head]!; i !== this.#head; i = this.#prev[i]!) yield i;
  }

  #unlink(i: number): void {
    const p = this.#prev[i]!;
    const n = this.#next[i]!;
    this.#next[p] = n;
    this.#prev[n] = p;
    this.#prev[i] = -1;
    this.#next[i] = -1;
  }
}
