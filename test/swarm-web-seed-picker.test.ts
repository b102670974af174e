import test from 'ava';
import { randomBytes } from 'node:crypto';
import { PieceLayout, pieceIndex, type PieceIndex } from '../src/metainfo/piece-layout.js';
import { Scheduler, type Priority } from '../src/scheduler/index.js';
import { pickWebSeedFetches, type WantedPieceSupply, type WebSeedCapacity } from '../src/swarm/web-seed-picker.js';

// The web-seed policy as a pure function, fed by a real Scheduler with simulated peers
// (bitfields, chokes, measured rates) and a fake clock.
const PIECE = 256 * 1024;
const COUNT = 64;
const layout = new PieceLayout(PIECE, PIECE * COUNT, randomBytes(20 * COUNT));
const T0 = 1_000_000;

/** A simulated world: a scheduler with peers, wanted pieces with priorities and deadlines. */
class World {
  // A low assumed rate: the scheduler's estimates then follow the measured rates in these tests.
  readonly scheduler = new Scheduler(layout, { assumedRate: 16 * 1024 });
  readonly wanted = new Map<PieceIndex, { priority: Priority; deadline: number | undefined }>();
  now = T0;

  want(index: number, priority: Priority, deadline?: number): this {
    this.scheduler.want(pieceIndex(index), priority, deadline);
    this.wanted.set(pieceIndex(index), { priority, deadline });
    return this;
  }

  peer(key: string, pieces: number[] | 'all', opts: { choked?: boolean } = {}): this {
    this.scheduler.addPeer(key, this.now, { fast: true });
    if (pieces === 'all') this.scheduler.peerHaveAll(key);
    else for (const i of pieces) this.scheduler.peerHave(key, pieceIndex(i));
    this.scheduler.setChoked(key, opts.choked ?? false);
    return this;
  }

  /** Feeds `bytes` from the peer over `ms` (its measured rate), answering requests it was sent. */
  deliver(key: string, ms: number, bytes: number): void {
    const requests = this.scheduler.fill(key, this.now);
    let sent = 0;
    for (const r of requests) {
      if (sent >= bytes) break;
      this.now += ms / Math.ceil(bytes / r.length);
      this.scheduler.onBlock(key, r.index, r.offset, r.length, this.now);
      sent += r.length;
    }
  }

  supply(): WantedPieceSupply[] {
    return [...this.wanted].map(([index, w]) => ({
      index,
      priority: w.priority,
      deadline: w.deadline,
      ...this.scheduler.peerSupply(index, this.now, w.priority === 'urgent'),
    }));
  }

  pick(seeds: WebSeedCapacity[], random?: () => number): Array<{ seed: number; index: number; reason: string }> {
    return pickWebSeedFetches(this.supply(), seeds, this.now, random ? { random } : {}).map((p) => ({ ...p }));
  }
}

const oneSeed = (freeSlots = 4, ready = true): WebSeedCapacity[] => [{ id: 0, ready, freeSlots }];

test('with no peers every wanted piece is a candidate, urgent first by deadline, then read-ahead, then warm', (t) => {
  const w = new World().want(10, 'warm').want(11, 'readahead').want(12, 'urgent', T0 + 5000).want(13, 'urgent', T0 + 2000).want(14, 'warm');
  t.deepEqual(
    w.pick(oneSeed(10)).map((p) => p.index),
    [13, 12, 11, 10, 14],
  );
  t.true(w.pick(oneSeed(10)).every((p) => p.reason === 'no-peer'));
  t.deepEqual(
    w.pick(oneSeed(2)).map((p) => p.index),
    [13, 12],
    'no more than the free slots',
  );
});

test('peers first: a piece an unchoking peer has is not asked of the web seed', (t) => {
  const w = new World().peer('a', [1, 2, 3]).want(1, 'readahead').want(2, 'warm').want(3, 'urgent', T0 + 60_000).want(4, 'readahead');
  t.deepEqual(
    w.pick(oneSeed(8)).map((p) => p.index),
    [4],
  );
});

