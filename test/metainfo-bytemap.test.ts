import test from 'ava';
import fc from 'fast-check';
import { Metainfo } from '../src/metainfo/index.js';
import { buildTorrent } from './helpers/torrent-builder.js';

/** The obvious, slow answer: which piece holds each byte, one byte at a time. */
function bruteForceSpans(pieceLength: number, from: number, to: number): Array<[number, number, number]> {
  const spans: Array<[number, number, number]> = [];
  for (let at = from; at < to; at++) {
    const piece = Math.floor(at / pieceLength);
    const last = spans[spans.length - 1];
    if (last && last[0] === piece) last[2]++;
    else spans.push([piece, at % pieceLength, 1]);
  }
  return spans;
}

const layoutArb = fc.record({
  pieceLength: fc.constantFrom(16384, 32768, 65536),
  lengths: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 200_000 })), {
    minLength: 1,
    maxLength: 12,
  }),
});

function build(pieceLength: number, lengths: number[]): Metainfo {
  return Metainfo.fromTorrentFile(buildTorrent({ pieceLength, files: lengths.map((length, i) => ({ path: [`f${i}`], length })) }));
}

test('a file byte range maps to the same pieces as a byte-by-byte reference', (t) => {
  fc.assert(
    fc.property(layoutArb, fc.nat(), fc.nat(), fc.nat({ max: 300_000 }), ({ pieceLength, lengths }, pick, offSeed, len) => {
      const m = build(pieceLength, lengths);
      const file = m.files[pick % m.files.length]!;
      const offset = file.length === 0 ? 0 : offSeed % (file.length + 1);
      const end = Math.min(file.length, offset + len);
      const expected = bruteForceSpans(pieceLength, file.offset + offset, file.offset + end);
      const actual = m.byteMap.spansOfFileRange(file, offset, len).map((s) => [s.piece, s.offsetInPiece, s.length]);
      return JSON.stringify(actual) === JSON.stringify(expected);
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('each piece maps back to exactly the file bytes it holds', (t) => {
  fc.assert(
    fc.property(layoutArb, ({ pieceLength, lengths }) => {
      const m = build(pieceLength, lengths);
      // Every byte of every file must be claimed by exactly one (piece, file) span, at the right place.
      const claimed = m.files.map((f) => new Uint8Array(f.length));
      for (let p = 0; p < m.layout.pieceCount; p++) {
        let covered = 0;
        for (const span of m.byteMap.filesOfPiece(p as never)) {
          if (span.file.length === 0) return false;
          const streamAt = m.layout.pieceOffset(p as never) + span.offsetInPiece;
          if (streamAt !== span.file.offset + span.offsetInFile) return false;
          for (let i = 0; i < span.length; i++) claimed[span.file.index]![span.offsetInFile + i]!++;
          covered += span.length;
        }
        if (covered !== m.layout.pieceSize(p as never)) return false;
      }
      return claimed.every((bytes) => bytes.every((n) => n === 1));
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test('zero-length files touch no piece; the last piece is short', (t) => {
  const m = build(16384, [0, 20000, 0]);
  t.deepEqual(m.byteMap.spansOfFileRange(m.files[0]!, 0, 100), []);
  t.is(m.byteMap.pieceRangeOfFile(m.files[2]!), undefined);
  t.deepEqual(m.byteMap.pieceRangeOfFile(m.files[1]!), { first: 0, last: 1 });
  t.is(m.layout.pieceSize(1 as never), 20000 - 16384);
  t.deepEqual(m.byteMap.spansOfFileRange(m.files[1]!, 19990, 100), [{ piece: 1, offsetInPiece: 19990 - 16384, length: 10 }]);
});
