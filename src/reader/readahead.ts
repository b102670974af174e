/**
 * Sequential-read detection for one open file, in the manner of
 * mountpoint-s3's prefetcher: reads that continue where the last one ended
 * grow a window (doubling) of bytes to fetch ahead; a jump elsewhere drops it,
 * except a small step back (out-of-order kernel requests), which keeps it.
 */
export interface ReadAheadOptions {
  /** First window after a sequential read is seen. */
  initialBytes: number;
  /** The window never grows past this. */
  maxBytes: number;
  /** A backward step this small is not a seek. */
  backwardToleranceBytes: number;
}

export class ReadAheadWindow {
  #expectedOffset = -1;
  #windowBytes = 0;

  constructor(private readonly opts: ReadAheadOptions) {}

  get windowBytes(): number {
    return this.#windowBytes;
  }

  /** Records a read and returns the byte range to fetch ahead of it, if any. */
  observe(offset: number, length: number): { offset: number; length: number } | undefined {
    const expected = this.#expectedOffset;
    const end = offset + length;
    const continues = offset === expected || (expected > 0 && offset > expected - this.opts.backwardToleranceBytes && offset < expected);
    // The very first read at offset 0 is the start of a likely stream too.
    if (continues || (expected === -1 && offset === 0)) {
      this.#windowBytes = Math.min(this.opts.maxBytes, this.#windowBytes === 0 ? this.opts.initialBytes : this.#windowBytes * 2);
    } else {
      this.#windowBytes = 0; // a jump: random access
    }
    this.#expectedOffset = Math.max(end, expected);
    if (this.#windowBytes === 0) return undefined;
    return { offset: this.#expectedOffset, length: this.#windowBytes };
  }
}
