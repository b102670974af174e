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

  constructor(
    rate: number,
    burst: number = Math.max(rate / 4, 64 * 1024),
    now = Date.now(),
  ) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = this.#burst;
    this.#last = now;
  }

  get unlimited(): boolean {
    return this.#rate <= 0;
  }

  /** Spends `bytes`; returns ms until the bucket is back above zero. */
  take(bytes: number, now = Date.now()): number {
    if (this.unlimited) return 0;
    this.#refill(now);
    this.#tokens -= bytes;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.#rate);
  }

  /** ms until `bytes` could be spent without going negative. */
  waitFor(bytes: number, now = Date.now()): number {
    if (this.unlimited) return 0;
    this.#refill(now);
    return this.#tokens >= bytes ? 0 : Math.ceil(((bytes - this.#tokens) * 1000) / this.#rate);
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
  }
}