test('a peer that chokes us, or that is snubbed, does not count as a source', (t) => {
  const w = new World().peer('choking', [1], { choked: true }).peer('snubbed', [2]).want(1, 'readahead').want(2, 'readahead');
  // The snubbed peer got requests and delivered nothing for the scheduler's request timeout.
  w.scheduler.schedule(w.now);
  w.now += 16_000;
  w.scheduler.tick(w.now);
  t.true(w.scheduler.isSnubbed('snubbed'));
  t.deepEqual(w.pick(oneSeed(8)).map((p) => p.index).sort(), [1, 2]);
  // Unchoked, the first peer is a source again.
  w.scheduler.setChoked('choking', false);
  t.deepEqual(
    w.pick(oneSeed(8)).map((p) => p.index),
    [2],
  );
});

test('an urgent piece goes to the web seed when the peers that have it cannot deliver it by the deadline', (t) => {
  const w = new World().peer('slow', 'all');
  // Measure the peer at about 64 KiB/s.
  w.want(40, 'warm');
  w.deliver('slow', 4000, 256 * 1024);
  w.scheduler.unwant(pieceIndex(40));
  w.wanted.delete(pieceIndex(40));
  const rate = w.scheduler.rate('slow', w.now);
  t.true(rate > 30_000 && rate < 200_000, `measured ${rate} B/s`);
  // 256 KiB at that rate takes seconds: a deadline 1.5 s out cannot be met, one 60 s out can.
  w.want(5, 'urgent', w.now + 1500).want(6, 'urgent', w.now + 60_000);
  t.deepEqual(w.pick(oneSeed(8)), [{ seed: 0, index: 5, reason: 'late-peer' }]);
  // Close to its deadline the other piece goes to the seed too, whatever the estimate.
  const deadline6 = w.wanted.get(pieceIndex(6))!.deadline!;
  w.now = deadline6 - 500;
  t.deepEqual(
    w.pick(oneSeed(8)).map((p) => [p.index, p.reason]),
    [
      [5, 'late-peer'],
      [6, 'late-peer'],
    ],
  );
});

test('a fast peer with the piece keeps an urgent read off the web seed', (t) => {
  const w = new World().peer('fast', 'all');
  w.want(40, 'warm');
  w.deliver('fast', 50, 256 * 1024); // ~5 MiB/s
  w.scheduler.unwant(pieceIndex(40));
  w.wanted.delete(pieceIndex(40));
  w.want(7, 'urgent', w.now + 3000);
  t.deepEqual(w.pick(oneSeed(8)), []);
});

test('nothing is asked of a seed that is not ready or has no free slot; picks spread over seeds by free slots', (t) => {
  const w = new World().want(1, 'warm').want(2, 'warm').want(3, 'warm').want(4, 'warm');
  t.deepEqual(w.pick(oneSeed(4, false)), []);
  t.deepEqual(w.pick(oneSeed(0)), []);
  const picks = w.pick([
    { id: 0, ready: true, freeSlots: 1 },
    { id: 1, ready: false, freeSlots: 4 },
    { id: 2, ready: true, freeSlots: 2 },
  ]);
  t.deepEqual(
    picks.map((p) => [p.seed, p.index]),
    [
      [2, 1],
      [0, 2],
      [2, 3],
    ],
  );
});

test('among pieces no usable peer has: rarest first, then random among the equally rare', (t) => {
  const w = new World().peer('choking', [0, 1, 2, 3], { choked: true }).peer('choking2', [0, 1], { choked: true });
  for (let i = 0; i < 8; i++) w.want(i, 'readahead');
  // Deterministic without a random source: availability 0 (4..7) first, in order.
  t.deepEqual(
    w.pick(oneSeed(6)).map((p) => p.index),
    [4, 5, 6, 7, 2, 3],
  );
  // Two nodes with different random draws over the same window take different pieces first.
  const seq = (values: number[]): (() => number) => {
    let i = 0;
    return () => values[i++ % values.length]!;
  };
  const nodeA = w.pick(oneSeed(2), seq([0, 0])).map((p) => p.index);
  const nodeB = w.pick(oneSeed(2), seq([0.99, 0.99])).map((p) => p.index);
  t.deepEqual(nodeA, [4, 5]);
  t.deepEqual(nodeB, [7, 6]);
});

