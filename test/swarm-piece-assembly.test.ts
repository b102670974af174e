import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { BLOCK_SIZE, PieceLayout, pieceIndex } from '../src/metainfo/piece-layout.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import { PieceAssembly } from '../src/swarm/piece-assembly.js';

const PIECE = 4 * BLOCK_SIZE;
const COUNT = 8;
const data = randomBytes(PIECE * COUNT - 5000); // the last piece is short (its last block too)
const hashes = Buffer.concat(Array.from({ length: COUNT }, (_, i) => createHash('sha1').update(data.subarray(i * PIECE, (i + 1) * PIECE)).digest()));
const layout = new PieceLayout(PIECE, data.length, hashes);

const pieceBytes = (i: number): Buffer => data.subarray(i * PIECE, Math.min((i + 1) * PIECE, data.length));
const block = (i: number, b: number): Buffer => pieceBytes(i).subarray(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE);
const blocksOf = (i: number): number => layout.blockCount(pieceIndex(i));

/** Writes piece i's blocks in the given order, with block `corrupt` flipped. */
function writePiece(a: PieceAssembly, i: number, order: number[], corrupt?: number): void {
  for (const b of order) {
    const bytes = Buffer.from(block(i, b));
    if (b === corrupt) bytes[0]! ^= 0xff;
    a.write(pieceIndex(i), b * BLOCK_SIZE, bytes);
  }
}

const nobody = (): Map<string, number[]> => {
  throw new Error('contributors asked for a good piece');
};

test('blocks in any order make the piece; the short last piece too', (t) => {
  const a = new PieceAssembly(layout);
  writePiece(a, 0, [3, 1, 0, 2]);
  t.true(a.isAssembling(pieceIndex(0)));
  const out = a.verify(pieceIndex(0), nobody);
  t.true(out?.ok);
  if (out?.ok) {
    t.true(out.piece.data.equals(pieceBytes(0)));
    t.is(out.piece.index, pieceIndex(0));
  }
  t.false(a.isAssembling(pieceIndex(0)));
  const last = COUNT - 1;
  writePiece(a, last, [...Array(blocksOf(last)).keys()].reverse());
  const outLast = a.verify(pieceIndex(last), nobody);
  t.true(outLast?.ok && outLast.piece.data.equals(pieceBytes(last)));
  t.is(a.verifyTime.pieces, 2);
  t.is(a.hashFailures, 0);
});

test('a duplicate block overwrites its first copy; a piece nobody assembled is nothing to verify', (t) => {
  const a = new PieceAssembly(layout);
  writePiece(a, 1, [0, 1, 2, 3], 2); // a bad copy of block 2 ...
  writePiece(a, 1, [2]); // ... then the good one
  const out = a.verify(pieceIndex(1), nobody);
  t.true(out?.ok);
  t.is(a.verify(pieceIndex(2), nobody), undefined);
});

test('a bad piece from one host strikes it; at the threshold it is to be banned', (t) => {
  const a = new PieceAssembly(layout, { banThreshold: 2 });
  let asked = 0;
  const from = (host: string) => (): Map<string, number[]> => {
    asked++;
    return new Map([[host, [0, 1, 2, 3]]]);
  };
  writePiece(a, 0, [0, 1, 2, 3], 1);
  const first = a.verify(pieceIndex(0), from('10.0.0.1'));
  t.deepEqual(first, { ok: false, charges: [{ host: '10.0.0.1', strikes: 1, ban: false, reason: 'sent piece 0, which failed its hash check' }] });
  t.is(asked, 1);
  t.false(a.isAssembling(pieceIndex(0)));
  writePiece(a, 0, [0, 1, 2, 3], 3);
  const second = a.verify(pieceIndex(0), from('10.0.0.1'));
  t.false(second!.ok);
  t.like(second, { charges: [{ host: '10.0.0.1', strikes: 2, ban: true }] });
  t.is(a.hashFailures, 2);
});

