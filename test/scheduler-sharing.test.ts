/**
 * The sharing rules (issue 11), on the pure units with a fake clock: the node
 * side (Scheduler: prefer a peer over the seed, random among equally rare
 * pieces, back off a rejected piece without starving a blocked read) and the
 * origin side (SharePolicy: hand out distinct pieces first), then both together
 * in a simulated cluster of many nodes where the origin's bytes are counted.
 */
import test from 'ava';
import { BLOCK_SIZE, PieceLayout, pieceIndex, type PieceIndex } from '../src/metainfo/piece-layout.js';
import { Scheduler, type BlockRequest, type SchedulerOptions } from '../src/scheduler/index.js';
import { SharePolicy, type ShareMode } from '../src/swarm/share-policy.js';

const p = pieceIndex;
const BLOCKS_PER_PIECE = 4;

function layout(pieceCount: number): PieceLayout {
  const pieceLength = BLOCK_SIZE * BLOCKS_PER_PIECE;
  return new PieceLayout(pieceLength, pieceLength * pieceCount, Buffer.alloc(20 * pieceCount));
}

/** mulberry32: a seeded PRNG, so every run of these tests makes the same choices. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function bitfield(pieceCount: number, has: (i: number) => boolean): Uint8Array {
  const bits = new Uint8Array(Math.ceil(pieceCount / 8));
  for (let i = 0; i < pieceCount; i++) if (has(i)) bits[i >> 3]! |= 0x80 >> (i & 7);
  return bits;
}

/** A node's scheduler: `S` is the seed (have-all); the others announce `pieces` by bitfield. */
function node(l: PieceLayout, others: Record<string, number[]>, opts: SchedulerOptions = {}): Scheduler {
  const s = new Scheduler(l, { initialDepth: BLOCKS_PER_PIECE, minDepth: 1, ...opts });
  s.addPeer('S', 0, { fast: true });
  s.peerHaveAll('S');
  s.setChoked('S', false);
  for (const [key, pieces] of Object.entries(others)) {
    s.addPeer(key, 0, { fast: true });
    s.peerBitfield(key, bitfield(l.pieceCount, (i) => pieces.includes(i)));
    s.setChoked(key, false);
  }
  return s;
}

const piecesOf = (rs: readonly BlockRequest[]): number[] => [...new Set(rs.map((r) => r.index))];

// ── node side ────────────────────────────────────────────────────────────────

test('a seed is not asked for a piece a non-seed peer has; a piece only the seed has is', (t) => {
  const s = node(layout(8), { A: [2] });
  s.want(p(2), 'readahead');
  s.want(p(5), 'readahead');
  t.deepEqual(piecesOf(s.fill('S', 0)), [5]);
  t.deepEqual(piecesOf(s.fill('A', 0)), [2]);
});

test('a seed stays a last resort when the peer with the piece leaves or chokes us', (t) => {
  const s = node(layout(8), { A: [2] });
  s.want(p(2), 'warm');
  t.deepEqual(s.fill('S', 0), []);
  s.setChoked('A', true);
  t.deepEqual(piecesOf(s.fill('S', 0)), [2]);
});

test('urgent: the peer is preferred when it can make the deadline, the seed when it cannot', (t) => {
  const far = node(layout(8), { A: [3] }, { duplicateLeadMs: 1000 });
  far.want(p(3), 'urgent', 10_000);
  const a = far.schedule(0);
  t.deepEqual([...a.requests.keys()], ['A']);

  const near = node(layout(8), { A: [3] }, { duplicateLeadMs: 1000 });
  near.want(p(3), 'urgent', 500); // inside the lead: no time to wait for anyone slower than the best
  const b = near.schedule(0);
  t.true(b.requests.has('S'), 'the seed is asked when the deadline does not allow going elsewhere');
});

test('a piece the seed rejected is not asked of it again until declineMs, unless its deadline nears (no starvation)', (t) => {
  const s = node(layout(8), {}, { declineMs: 1000, duplicateLeadMs: 500 });
  s.want(p(1), 'readahead');
  const first = s.fill('S', 0);
  t.is(first.length, BLOCKS_PER_PIECE);
  for (const r of first) s.onReject('S', r.index, r.offset, 10);
  t.deepEqual(s.fill('S', 20), [], 'rejected: not asked again at once');
  t.deepEqual(s.fill('S', 900), []);
  t.deepEqual(piecesOf(s.fill('S', 1011)), [1], 'asked again after declineMs: a seed serves a repeated request');

  const u = node(layout(8), {}, { declineMs: 5000, duplicateLeadMs: 500 });
  u.want(p(1), 'urgent', 2000);
  const sent = u.schedule(0).requests.get('S') ?? [];
  t.is(sent.length, BLOCKS_PER_PIECE);
  for (const r of sent) u.onReject('S', r.index, r.offset, 10);
  t.false(u.schedule(100).requests.has('S'));
  t.deepEqual(piecesOf(u.schedule(1500).requests.get('S') ?? []), [1], 'a blocked read still gets its piece by its deadline');
});

