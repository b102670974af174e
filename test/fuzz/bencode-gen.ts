import fc from 'fast-check';

/**
 * Generators of bencoded bytes, valid and subtly not: integers with leading
 * zeros or "-0", byte strings whose length prefix lies, dictionaries with
 * unsorted or repeated keys, deep nesting. Each generator yields the encoded
 * bytes directly, so a broken encoding is as easy to make as a good one.
 */

const ascii = (s: string): Buffer => Buffer.from(s, 'latin1');

export const interestingInts = fc.oneof(
  fc.constantFrom(0, 1, -1, 16384, 32768, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 64, -(2 ** 53)),
  fc.integer({ min: -100, max: 100_000 }),
  fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }),
);

export const benInt: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 6, arbitrary: interestingInts.map((n) => ascii(`i${n}e`)) },
  { weight: 1, arbitrary: fc.constantFrom('i-0e', 'i03e', 'ie', 'i-e', 'i1.5e', 'i 1e', 'i1e1', 'i99999999999999999999999999e').map(ascii) },
);

/** Path components and names a stranger would try. */
export const hostileNames = fc.constantFrom(
  '..', '.', '', '/', '/etc/passwd', 'a/b', 'a\\b', 'con', 'a\0b', '\0', ' ', '~', '.pad', '..\u2215..',
  'x'.repeat(300), 'é', '\u0000\u0001', '\ud800', '\uffff', 'a'.repeat(4000), 'file.txt', 'dir',
);

export const benBytesOf = (bytes: Uint8Array): Buffer => Buffer.concat([ascii(`${bytes.length}:`), Buffer.from(bytes)]);

export const benBytes: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }).map(benBytesOf) },
  { weight: 3, arbitrary: hostileNames.map((s) => benBytesOf(Buffer.from(s, 'utf8'))) },
  // A length prefix that does not match what follows.
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('0', '5', '99999', '-1', '01', '4294967296', ''), fc.uint8Array({ maxLength: 8 })).map(([n, b]) => Buffer.concat([ascii(`${n}:`), Buffer.from(b)])) },
);

/** Any bencoded value, nested a few levels (and now and then very deep). */
export const benValue: fc.Arbitrary<Buffer> = fc.letrec<{ value: Buffer; list: Buffer; dict: Buffer }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, benInt, benBytes, tie('list'), tie('dict')),
  list: fc.array(tie('value'), { maxLength: 5 }).map((items) => Buffer.concat([ascii('l'), ...items, ascii('e')])),
  dict: fc.array(fc.tuple(benBytes, tie('value')), { maxLength: 5 }).map((kvs) => Buffer.concat([ascii('d'), ...kvs.flat(), ascii('e')])),
})).value;

export const deepNesting = fc.integer({ min: 100, max: 20_000 }).map((n) => ascii('l'.repeat(n) + 'e'.repeat(n)));

/** Encodes a dictionary with its keys in the order given (bencode wants them sorted; strangers may not). */
export function benDict(entries: Array<[string, Buffer]>): Buffer {
  return Buffer.concat([ascii('d'), ...entries.flatMap(([k, v]) => [benBytesOf(Buffer.from(k, 'latin1')), v]), ascii('e')]);
}

export const benList = (items: Buffer[]): Buffer => Buffer.concat([ascii('l'), ...items, ascii('e')]);
export const benIntOf = (n: number | bigint): Buffer => ascii(`i${n}e`);

/** Keys in sorted order, as a well-behaved encoder writes them; sometimes shuffled or repeated. */
export function orderedDict(entries: Array<[string, Buffer]>, disorder: number): Buffer {
  const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (disorder === 1) sorted.reverse();
  if (disorder === 2 && sorted.length > 0) sorted.push(sorted[0]!);
  return benDict(sorted);
}
