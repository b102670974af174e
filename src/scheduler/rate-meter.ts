/**
 * Bytes per second over a sliding window, driven by explicit timestamps (ms) so
 * it is deterministic in tests. The window is made of fixed-width slots.
 */
export class RateMeter {
  readonly #slots: Float64Array;
  #headSlot = -1; // absolute slot number of the newest slot
  readonly #startedAt: number;

  readonly #slotMs: number;

  constructor(
    now: number,
    slotMs: number = 250,
    slotCount = 8,
  ) {
    this.#slotMs = slotMs;
    this.#slots = new Float64Array(slotCount);
    this.#startedAt = now;
  }

  add(now: number, bytes: number): void {
    this.#advance(now);
    this.#slots[this.#headSlot % this.#slots.length]! += bytes;
  }

  /** Bytes per second over the window (or since the meter started, if younger). */
  rate(now: number): number {
    this.#advance(now);
    let sum = 0;
    for (const v of this.#slots) sum += v;
    const windowMs = this.#slots.length * this.#slotMs;
    const age = Math.max(now - this.#startedAt, this.#slotMs);
    return (sum * 1000) / Math.min(windowMs, age);
  }

  #advance(now: number): void {
    const slot = Math.floor(now / this.#slotMs);
    if (this.#headSlot < 0) {
      this.#headSlot = slot;
      return;
    }
    if (slot <= this.#headSlot) return;
    const steps = Math.min(slot - this.#headSlot, this.#slots.length);
    for (let i = 1; i <= steps; i++) this.#slots[(this.#headSlot + i) % this.#slots.length] = 0;
    this.#headSlot = slot;
  }
}