test('a cluster over one web seed: nodes that trade fetch each piece from it about once', (t) => {
  // Simulated nodes reading the same window, each with its own random draws. Each round every
  // node picks from its view; what a node fetched it announces (HAVE) to the others, whose
  // scheduler then sees an unchoking peer with the piece.
  const NODES = 4;
  const WINDOW = 48;
  let seed = 7;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const nodes = Array.from({ length: NODES }, () => new World());
  nodes.forEach((n, i) => {
    for (let j = 0; j < NODES; j++) if (j !== i) n.peer(`node${j}`, []);
    for (let p = 0; p < WINDOW; p++) n.want(p, 'readahead');
  });
  const fromOrigin = new Map<number, number>();
  for (let round = 0; round < WINDOW && nodes.some((n) => n.wanted.size > 0); round++) {
    const fetched = nodes.map((n) => n.pick(oneSeed(2), random));
    fetched.forEach((picks, i) => {
      for (const p of picks) {
        fromOrigin.set(p.index, (fromOrigin.get(p.index) ?? 0) + 1);
        for (const [j, other] of nodes.entries()) {
          if (j === i) continue;
          other.scheduler.peerHave(`node${i}`, pieceIndex(p.index));
        }
      }
    });
    // A node has what it fetched; what a peer has it gets from the peer (not the origin).
    nodes.forEach((n, i) => {
      for (const p of fetched[i]!) {
        n.scheduler.unwant(pieceIndex(p.index));
        n.wanted.delete(pieceIndex(p.index));
      }
      for (const index of [...n.wanted.keys()]) {
        if (n.scheduler.peerSupply(index, n.now, false).usablePeers > 0) {
          n.scheduler.unwant(index);
          n.wanted.delete(index);
        }
      }
    });
  }
  const total = [...fromOrigin.values()].reduce((a, b) => a + b, 0);
  t.is(fromOrigin.size, WINDOW, 'every piece came from the origin once at least');
  t.true(total <= WINDOW * 1.3, `origin sent ${total} pieces for ${WINDOW}`);
});

test('first copies: pieces another node owns are left to it (an urgent one until near its deadline); ours go in the order given, not at random', (t) => {
  const none = { availability: 0, usablePeers: 0, peerDeliveryAt: Infinity };
  const supply = (index: number, firstCopyHere: boolean, urgent = false): WantedPieceSupply => ({
    index: pieceIndex(index),
    priority: urgent ? 'urgent' : 'readahead',
    deadline: urgent ? T0 + 3000 : undefined,
    ...none,
    firstCopyHere,
  });
  const pieces = [supply(1, false), supply(2, true), supply(3, false, true), supply(4, true), supply(5, true), supply(6, false)];
  const always = (): number => 0.99; // a random pick would take the last of the ties
  t.deepEqual(
    pickWebSeedFetches(pieces, oneSeed(8), T0, { random: always }).map((p) => p.index),
    [2, 4, 5],
  );
  t.deepEqual(
    pickWebSeedFetches(pieces, oneSeed(8), T0 + 2000, { random: always }).map((p) => [p.index, p.reason]),
    [
      [3, 'no-peer'],
      [2, 'no-peer'],
      [4, 'no-peer'],
      [5, 'no-peer'],
    ],
    'within a second of its deadline a blocked read takes the piece whoever owns it',
  );
  t.deepEqual(
    pickWebSeedFetches(pieces, oneSeed(1), T0, { random: always }).map((p) => p.index),
    [2],
    'the first of ours, not a random one',
  );
});
