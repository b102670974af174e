import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { BLOCK_SIZE, PieceLayout, pieceIndex, type InfoHash, type PieceIndex } from '../src/metainfo/piece-layout.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import { Scheduler } from '../src/scheduler/index.js';
import { PeerConnection } from '../src/swarm/peer-connection.js';
import { PeerWireSource } from '../src/swarm/source-peer-wire.js';
import type { WebPieceSource } from '../src/swarm/web-piece-source.js';
import { WebSeedSource } from '../src/swarm/web-seed-source.js';
import { connectedPeerPair } from './helpers/peer-connection-pair.js';

// Both kinds of source: a web seed over a hand-settled origin, a peer wire over a real
// TCP connection on 127.0.0.1 to a second PeerConnection that records what it is sent.
const PIECE = 2 * BLOCK_SIZE;
const COUNT = 4;
const data = randomBytes(PIECE * COUNT);
const hashes = Buffer.concat(Array.from({ length: COUNT }, (_, i) => createHash('sha1').update(data.subarray(i * PIECE, (i + 1) * PIECE)).digest()));
const layout = new PieceLayout(PIECE, data.length, hashes);
const verified = (i: number): VerifiedPiece => VerifiedPiece.check(layout, pieceIndex(i), data.subarray(i * PIECE, (i + 1) * PIECE))!;
const until = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 400 && !cond(); i++) await sleep(5);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
};

