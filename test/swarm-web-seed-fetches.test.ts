import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { PieceLayout, pieceIndex, type PieceIndex } from '../src/metainfo/piece-layout.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import type { WebPieceSource } from '../src/swarm/web-piece-source.js';
import { WebSeedFetches } from '../src/swarm/web-seed-fetches.js';
import type { WantedPieceSupply } from '../src/swarm/web-seed-picker.js';

// The web seeds as one kind of source, with fake seeds whose fetches the test settles by hand.
const PIECE = 16 * 1024;
const COUNT = 8;
const data = randomBytes(PIECE * COUNT);
const hashes = Buffer.concat(Array.from({ length: COUNT }, (_, i) => createHash('sha1').update(data.subarray(i * PIECE, (i + 1) * PIECE)).digest()));
const layout = new PieceLayout(PIECE, data.length, hashes);
const verified = (i: number): VerifiedPiece => VerifiedPiece.check(layout, pieceIndex(i), data.subarray(i * PIECE, (i + 1) * PIECE))!;

class ManualSeed implements WebPieceSource {
  ready = true;
  closed = false;
  readonly pending = new Map<PieceIndex, { resolve: (p: VerifiedPiece) => void; reject: (e: unknown) => void; signal: AbortSignal }>();
  constructor(
    readonly name: string,
    readonly parallelPieces: number,
  ) {}
  fetchVerifiedPiece(index: PieceIndex, signal?: AbortSignal): Promise<VerifiedPiece> {
    return new Promise((resolve, reject) => {
      this.pending.set(index, { resolve, reject, signal: signal! });
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }
  close(): void {
    this.closed = true;
  }
}

const noPeer = (indices: number[]): WantedPieceSupply[] =>
  indices.map((i) => ({ index: pieceIndex(i), priority: 'warm', deadline: undefined, availability: 0, usablePeers: 0, peerDeliveryAt: Infinity }));

function setup(): { fetches: WebSeedFetches; delivered: Array<[number, string]>; failed: Array<[string, number, string]> } {
  const delivered: Array<[number, string]> = [];
  const failed: Array<[string, number, string]> = [];
  const fetches = new WebSeedFetches(
    {
      deliver: (piece, seed) => void delivered.push([piece.index, seed]),
      failed: (seed, index, err) => void failed.push([seed, index, (err as Error).message]),
    },
    () => 0,
  );
  return { fetches, delivered, failed };
}

test('starts at most parallelPieces per seed, none on a seed that is not ready; delivers what arrives', async (t) => {
  const { fetches, delivered } = setup();
  const a = new ManualSeed('http://a/', 2);
  const b = new ManualSeed('http://b/', 3);
  b.ready = false;
  fetches.add(a);
  fetches.add(b);
  t.true(fetches.canStart);
  fetches.start(noPeer([0, 1, 2, 3]), 0);
  t.deepEqual([...a.pending.keys()], [0, 1]);
  t.is(b.pending.size, 0);
  t.false(fetches.canStart);
  t.true(fetches.isFetching(pieceIndex(1)));
  t.is(fetches.summary(), '2 web seeds: 2 pieces in flight, 1 backing off');
  a.pending.get(pieceIndex(0))!.resolve(verified(0));
  await sleep(1);
  t.deepEqual(delivered, [[0, 'http://a/']]);
  t.false(fetches.isFetching(pieceIndex(0)));
  t.deepEqual(fetches.stats(), [
    { name: 'http://a/', piecesFetched: 1, bytesFetched: PIECE, inflight: 1 },
    { name: 'http://b/', piecesFetched: 0, bytesFetched: 0, inflight: 0 },
  ]);
});

test('stop aborts a fetch (not a failure); a failure and a wrong piece are reported', async (t) => {
  const { fetches, delivered, failed } = setup();
  const a = new ManualSeed('http://a/', 3);
  fetches.add(a);
  fetches.start(noPeer([4, 5, 6]), 0);
  const signal4 = a.pending.get(pieceIndex(4))!.signal;
  fetches.stop(pieceIndex(4), 'came from a peer');
  t.true(signal4.aborted);
  t.is((signal4.reason as Error).message, 'came from a peer');
  a.pending.get(pieceIndex(5))!.reject(new Error('HTTP 404'));
  a.pending.get(pieceIndex(6))!.resolve(verified(2));
  await sleep(1);
  t.deepEqual(delivered, []);
  t.deepEqual(failed, [
    ['http://a/', 5, 'HTTP 404'],
    ['http://a/', 6, 'sent piece 2 when asked for 6'],
  ]);
  t.is(fetches.stats()[0]!.inflight, 0);
  t.is(fetches.stats()[0]!.piecesFetched, 0);
});

test('close aborts every fetch, closes the seeds, and a seed added afterwards is closed at once', async (t) => {
  const { fetches, failed } = setup();
  const a = new ManualSeed('http://a/', 2);
  fetches.add(a);
  fetches.start(noPeer([0, 1]), 0);
  const signals = [...a.pending.values()].map((p) => p.signal);
  fetches.close();
  t.true(signals.every((s) => s.aborted));
  t.true(a.closed);
  await sleep(1);
  t.deepEqual(failed, []);
  const late = new ManualSeed('http://late/', 1);
  fetches.add(late);
  t.true(late.closed);
  t.is(setup().fetches.summary(), undefined);
});
