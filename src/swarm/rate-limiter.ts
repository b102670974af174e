/**
 * A token bucket in bytes per second. `take` spends tokens and says how long to
 * wait before the spent bytes are within the rate (0 = go now). A rate of 0
 * means no limit.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;

  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: () => number;

  /** `clock` gives the time in ms (a test's fake clock; Date.now otherwise). */
  constructor(rate: number, burst: number = Math.max(rate / 4, 64 * 1024), clock: () => number = Date.now) {
    this.#rate = rate;
    this.#burst = burst;
    this.#clock = clock;
    this.#tokens = this.#burst;
    this.#last = clock();
  }

  /** The most that can be spent at once after a pause. */
  get burst(): number {
    return this.#burst;
  }

  get unlimited(): boolean {
    return this.#rate <= 0;
  }

  /** Spends `bytes`; returns ms until the bucket is back above zero. */
  take(bytes: number, now = this.#clock()): number {
    if (this.unlimited) return 0;
    this.#refill(now);
    this.#tokens -= bytes;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.#rate);
  }

  /** ms until `bytes` could be spent without going negative. */
  waitFor(bytes: number, now = this.#clock()): number {
    if (this.unlimited) return 0;
    this.#refill(now);
    return this.#tokens >= bytes ? 0 : Math.ceil(((bytes - this.#tokens) * 1000) / this.#rate);
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
  }
}