class ManualOrigin implements WebPieceSource {
  ready = true;
  closed = false;
  readonly pending = new Map<PieceIndex, { resolve: (p: VerifiedPiece) => void; reject: (e: unknown) => void; signal: AbortSignal }>();
  readonly asked: PieceIndex[] = [];
  constructor(
    readonly name: string,
    readonly parallelPieces: number,
  ) {}
  fetchVerifiedPiece(index: PieceIndex, signal?: AbortSignal): Promise<VerifiedPiece> {
    this.asked.push(index);
    return new Promise((resolve, reject) => {
      this.pending.set(index, { resolve, reject, signal: signal! });
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }
  close(): void {
    this.closed = true;
  }
}

function webSeed(parallel = 2): { seed: WebSeedSource; origin: ManualOrigin; delivered: number[]; failed: string[] } {
  const origin = new ManualOrigin('http://127.0.0.1:1/data/', parallel);
  const delivered: number[] = [];
  const failed: string[] = [];
  const seed = new WebSeedSource('web#0', origin, {
    deliver: (piece) => void delivered.push(piece.index),
    failed: (_name, index, err) => void failed.push(`${index}: ${(err as Error).message}`),
  });
  return { seed, origin, delivered, failed };
}

test('a web seed has every piece, takes whole pieces up to its slots, and counts what it delivers', async (t) => {
  const { seed, origin, delivered } = webSeed(2);
  t.is(seed.kind, 'web');
  t.true(seed.usable);
  t.true(seed.has(pieceIndex(3)));
  t.is(seed.freeSlots, 2);
  seed.take([pieceIndex(0), pieceIndex(0)]);
  t.deepEqual(origin.asked, [0], 'a piece in flight is not asked again');
  t.is(seed.inflight, 1);
  t.is(seed.freeSlots, 1);
  t.true(seed.isFetching(pieceIndex(0)));
  origin.ready = false;
  t.false(seed.usable, 'backing off');
  t.is(seed.freeSlots, 0);
  origin.ready = true;
  origin.pending.get(pieceIndex(0))!.resolve(verified(0));
  await until(() => delivered.length === 1, 'the delivery');
  t.deepEqual(delivered, [0]);
  t.deepEqual(seed.stats(), { name: origin.name, piecesFetched: 1, bytesFetched: PIECE, inflight: 0 });
});

test('a web seed: cancel aborts (not a failure), a wrong piece and an error are failures, close aborts the rest', async (t) => {
  const { seed, origin, delivered, failed } = webSeed(4);
  seed.take([pieceIndex(0), pieceIndex(1), pieceIndex(2), pieceIndex(3)]);
  seed.cancel(pieceIndex(0), 'came from a peer');
  t.true(origin.pending.get(pieceIndex(0))!.signal.aborted);
  t.is((origin.pending.get(pieceIndex(0))!.signal.reason as Error).message, 'came from a peer');
  origin.pending.get(pieceIndex(1))!.resolve(verified(2));
  origin.pending.get(pieceIndex(2))!.reject(new Error('HTTP 404'));
  await until(() => failed.length === 2, 'the failures');
  t.deepEqual(failed, ['1: sent piece 2 when asked for 1', '2: HTTP 404']);
  seed.close('swarm closing');
  t.true(origin.closed);
  t.true(origin.pending.get(pieceIndex(3))!.signal.aborted);
  t.false(seed.usable);
  seed.take([pieceIndex(1)]);
  t.is(seed.inflight, 0, 'a closed seed takes nothing');
  await sleep(20);
  t.deepEqual(delivered, []);
  t.is(failed.length, 2, 'aborts are not failures');
});

const infoHash = randomBytes(20).toString('hex') as InfoHash;

/** Our PeerConnection (wrapped in a PeerWireSource) and the remote one, connected over TCP. */
async function peerPair(t: { teardown(fn: () => void): void }): Promise<{ source: PeerWireSource; remote: PeerConnection; scheduler: Scheduler; got: string[] }> {
  const { dialled: ours, accepted: remote } = await connectedPeerPair(t, { infoHash, pieceCount: COUNT, reqq: 100, handshakeTimeoutMs: 5000 });
  const scheduler = new Scheduler(layout);
  const source = new PeerWireSource('127.0.0.1:1#1', ours, undefined, scheduler);
  const got: string[] = [];
  remote.handle({
    bitfield: () => {},
    have: (i) => void got.push(`have ${i}`),
    haveAll: () => {},
    choke: () => {},
    unchoke: () => {},
    interested: () => {},
    uninterested: () => {},
    piece: () => {},
    reject: () => {},
    allowedFast: () => {},
    request: (i, o, l) => void got.push(`request ${i}/${o}/${l}`),
    cancel: (i, o, l) => void got.push(`cancel ${i}/${o}/${l}`),
  });
  return { source, remote, scheduler, got };
}

test('a peer wire: usable once the scheduler knows it, has what the peer has, sends requests and cancels, announces', async (t) => {
  const { source, remote, scheduler, got } = await peerPair(t);
  t.is(source.kind, 'peer');
  t.false(source.usable, 'ready, but not yet a peer of the scheduler');
  scheduler.addPeer(source.key, Date.now(), { fast: source.pc.hasFast });
  t.true(source.usable);
  scheduler.peerHave(source.key, pieceIndex(1));
  t.true(source.has(pieceIndex(1)));
  t.false(source.has(pieceIndex(0)));
  t.true(source.hasAny([pieceIndex(0), pieceIndex(1)]));
  t.false(source.hasAny([pieceIndex(2), pieceIndex(3)]));

  remote.unchoke(); // the remote serves (records) requests only while it does not choke us
  scheduler.setChoked(source.key, false);
  scheduler.want(pieceIndex(1), 'urgent', Date.now() + 3000);
  const now = Date.now();
  const requests = scheduler.schedule(now).requests.get(source.key) ?? [];
  t.is(requests.length, 2, 'both blocks of piece 1');
  await until(() => !source.pc.peerChoking, 'the unchoke');
  source.take(requests, now);
  t.is(source.inflight, 2);
  t.is(source.owingSince, now, 'the clock starts at the first request it owes');
  t.false(source.stalled(now + 3999, 4000));
  t.true(source.stalled(now + 4000, 4000));
  source.cancel(requests[1]!);
  source.announce(pieceIndex(2));
  await until(() => got.length === 4, 'the remote to get two requests, a cancel and a have');
  t.deepEqual(got, [`request 1/0/${BLOCK_SIZE}`, `request 1/${BLOCK_SIZE}/${BLOCK_SIZE}`, `cancel 1/${BLOCK_SIZE}/${BLOCK_SIZE}`, 'have 2']);

  source.delivered(now + 10);
  t.is(source.lastBlockAt, now + 10);
  t.false(source.stalled(now + 4000, 4000), 'a block restarts the clock');
  const row = source.stats(Date.now());
  t.like(row, { address: source.pc.address, source: 'static', client: 'btmount', choked: false, choking: true, inflight: 2 });

  const closed = once(remote, 'close');
  source.close('test: done with it');
  t.true(source.pc.closed);
  t.false(source.usable);
  source.take(requests, Date.now()); // nothing is sent on a closed connection, and nothing throws
  await closed;
});

test('a peer wire tells a seed that is another client nothing (a btmount seed is told)', async (t) => {
  const { source, scheduler, got } = await peerPair(t);
  scheduler.addPeer(source.key, Date.now(), { fast: source.pc.hasFast });
  scheduler.peerHaveAll(source.key);
  await until(() => source.pc.peerClient !== undefined, 'the extended handshake');
  source.announce(pieceIndex(0));
  await until(() => got.length === 1, 'the have');
  t.deepEqual(got, ['have 0'], 'btmount seeds learn who has what');
  Object.defineProperty(source.pc, 'peerClient', { value: 'aria2/1.37' }); // as an aria2c seed would say
  source.announce(pieceIndex(1));
  await sleep(50);
  t.deepEqual(got, ['have 0']);
});