test('by default a read-ahead piece the seed rejected waits 3 s (the origin\'s hold on a piece it is sending another peer) before it is asked again', (t) => {
  const s = node(layout(8), {});
  s.want(p(1), 'readahead');
  for (const r of s.fill('S', 0)) s.onReject('S', r.index, r.offset, 0);
  t.deepEqual(s.fill('S', 2900), []);
  t.deepEqual(piecesOf(s.fill('S', 3001)), [1]);
});

test('a piece the seed rejected is not asked of it again within rejectRetryMs, even at its deadline: no reject storm', (t) => {
  const s = node(layout(8), {}, { declineMs: 5000, duplicateLeadMs: 1000, rejectRetryMs: 300 });
  s.want(p(1), 'urgent', 500); // inside the lead from the start
  const sent = s.schedule(0).requests.get('S') ?? [];
  t.is(sent.length, BLOCKS_PER_PIECE);
  for (const r of sent) s.onReject('S', r.index, r.offset, 10);
  for (const now of [11, 50, 200, 309]) t.false(s.schedule(now).requests.has('S'), `not asked again at ${now} ms`);
  t.deepEqual(piecesOf(s.schedule(311).requests.get('S') ?? []), [1], 'asked again once the origin would serve the repeat');
});

test('near the deadline, a block is not duplicated to a seed that just rejected its piece', (t) => {
  const s = node(layout(8), { A: [2] }, { declineMs: 5000, duplicateLeadMs: 1000, rejectRetryMs: 300 });
  s.want(p(2), 'urgent', 10_000);
  const toA = s.schedule(0).requests.get('A') ?? [];
  t.is(toA.length, BLOCKS_PER_PIECE, 'the peer can make the deadline: it is asked');
  // Inside the lead the seed is asked for duplicates; it rejects them (A is getting the piece).
  const dups = s.schedule(9000).requests.get('S') ?? [];
  t.true(dups.length > 0, 'duplicates near the deadline');
  for (const r of dups) s.onReject('S', r.index, r.offset, 9001);
  t.false(s.schedule(9002).requests.has('S'), 'no duplicate again to the seed that rejected them 1 ms ago');
  t.false(s.schedule(9250).requests.has('S'));
  t.true((s.schedule(9302).requests.get('S') ?? []).length > 0, 'after rejectRetryMs the seed is asked again');
});

test('a rejected piece goes to the peer that announces it', (t) => {
  const s = node(layout(8), { A: [] });
  s.want(p(4), 'readahead');
  for (const r of s.fill('S', 0)) s.onReject('S', r.index, r.offset, 0);
  t.deepEqual(s.fill('A', 1), []);
  s.peerHave('A', p(4));
  t.deepEqual(piecesOf(s.fill('A', 2)), [4]);
});

test('equally rare pieces are picked at random: nodes reading the same window spread over it', (t) => {
  const l = layout(32);
  /** The first piece each of 8 nodes asks the seed for, out of a 16-piece read-ahead window. */
  const firstPicks = (random: (node: number) => (() => number) | undefined): number[] =>
    Array.from({ length: 8 }, (_, i) => {
      const r = random(i);
      const s = node(l, {}, r ? { random: r } : {});
      for (let k = 0; k < 16; k++) s.want(p(k), 'readahead');
      return piecesOf(s.fill('S', 0))[0]!;
    });
  t.deepEqual(new Set(firstPicks(() => undefined)), new Set([0]), 'without a random source every node starts with the same piece');
  const picks = firstPicks((i) => seeded(i + 1));
  t.true(picks.every((i) => i >= 0 && i < 16));
  t.true(new Set(picks).size >= 5, `8 nodes started ${new Set(picks).size} different pieces: ${picks.join(' ')}`);
});

test('rarest first still decides before the random pick', (t) => {
  const l = layout(16);
  // B has every wanted piece but 9: 9 is the rarest (only the seed has it), so the seed is asked for it, and for nothing B can give.
  const s = node(l, { B: [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12] }, { random: seeded(3), initialDepth: 12 });
  for (let k = 0; k < 13; k++) s.want(p(k), 'readahead');
  t.deepEqual(piecesOf(s.fill('S', 0)), [9]);
  const fromB = piecesOf(s.fill('B', 0));
  t.is(fromB.length, 3);
  t.false(fromB.includes(9));
});

// ── origin side ──────────────────────────────────────────────────────────────