test('a bad piece from several hosts strikes only the one whose blocks differ from the good copy', (t) => {
  const a = new PieceAssembly(layout, { banThreshold: 1 });
  // honest sent blocks 0 and 1, liar 2 and 3 (3 corrupt).
  writePiece(a, 0, [0, 1, 2, 3], 3);
  const contributors = (): Map<string, number[]> =>
    new Map([
      ['honest', [0, 1]],
      ['liar', [2, 3]],
    ]);
  t.deepEqual(a.verify(pieceIndex(0), contributors), { ok: false, charges: [] }, 'nobody charged yet: who lied is not known');
  // The good copy arrives (from peers: verify; from a web seed: convict directly).
  writePiece(a, 0, [0, 1, 2, 3]);
  const out = a.verify(pieceIndex(0), nobody);
  t.true(out?.ok);
  if (!out?.ok) return;
  const charges = a.convict(out.piece);
  t.deepEqual(
    charges.map((c) => [c.host, c.ban]),
    [['liar', true]],
  );
  t.deepEqual(a.convict(out.piece), [], 'charged once');

  // The same with a good copy from elsewhere (a web seed's VerifiedPiece).
  writePiece(a, 1, [0, 1, 2, 3], 0);
  a.verify(pieceIndex(1), () => new Map([['liar2', [0, 2]], ['honest', [1, 3]]]));
  const fromWeb = VerifiedPiece.check(layout, pieceIndex(1), Buffer.from(pieceBytes(1)))!;
  t.deepEqual(
    a.convict(fromWeb).map((c) => c.host),
    ['liar2'],
  );
});

test('buffers are reused: a released one serves the next piece, a discarded partial piece gives its own back', (t) => {
  const a = new PieceAssembly(layout);
  writePiece(a, 0, [0, 1, 2, 3]);
  const first = a.verify(pieceIndex(0), nobody);
  if (!first?.ok) return t.fail();
  const buf = first.piece.data;
  t.is(a.pooledBuffers, 0, 'the verified piece holds it until released');
  a.release(buf);
  t.is(a.pooledBuffers, 1);
  writePiece(a, 1, [2, 0, 3, 1]);
  t.is(a.pooledBuffers, 0);
  const second = a.verify(pieceIndex(1), nobody);
  if (!second?.ok) return t.fail();
  t.is(second.piece.data, buf, 'the same memory, reused');
  t.true(second.piece.data.equals(pieceBytes(1)), 'holding the new piece');
  writePiece(a, 2, [1]);
  a.discard(pieceIndex(2));
  t.is(a.pooledBuffers, 1);
  t.false(a.isAssembling(pieceIndex(2)));
});

test('a failed piece gives its buffer back', (t) => {
  const a = new PieceAssembly(layout);
  writePiece(a, 0, [0, 1, 2, 3], 0);
  t.false(a.verify(pieceIndex(0), () => new Map([['h', [0, 1, 2, 3]]]))!.ok);
  t.is(a.pooledBuffers, 1);
});

test('the pool is bounded, takes no buffer it did not make, keeps no short piece, and shrinks when idle', (t) => {
  const a = new PieceAssembly(layout, { maxPooledBytes: 2 * PIECE });
  for (let i = 0; i < 5; i++) a.write(pieceIndex(i), 0, block(i, 0));
  for (let i = 0; i < 5; i++) a.discard(pieceIndex(i));
  t.is(a.pooledBuffers, 2, 'bounded by maxPooledBytes');
  a.release(Buffer.alloc(PIECE)); // e.g. a web seed's piece: not ours
  t.is(a.pooledBuffers, 2);

  const b = new PieceAssembly(layout);
  const last = COUNT - 1;
  b.write(pieceIndex(last), 0, block(last, 0));
  b.discard(pieceIndex(last));
  t.is(b.pooledBuffers, 0, 'a short last piece is not pooled');
  const t0 = 1_000_000;
  for (let i = 0; i < 6; i++) b.write(pieceIndex(i), 0, block(i, 0), t0);
  for (let i = 0; i < 6; i++) b.discard(pieceIndex(i));
  t.is(b.pooledBuffers, 6);
  b.trimPool(t0 + 5_000);
  t.is(b.pooledBuffers, 6, 'in use lately: kept');
  b.trimPool(t0 + 11_000);
  t.is(b.pooledBuffers, 4, 'idle: shrunk');
});
