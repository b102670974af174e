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
import { FirstCopyOwners, followsFirstCopyRule } from '../src/scheduler/first-copies.js';
import { pickWebSeedFetches } from '../src/swarm/web-seed-picker.js';
import { describeSim, seeded, simPeerId, simulateCluster as simulateReaders, type ClusterSimOptions, type ClusterSimResult } from './helpers/cluster-sim.js';

const p = pieceIndex;
const BLOCKS_PER_PIECE = 4;

function layout(pieceCount: number): PieceLayout {
  const pieceLength = BLOCK_SIZE * BLOCKS_PER_PIECE;
  return new PieceLayout(pieceLength, pieceLength * pieceCount, Buffer.alloc(20 * pieceCount));
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

// ── first copies (issue 12): who asks the origin for a piece first ───────────

const ids = Array.from({ length: 8 }, (_, i) => simPeerId(i));

/** Node `me`'s view of first-copy owners, with the other ids as members. */
function ownersSeenBy(me: number, members: readonly number[], pieceCount: number): FirstCopyOwners {
  const o = new FirstCopyOwners(ids[me]!, pieceCount);
  for (const m of members) if (m !== me) o.setMember(`k${m}`, ids[m]!, true);
  return o;
}

test('first copies: with the same members every piece has exactly one owner, and the shares are even', (t) => {
  const members = [0, 1, 2, 3, 4, 5, 6, 7];
  const views = members.map((m) => ownersSeenBy(m, members, 1024));
  const owned = members.map(() => 0);
  for (let piece = 0; piece < 1024; piece++) {
    const owners = members.filter((m) => views[m]!.isMine(piece));
    t.is(owners.length, 1, `piece ${piece}: owners ${owners.join(',')}`);
    owned[owners[0]!]!++;
  }
  for (const n of owned) t.true(n > 1024 / 8 / 2 && n < (1024 / 8) * 1.5, `shares ${owned.join(' ')}`);
});

test('first copies: a member that leaves (or finishes) hands on only its own pieces', (t) => {
  const me = ownersSeenBy(0, [0, 1, 2, 3], 256);
  const before = Array.from({ length: 256 }, (_, i) => me.ownerOf(i));
  me.remove('k2');
  for (let i = 0; i < 256; i++) {
    if (before[i] !== 'k2') t.is(me.ownerOf(i), before[i], `piece ${i} kept its owner`);
    else t.not(me.ownerOf(i), 'k2');
  }
  t.true(before.includes('k2'));
});

test('first copies: only btmount peer ids follow the rule', (t) => {
  t.true(followsFirstCopyRule(simPeerId(3)));
  t.true(followsFirstCopyRule(Buffer.from('-BM0100-abcdefghijkl').toString('hex')));
  t.false(followsFirstCopyRule(Buffer.from('-lt2000-abcdefghijkl').toString('hex')));
  t.false(followsFirstCopyRule(undefined));
});

/** Node 0 of a cluster: the origin S (a btmount id, have-all) and members N1..N{k}. */
function member(l: PieceLayout, others: number, opts: SchedulerOptions = {}): Scheduler {
  const s = new Scheduler(l, { initialDepth: BLOCKS_PER_PIECE, minDepth: 1, selfId: ids[0]!, ...opts });
  s.addPeer('S', 0, { fast: true, peerId: simPeerId(99) });
  s.peerHaveAll('S');
  s.setChoked('S', false);
  for (let i = 1; i <= others; i++) {
    s.addPeer(`N${i}`, 0, { fast: true, peerId: ids[i]! });
    s.setChoked(`N${i}`, false);
  }
  return s;
}

test('first copies: the seed is asked for our own read-ahead pieces, in the order wanted; others\' after the grace; a blocked read at once', (t) => {
  const l = layout(64);
  const view = ownersSeenBy(0, [0, 1, 2, 3], 64);
  const mine = Array.from({ length: 64 }, (_, i) => i).filter((i) => view.isMine(i));
  t.true(mine.length > 2 && mine.length < 40);
  // Room for all of ours and more in one fill.
  const s = member(l, 3, { random: seeded(1), initialDepth: BLOCKS_PER_PIECE * 64, firstCopyGraceMs: 5000, firstCopyIdleMs: 60_000 });
  for (let k = 0; k < 64; k++) s.want(p(k), 'readahead', undefined, 0);
  t.deepEqual(piecesOf(s.fill('S', 0)), mine, 'ours, in the order wanted (not at random), and nothing else');
  t.deepEqual(s.fill('S', 4999), [], 'others\' pieces are left to their owners');
  const theirs = piecesOf(s.fill('S', 5000));
  t.true(theirs.length > 0 && theirs.every((i) => !mine.includes(i)), 'wanted for the grace: ours to take');

  const u = member(l, 3);
  const other = Array.from({ length: 64 }, (_, i) => i).find((i) => !view.isMine(i))!;
  u.want(p(other), 'urgent', 3000, 0);
  t.deepEqual(piecesOf(u.schedule(0).requests.get('S') ?? []), [other], 'a blocked read does not wait for the owner');
});

test('first copies: without members (alone, or only a seed and other clients) every piece is ours', (t) => {
  const s = new Scheduler(layout(16), { initialDepth: BLOCKS_PER_PIECE, minDepth: 1, selfId: ids[0]! });
  s.addPeer('S', 0, { fast: true, peerId: simPeerId(99) });
  s.peerHaveAll('S');
  s.addPeer('L', 0, { fast: true, peerId: Buffer.from('-lt2000-abcdefghijkl').toString('hex') });
  for (let k = 0; k < 16; k++) t.true(s.firstCopyHere(p(k), 0));
  t.is(s.peerSupply(p(3), 0, false).firstCopyHere, undefined, 'no first-copy information for the web-seed picker');
});

test('first copies: a member that turns seed no longer owns pieces', (t) => {
  const l = layout(32);
  const s = member(l, 1);
  for (let k = 0; k < 32; k++) s.want(p(k), 'readahead', undefined, 0);
  const theirs = Array.from({ length: 32 }, (_, i) => i).filter((i) => !s.firstCopyHere(p(i), 0));
  t.true(theirs.length > 0);
  s.peerHaveAll('N1');
  for (const i of theirs) t.true(s.firstCopyHere(p(i), 0), `piece ${i} is ours once N1 has every piece`);
});

test('first copies: another member\'s piece is ours after firstCopyGraceMs, or once that member turns out to read other pieces', (t) => {
  const l = layout(64);
  const s = member(l, 1, { firstCopyGraceMs: 5000, firstCopyIdleMs: 60_000 });
  for (let k = 0; k < 32; k++) s.want(p(k), 'readahead', undefined, 1000);
  const theirs = Array.from({ length: 32 }, (_, i) => i).filter((i) => !s.firstCopyHere(p(i), 1000));
  t.true(theirs.length > 3);
  t.false(s.firstCopyHere(p(theirs[0]!), 5999));
  t.true(s.firstCopyHere(p(theirs[0]!), 6000), 'wanted for the grace: ours');
  // A member that announces pieces we want reads with us: its pieces stay its own.
  for (const i of theirs.slice(1, 5)) s.peerHave('N1', p(i));
  t.false(s.firstCopyHere(p(theirs[0]!), 2000));
  // One that announces pieces we never wanted (its own shard) does not: its pieces are ours at once.
  for (let k = 40; k < 52; k++) s.peerHave('N1', p(k));
  t.true(s.firstCopyHere(p(theirs[0]!), 2000));
});

test('first copies: a member that announces nothing for firstCopyIdleMs reads nothing: its pieces are ours', (t) => {
  const l = layout(64);
  const s = member(l, 1, { firstCopyIdleMs: 1000 });
  for (let k = 0; k < 32; k++) s.want(p(k), 'readahead', undefined, 0);
  const theirs = Array.from({ length: 32 }, (_, i) => i).filter((i) => !s.firstCopyHere(p(i), 0));
  t.true(theirs.length > 0);
  t.false(s.firstCopyHere(p(theirs[0]!), 1000), 'connected 1 s ago: still its own');
  t.true(s.firstCopyHere(p(theirs[0]!), 1001), 'nothing announced since it connected');
  s.peerHave('N1', p(theirs[1]!), 1500);
  t.false(s.firstCopyHere(p(theirs[0]!), 2000), 'it announced a piece we want: it reads with us');
  t.true(s.firstCopyHere(p(theirs[0]!), 2501));
});

test('first copies: the web seed is not asked for a piece another member owns, unless a read is blocked on it near its deadline', (t) => {
  const l = layout(64);
  const s = member(l, 3);
  s.removePeer('S'); // an HTTP origin: no seed peer
  for (let k = 0; k < 16; k++) s.want(p(k), 'readahead', undefined, 0);
  const ours = Array.from({ length: 16 }, (_, i) => i).filter((i) => s.firstCopyHere(p(i), 0));
  const theirs = Array.from({ length: 16 }, (_, i) => i).filter((i) => !ours.includes(i));
  t.true(ours.length > 0 && theirs.length > 0);
  const supply = (now: number, urgent?: number) =>
    Array.from({ length: 16 }, (_, i) => ({
      index: p(i),
      priority: i === urgent ? ('urgent' as const) : ('readahead' as const),
      deadline: i === urgent ? 3000 : undefined,
      ...s.peerSupply(p(i), now, i === urgent),
    }));
  const picked = pickWebSeedFetches(supply(0), [{ id: 0, ready: true, freeSlots: 16 }], 0).map((x) => x.index);
  t.deepEqual(picked, ours, 'ours only, in order');
  const u = theirs[0]!;
  t.false(pickWebSeedFetches(supply(1000, u), [{ id: 0, ready: true, freeSlots: 16 }], 1000).some((x) => x.index === u), 'blocked, deadline 2 s away: its owner gets it');
  t.true(pickWebSeedFetches(supply(2000, u), [{ id: 0, ready: true, freeSlots: 16 }], 2000).some((x) => x.index === u), 'within a second of the deadline: fetched');
});

// ── the simulated cluster with readers: both origins, full and sharded reads ─

/** One configuration, with and without first-copy owners (peer ids), over a few seeds. */
function compare(o: Omit<ClusterSimOptions, 'seed'>, seeds = [1, 2]): { before: ClusterSimResult[]; after: ClusterSimResult[] } {
  const run = (peerIds: boolean): ClusterSimResult[] => seeds.map((seed) => simulateReaders({ ...o, seed, peerIds }));
  return { before: run(false), after: run(true) };
}
const mean = (rs: readonly ClusterSimResult[], f: (r: ClusterSimResult) => number): number => rs.reduce((a, r) => a + f(r), 0) / rs.length;
const summary = (rs: readonly ClusterSimResult[]): string =>
  `time / bound ${mean(rs, (r) => r.timeOverBound).toFixed(2)}, origin factor ${mean(rs, (r) => r.originFactor).toFixed(2)} (${rs.map(describeSim).join('; ')})`;

for (const nodes of [4, 8]) {
  test(`simulated cluster, web seed, full reads, N = ${nodes}: first copies take the origin factor to about 1`, (t) => {
    const { before, after } = compare({ nodes, pieces: 256, origin: 'web', workload: 'full', window: 64 });
    t.log(`without owners: ${summary(before)}`);
    t.log(`with owners:    ${summary(after)}`);
    t.true(after.every((r) => r.doneAtMs < Infinity));
    t.true(mean(after, (r) => r.originFactor) <= 1.2, 'origin factor ≤ 1.2');
    t.true(mean(before, (r) => r.originFactor) > 2, 'without owners the nodes fetch the same pieces (the issue)');
    t.true(mean(after, (r) => r.timeOverBound) < mean(before, (r) => r.timeOverBound));
  });

  test(`simulated cluster, web seed, sharded reads, N = ${nodes}: owners who do not read a piece do not slow it`, (t) => {
    const { before, after } = compare({ nodes, pieces: 256, origin: 'web', workload: 'shards', window: 64 });
    t.log(`without owners: ${summary(before)}`);
    t.log(`with owners:    ${summary(after)}`);
    t.true(after.every((r) => r.doneAtMs < Infinity));
    t.true(mean(after, (r) => r.timeOverBound) <= mean(before, (r) => r.timeOverBound) * 1.1, 'no more than 10 % slower');
    t.true(mean(after, (r) => r.originFactor) <= 1.1);
  });

  test(`simulated cluster, web seed, one reader among ${nodes} mounts: the idle mounts own nothing for long`, (t) => {
    const { before, after } = compare({ nodes, pieces: 256, origin: 'web', workload: 'one', window: 64 });
    t.log(`without owners: ${summary(before)}`);
    t.log(`with owners:    ${summary(after)}`);
    t.true(mean(after, (r) => r.timeOverBound) <= mean(before, (r) => r.timeOverBound) * 1.1, 'no more than 10 % slower');
  });

  for (const workload of ['full', 'shards'] as const) {
    test(`simulated cluster, seed origin (distinct), ${workload} reads, N = ${nodes}: first copies ${workload === 'full' ? 'take fewer rejects and less time' : 'cost the shards nothing'}`, (t) => {
      const { before, after } = compare({ nodes, pieces: 256, origin: 'seed', workload, window: 64 });
      t.log(`without owners: ${summary(before)}`);
      t.log(`with owners:    ${summary(after)}`);
      t.true(after.every((r) => r.doneAtMs < Infinity), 'every node read every piece');
      t.true(mean(after, (r) => r.originFactor) <= 1.1);
      if (workload === 'full') {
        t.true(mean(after, (r) => r.rejects) < mean(before, (r) => r.rejects) / 2, 'the origin sees distinct requests: fewer rejects');
        t.true(mean(after, (r) => r.timeOverBound) < mean(before, (r) => r.timeOverBound));
      } else t.true(mean(after, (r) => r.timeOverBound) <= mean(before, (r) => r.timeOverBound) * 1.1, 'no more than 10 % slower');
    });
  }
}