test('SharePolicy serves a piece nobody else has, rejects one another peer has', (t) => {
  const policy = new SharePolicy();
  const has = new Map<string, Set<number>>([['A', new Set([1])]]);
  const othersHave = (piece: number, peer: string): boolean => [...has].some(([k, s]) => k !== peer && s.has(piece));
  t.is(policy.decide('B', 0, 0, othersHave), 'serve');
  t.is(policy.decide('B', 1, 0, othersHave), 'reject');
  t.is(policy.decide('A', 1, 0, othersHave), 'serve', 'A itself has it: no other peer, so it is served (a re-download)');
});

test('SharePolicy rejects a piece it is sending another peer, serves it once that is old', (t) => {
  const policy = new SharePolicy({ holdMs: 3000 });
  const nobody = (): boolean => false;
  t.is(policy.decide('A', 5, 0, nobody), 'serve');
  policy.serving('A', 5, 0);
  t.is(policy.decide('B', 5, 100, nobody), 'reject', 'A is getting piece 5: B gets it from A');
  t.is(policy.decide('C', 5, 3100, nobody), 'serve', 'A got nothing of it for holdMs: no longer counted');
});

test('SharePolicy never starves: a request repeated after a reject is served; the same burst is not', (t) => {
  const policy = new SharePolicy({ repeatAfterMs: 250 });
  const always = (): boolean => true;
  t.is(policy.decide('B', 7, 0, always), 'reject');
  t.is(policy.decide('B', 7, 5, always), 'reject', 'the rest of the burst of block requests');
  t.is(policy.decide('B', 7, 1000, always), 'serve', 'asked again later: its deadline is near or nobody delivered');
  t.is(policy.decide('B', 7, 1001, always), 'reject', 'a served repeat that was not sent (serving not called) does not commit the piece');
});

test('SharePolicy: a peer served a block of a piece gets the rest of the piece, not a reject per block', (t) => {
  const policy = new SharePolicy({ repeatAfterMs: 250, holdMs: 3000 });
  const always = (): boolean => true;
  t.is(policy.decide('B', 7, 0, always), 'reject');
  t.is(policy.decide('B', 7, 300, always), 'serve', 'the repeat');
  policy.serving('B', 7, 300);
  for (const now of [301, 302, 303, 1000]) t.is(policy.decide('B', 7, now, always), 'serve', `the piece's next block at ${now} ms`);
  t.is(policy.decide('C', 7, 1001, always), 'reject', 'another peer still gets it from the others');
  t.is(policy.decide('B', 7, 3400, always), 'reject', 'after holdMs without a block the piece is not committed any more');
});

test('SharePolicy: a piece only seeds have is served, up to copiesBesideSeeds copies; then the seeds serve it', (t) => {
  const policy = new SharePolicy({ copiesBesideSeeds: 2, holdMs: 3000 }); // the default is 1
  const noDownloader = (): boolean => false;
  const seedHas = (): boolean => true;
  t.is(policy.decide('A', 3, 0, noDownloader, seedHas), 'serve', 'the only other holder is a seed: not a reason to reject');
  policy.serving('A', 3, 0);
  t.is(policy.decide('A', 3, 10, noDownloader, seedHas), 'serve', 'the rest of the piece to A');
  policy.serving('A', 3, 10);
  t.is(policy.decide('B', 3, 4000, noDownloader, seedHas), 'serve', 'a second copy (A left without announcing it)');
  policy.serving('B', 3, 4000);
  t.is(policy.decide('C', 3, 8000, noDownloader, seedHas), 'reject', 'two copies sent: the seed serves C');
  t.is(policy.decide('D', 3, 8000, noDownloader, () => false), 'serve', 'no seed has it: only we can give it');
});

test('SharePolicy forgets a peer that left', (t) => {
  const policy = new SharePolicy();
  const nobody = (): boolean => false;
  policy.serving('A', 2, 0);
  t.is(policy.decide('B', 2, 10, nobody), 'reject');
  policy.peerLeft('A');
  policy.peerLeft('B');
  t.is(policy.decide('B', 2, 20, nobody), 'serve');
});

// ── both together: a simulated cluster ───────────────────────────────────────

interface SimResult {
  originBlocks: number;
  totalBlocks: number;
  doneAtMs: number;
  boundMs: number;
}

/**
 * N nodes and an origin, every uploader sending `rate` blocks per 10 ms tick
 * from a FIFO of requests, a request or a reject arriving one tick later. Each
 * node wants every piece (the read-ahead of a reader that reads everything).
 * Counts the blocks the origin sent until every node has every piece.
 */
