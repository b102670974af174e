import type fc from 'fast-check';

/**
 * One fuzz target: a generator of hostile inputs and the code that feeds one
 * input to btmount. Every input is a list of byte chunks (one chunk for a
 * file or a URI, several for a socket stream cut at those points), so any
 * input can be written to test/fuzz/corpus and replayed byte for byte.
 *
 * `run` resolves when btmount has dealt with the input. It throws (or
 * rejects) only on a finding: a crash (an exception other than the clean
 * refusal the code promises), a broken invariant (a path outside the tree,
 * a bad address handed on), or a hang (the runner bounds each run).
 */
export interface FuzzTarget {
  readonly name: string;
  /** What is fed, in a few words (printed by the runner). */
  readonly what: string;
  readonly input: fc.Arbitrary<Buffer[]>;
  /** Set-up shared by many runs (servers, swarms); torn down by `close`. */
  open?(): Promise<void>;
  run(input: Buffer[]): Promise<void>;
  close?(): Promise<void>;
  /** How deep the inputs got (printed after the run): e.g. pieces verified, addresses learned. */
  depth?(): string;
}

/** A regression input, as stored under test/fuzz/corpus/<target>/<name>.json. */
export interface CorpusEntry {
  target: string;
  /** What the input broke, and the commit that fixed it. */
  note: string;
  chunks: string[]; // base64
}

export const encodeEntry = (target: string, note: string, chunks: Buffer[]): CorpusEntry => ({
  target,
  note,
  chunks: chunks.map((c) => c.toString('base64')),
});

export const decodeEntry = (entry: CorpusEntry): Buffer[] => entry.chunks.map((c) => Buffer.from(c, 'base64'));

/** Fails a run with a message that says which invariant broke. */
export class FuzzFinding extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FuzzFinding';
  }
}

export function expect(condition: unknown, what: string): asserts condition {
  if (!condition) throw new FuzzFinding(what);
}