function simulateCluster(n: number, pieceCount: number, share: ShareMode, seed: number): SimResult {
  const l = layout(pieceCount);
  const TICK = 10;
  const rate = 2;
  const keys = Array.from({ length: n }, (_, i) => `N${i}`);
  const schedulers = new Map<string, Scheduler>();
  const have = new Map<string, Set<number>>(keys.map((k) => [k, new Set()]));
  for (const [i, key] of keys.entries()) {
    const s = new Scheduler(l, { random: seeded(seed * 100 + i), initialDepth: 8, targetQueueMs: 200 });
    s.addPeer('S', 0, { fast: true });
    s.peerHaveAll('S');
    s.setChoked('S', false);
    for (const other of keys) {
      if (other === key) continue;
      s.addPeer(other, 0, { fast: true });
      s.setChoked(other, false);
    }
    for (let k = 0; k < pieceCount; k++) s.want(p(k), 'readahead');
    schedulers.set(key, s);
  }
  const policy = share === 'distinct' ? new SharePolicy() : undefined;
  type Queued = { to: string; r: BlockRequest };
  const queues = new Map<string, Queued[]>([['S', []], ...keys.map((k) => [k, []] as [string, Queued[]])]);
  let rejects: Array<{ to: string; r: BlockRequest }> = [];
  let originBlocks = 0;
  let now = 0;
  const othersHave = (piece: number, peer: string): boolean => keys.some((k) => k !== peer && have.get(k)!.has(piece));
  const route = (from: string, requests: Map<string, BlockRequest[]>): void => {
    for (const [to, list] of requests) {
      for (const r of list) {
        if (to === 'S' && policy && policy.decide(from, r.index, now, othersHave) === 'reject') {
          rejects.push({ to: from, r });
          continue;
        }
        if (to === 'S') policy?.serving(from, r.index, now);
        queues.get(to)!.push({ to: from, r });
      }
    }
  };
  while (keys.some((k) => have.get(k)!.size < pieceCount) && now < 600_000) {
    now += TICK;
    for (const { to, r } of rejects) schedulers.get(to)!.onReject('S', r.index, r.offset, now);
    rejects = [];
    for (const [uploader, queue] of queues) {
      for (let sent = 0; sent < rate && queue.length > 0; ) {
        const { to, r } = queue.shift()!;
        const s = schedulers.get(to)!;
        if (!s.hasPeer(uploader) || !s.outstanding(uploader).some((o) => o.index === r.index && o.offset === r.offset)) continue; // cancelled
        sent++;
        if (uploader === 'S') originBlocks++;
        const out = s.onBlock(uploader, r.index, r.offset, r.length, now);
        for (const c of out.cancels) queues.set(c.peer, queues.get(c.peer)!.filter((q) => !(q.to === to && q.r.index === c.index && q.r.offset === c.offset)));
        if (out.pieceComplete) {
          for (const c of s.pieceVerified(r.index)) queues.set(c.peer, queues.get(c.peer)!.filter((q) => !(q.to === to && q.r.index === c.index)));
          have.get(to)!.add(r.index);
          for (const other of keys) if (other !== to) schedulers.get(other)!.peerHave(to, r.index as PieceIndex);
        }
      }
    }
    for (const key of keys) {
      const s = schedulers.get(key)!;
      if (now % 1000 === 0) s.tick(now);
      route(key, s.schedule(now).requests);
    }
  }
  const totalBlocks = pieceCount * BLOCKS_PER_PIECE;
  const perMs = rate / TICK;
  const boundMs = Math.max(totalBlocks / perMs, (n * totalBlocks) / ((n + 1) * perMs));
  return { originBlocks, totalBlocks, doneAtMs: now, boundMs };
}

// 256 pieces of 4 blocks at 2 blocks per 10 ms: about 5 s of simulated time, like the bench's scale (ticks once a second).
test('a simulated cluster of 8 nodes costs the origin each block about once and finishes near the swarm bound', (t) => {
  const distinct = simulateCluster(8, 256, 'distinct', 1);
  const all = simulateCluster(8, 256, 'all', 1);
  const factor = (r: SimResult): number => r.originBlocks / r.totalBlocks;
  t.log(`distinct: origin factor ${factor(distinct).toFixed(2)}, ${distinct.doneAtMs} ms (bound ${distinct.boundMs} ms)`);
  t.log(`all:      origin factor ${factor(all).toFixed(2)}, ${all.doneAtMs} ms (bound ${all.boundMs} ms)`);
  t.true(distinct.doneAtMs < 600_000, 'every node got every piece');
  t.true(factor(distinct) <= 1.2, `origin factor ${factor(distinct).toFixed(2)}`);
  t.true(distinct.doneAtMs <= 1.3 * distinct.boundMs, `${distinct.doneAtMs} ms vs bound ${distinct.boundMs} ms`);
  t.true(factor(distinct) <= factor(all), 'the distinct-first origin sends no more than one that serves every request');
});

test('with one node the origin simply serves everything (nothing to trade)', (t) => {
  const one = simulateCluster(1, 32, 'distinct', 2);
  t.is(one.originBlocks, one.totalBlocks);
});
