import test from 'ava';
import fc from 'fast-check';
import { BLOCK_SIZE, PieceLayout, pieceIndex } from '../src/metainfo/piece-layout.js';
import { Scheduler, type BlockRequest, type SchedulerOptions } from '../src/scheduler/index.js';

const p = pieceIndex;

function layout(pieceCount: number, pieceLength = BLOCK_SIZE * 4): PieceLayout {
  return new PieceLayout(pieceLength, pieceLength * pieceCount, Buffer.alloc(20 * pieceCount));
}

/** A scheduler with peers that have everything and have unchoked us. */
function withSeeders(l: PieceLayout, peers: string[], opts: SchedulerOptions = {}, now = 0): Scheduler {
  const s = new Scheduler(l, opts);
  for (const key of peers) {
    s.addPeer(key, now, { reqq: 250 });
    s.peerHaveAll(key);
    s.setChoked(key, false);
  }
  return s;
}

const pieces = (rs: readonly BlockRequest[]): number[] => [...new Set(rs.map((r) => r.index))];

test('fill serves urgent before readahead before warm', (t) => {
  const s = withSeeders(layout(10), ['A'], { initialDepth: 12, minDepth: 1 });
  s.want(p(5), 'warm');
  s.want(p(3), 'readahead');
  s.want(p(7), 'urgent');
  const rs = s.fill('A', 0);
  t.deepEqual(
    rs.map((r) => r.index),
    [7, 7, 7, 7, 3, 3, 3, 3, 5, 5, 5, 5],
  );
  t.deepEqual(
    rs.slice(0, 4).map((r) => r.offset),
    [0, 1, 2, 3].map((b) => b * BLOCK_SIZE),
  );
});

test('a peer is not interesting until it has a wanted piece', (t) => {
  const s = new Scheduler(layout(8));
  s.addPeer('A', 0);
  s.setChoked('A', false);
  s.want(p(2), 'warm');
  t.false(s.isInteresting('A'));
  t.deepEqual(s.fill('A', 0), []);
  s.peerHave('A', p(2));
  t.true(s.isInteresting('A'));
  t.is(s.fill('A', 0).length, 4);
});

test('choked peers get no requests; without the fast extension a choke returns their blocks to the pool', (t) => {
  const s = withSeeders(layout(4), ['A', 'B'], { initialDepth: 4, minDepth: 1 });
  s.setChoked('B', true);
  s.want(p(0), 'warm');
  t.is(s.fill('B', 0).length, 0);
  t.is(s.fill('A', 0).length, 4);
  s.setChoked('A', true);
  t.is(s.inflightCount('A'), 0);
  s.setChoked('B', false);
  t.deepEqual(pieces(s.fill('B', 0)), [0]);
  t.is(s.inflightCount('B'), 4);
});

test('rarest first among equal priorities', (t) => {
  const l = layout(5, BLOCK_SIZE); // one block per piece; nobody has piece 4, so A is not a seed (seeds give way to peers)
  const s = new Scheduler(l, { initialDepth: 4, minDepth: 1 });
  for (const key of ['A', 'B', 'C']) {
    s.addPeer(key, 0);
    s.setChoked(key, false);
  }
  // availability: piece 0 → 2 peers, piece 1 → 3, piece 2 → 1 (A only), piece 3 → 2
  s.peerBitfield('A', Uint8Array.of(0b1111_0000));
  s.peerBitfield('B', Uint8Array.of(0b1100_0000));
  s.peerBitfield('C', Uint8Array.of(0b0100_0000));
  s.peerHave('C', p(3));
  for (const i of [0, 1, 2, 3]) s.want(p(i), 'warm');
  const order: number[] = s.fill('A', 0).map((r) => r.index);
  t.is(order[0], 2, 'the piece only A has comes first');
  t.deepEqual(order.slice(1, 3).sort(), [0, 3], 'then the two pieces with 2 sources');
  t.is(order[3], 1, 'the most common piece last');
});

test('availability follows have messages and departures', (t) => {
  const s = new Scheduler(layout(2, BLOCK_SIZE), { initialDepth: 1, minDepth: 1 });
  for (const key of ['A', 'B']) {
    s.addPeer(key, 0);
    s.setChoked(key, false);
  }
  s.want(p(0), 'warm');
  s.want(p(1), 'warm');
  s.peerBitfield('A', Uint8Array.of(0b1100_0000));
  s.peerHave('B', p(1));
  t.deepEqual(pieces(s.fill('A', 0)), [0], 'piece 0 is rarer (1 source vs 2)');
  s.unwant(p(0));
  s.want(p(0), 'warm');
  s.removePeer('B');
  s.addPeer('B', 0);
  s.setChoked('B', false);
  s.peerHave('B', p(0));
  s.unwant(p(0));
  s.unwant(p(1));
  s.want(p(1), 'warm');
  s.want(p(0), 'warm');
  t.deepEqual(pieces(s.fill('A', 1)), [1], 'now piece 1 is the rarer one');
});

test('partial peers find their pieces among many wanted ones (mount-to-mount swarms)', (t) => {
  const count = 40_000;
  const s = new Scheduler(layout(count, BLOCK_SIZE), { initialDepth: 4, minDepth: 1 });
  const half = new Uint8Array(count / 8);
  half.fill(0xff, 0, count / 16); // A: first half
  const other = new Uint8Array(count / 8);
  other.fill(0xff, count / 16); // B: second half
  for (const [key, bits] of [['A', half], ['B', other]] as const) {
    s.addPeer(key, 0);
    s.peerBitfield(key, bits);
    s.setChoked(key, false);
  }
  s.peerHave('A', p(count - 1)); // one piece of B's half is on both: less rare
  for (let i = 0; i < count; i++) s.want(p(i), 'warm');
  const b = s.fill('B', 0);
  t.is(b.length, 4);
  t.true(b.every((r) => r.index >= count / 2), 'B asks only for pieces it has');
  t.false(b.some((r) => r.index === count - 1), 'and not the one two peers have');
  t.true(s.fill('A', 0).every((r) => r.index < count / 2 || r.index === count - 1));
});

test('rarest first does not beat priority', (t) => {
  const s = new Scheduler(layout(2, BLOCK_SIZE), { initialDepth: 1, minDepth: 1 });
  s.addPeer('A', 0);
  s.addPeer('B', 0);
  s.setChoked('A', false);
  s.peerBitfield('A', Uint8Array.of(0b1100_0000));
  s.peerBitfield('B', Uint8Array.of(0b0100_0000));
  s.want(p(0), 'warm'); // rare
  s.want(p(1), 'readahead'); // common
  t.deepEqual(pieces(s.fill('A', 0)), [1]);
});

test('a peer finishes the piece it started before starting another', (t) => {
  const s = withSeeders(layout(4), ['A', 'B'], { initialDepth: 2, minDepth: 1, targetQueueMs: 1 });
  s.want(p(0), 'warm');
  s.want(p(1), 'warm');
  s.want(p(2), 'warm');
  const a1 = s.fill('A', 0);
  const b1 = s.fill('B', 0);
  t.deepEqual(pieces(a1), [0]);
  t.deepEqual(pieces(b1), [1], 'B starts its own piece rather than splitting A’s');
  for (const r of a1) s.onBlock('A', r.index, r.offset, r.length, 1);
  const a2 = s.fill('A', 1);
  t.deepEqual(pieces(a2), [0, 2], 'A finishes piece 0, then starts a new one rather than joining B’s');
});

test('urgent pre-empts: a full pipeline of warm requests makes room', (t) => {
  const s = withSeeders(layout(10), ['A'], { initialDepth: 8, minDepth: 1 });
  for (const i of [0, 1, 2]) s.want(p(i), 'warm');
  const warm = s.fill('A', 0);
  t.is(warm.length, 8);
  t.deepEqual(s.fill('A', 0), [], 'pipeline full');

  s.want(p(9), 'urgent', 5000);
  const { requests, cancels } = s.schedule(0);
  const urgent = requests.get('A') ?? [];
  t.deepEqual(pieces(urgent), [9]);
  t.is(urgent.length, 4);
  t.is(cancels.length, 4, 'as many warm requests cancelled as urgent ones sent');
  t.true(cancels.every((c) => c.peer === 'A' && c.index !== 9));
  // The newest warm requests are the ones cancelled (the back of the peer's queue).
  t.deepEqual(
    cancels.map((c) => `${c.index}:${c.offset / BLOCK_SIZE}`).sort(),
    warm.slice(4).map((r) => `${r.index}:${r.offset / BLOCK_SIZE}`).sort(),
  );
  t.is(s.inflightCount('A'), 8, 'depth unchanged');
  // A cancelled warm block that arrives anyway is harmless.
  const c = cancels[0]!;
  t.is(s.onBlock('A', c.index, c.offset, c.length, 1).verdict, 'late');
  // The cancelled warm blocks are requested again later.
  for (const r of urgent) s.onBlock('A', r.index, r.offset, r.length, 2);
  s.pieceVerified(p(9));
  const again = s.fill('A', 3);
  t.true(again.length > 0);
  t.true(again.every((r) => r.index !== 9));
});

test('urgent blocks go to the peer with the shortest expected queue', (t) => {
  const s = withSeeders(layout(400, BLOCK_SIZE), ['slow', 'fast'], { initialDepth: 16, minDepth: 1 });
  // Measure rates: 'fast' delivers 10× the blocks of 'slow' in the same second.
  for (let i = 0; i < 200; i++) s.want(p(i), 'warm');
  s.fill('slow', 0);
  s.fill('fast', 0);
  let now = 0;
  for (let i = 0; i < 20; i++) {
    now += 50;
    for (const key of i % 10 === 0 ? ['slow', 'fast'] : ['fast']) {
      const r = firstInflight(s, key);
      if (r) s.onBlock(key, r.index, r.offset, r.length, now);
    }
  }
  t.true(s.rate('fast', now) > s.rate('slow', now) * 3);
  s.want(p(300), 'urgent', now + 10_000);
  const { requests } = s.schedule(now);
  t.is(pieces(requests.get('fast') ?? [])[0], 300, 'urgent first, on the fast peer');
  t.false((requests.get('slow') ?? []).some((r) => r.index === 300));
});

test('near its deadline an urgent block is requested from a second peer, and the loser is cancelled', (t) => {
  const s = withSeeders(layout(4), ['A', 'B'], { initialDepth: 8, minDepth: 1, duplicateLeadMs: 1000 });
  s.setChoked('B', true);
  s.want(p(2), 'urgent', 5000);
  const first = s.schedule(0).requests.get('A') ?? [];
  t.is(first.length, 4);
  s.setChoked('B', false);
  // Far from the deadline: no duplicates.
  t.deepEqual(s.schedule(1000).requests.get('B') ?? [], []);
  // A delivers one block; the other three are still out when the deadline nears.
  s.onBlock('A', p(2), 0, BLOCK_SIZE, 2000);
  const dup = s.schedule(4200).requests.get('B') ?? [];
  t.deepEqual(
    dup.map((r) => r.offset / BLOCK_SIZE),
    [1, 2, 3],
  );
  // B's copy of block 1 arrives first: A's request for it is cancelled.
  const out = s.onBlock('B', p(2), BLOCK_SIZE, BLOCK_SIZE, 4300);
  t.is(out.verdict, 'accepted');
  t.deepEqual(out.cancels, [{ peer: 'A', index: 2, offset: BLOCK_SIZE, length: BLOCK_SIZE }]);
  // A's copy arrives anyway: late, not held against A.
  t.is(s.onBlock('A', p(2), BLOCK_SIZE, BLOCK_SIZE, 4400).verdict, 'late');
  // A wins block 2: B is cancelled.
  t.deepEqual(s.onBlock('A', p(2), 2 * BLOCK_SIZE, BLOCK_SIZE, 4500).cancels, [
    { peer: 'B', index: 2, offset: 2 * BLOCK_SIZE, length: BLOCK_SIZE },
  ]);
  const last = s.onBlock('B', p(2), 3 * BLOCK_SIZE, BLOCK_SIZE, 4600);
  t.true(last.pieceComplete);
});

test('pipelining depth follows the measured rate, within reqq', (t) => {
  const l = layout(2000, BLOCK_SIZE);
  const s = withSeeders(l, ['fast', 'slow'], { targetQueueMs: 1000, initialDepth: 4, minDepth: 2, maxDepth: 4096 });
  s.setReqq('fast', 5000);
  for (let i = 0; i < 2000; i++) s.want(p(i), 'warm');
  // fast: 400 blocks/s (6.4 MB/s); slow: 20 blocks/s. Each peer answers only what was asked.
  let now = 0;
  for (let ms = 0; ms < 4000; ms += 10) {
    now = ms;
    for (const [key, perTick] of [['fast', 4], ['slow', ms % 50 === 0 ? 1 : 0]] as const) {
      for (let i = 0; i < perTick; i++) {
        const r = firstInflight(s, key);
        if (r) s.onBlock(key, r.index, r.offset, r.length, now);
      }
      s.fill(key, now);
    }
    if (ms % 1000 === 0) s.tick(now);
  }
  const fast = s.depth('fast', now);
  const slow = s.depth('slow', now);
  t.log({ fast, slow, fastRate: s.rate('fast', now), slowRate: s.rate('slow', now) });
  t.true(fast >= 300 && fast <= 500, `fast depth ${fast} ≈ 400 blocks (rate × 1 s)`);
  t.true(slow >= 10 && slow <= 40, `slow depth ${slow} ≈ 20 blocks`);
  s.setReqq('fast', 100);
  t.is(s.depth('fast', now), 100, 'never above the peer’s reqq');
});

test('a new peer starts at the initial depth and grows while its rate grows (slow start)', (t) => {
  // A tiny target queue time so that the rate term stays out of the way.
  const s = withSeeders(layout(200, BLOCK_SIZE), ['A'], { initialDepth: 8, minDepth: 2, targetQueueMs: 1 });
  for (let i = 0; i < 200; i++) s.want(p(i), 'warm');
  t.is(s.fill('A', 0).length, 8);
  for (let i = 0; i < 8; i++) {
    const r = firstInflight(s, 'A')!;
    s.onBlock('A', r.index, r.offset, r.length, 5);
  }
  t.is(s.depth('A', 5), 16, 'one more per block received: doubles per round trip');
});

test('a peer that delivers nothing is snubbed; its blocks go to another peer', (t) => {
  const s = withSeeders(layout(4), ['A', 'B'], { initialDepth: 4, minDepth: 1, requestTimeoutMs: 10_000 });
  s.setChoked('B', true);
  s.want(p(0), 'urgent');
  t.is(s.fill('A', 0).length, 4);
  s.setChoked('B', false);
  t.deepEqual(s.fill('B', 0), [], 'nothing left to ask for');
  t.deepEqual(s.tick(5000), []);
  const cancels = s.tick(10_001);
  t.is(cancels.length, 4);
  t.true(s.isSnubbed('A'));
  t.is(s.depth('A', 10_001), 1);
  t.is(s.fill('B', 10_001).length, 4);
  // A recovers when it delivers.
  const late = s.onBlock('A', p(0), 0, BLOCK_SIZE, 10_002);
  t.is(late.verdict, 'late');
});

test('endgame: an idle peer duplicates blocks outstanding too long at a slow one', (t) => {
  const s = withSeeders(layout(2), ['slow', 'idle'], { initialDepth: 8, minDepth: 1, endgameAgeMs: 2000 });
  s.setChoked('idle', true);
  s.want(p(0), 'warm');
  t.is(s.fill('slow', 0).length, 4);
  s.setChoked('idle', false);
  t.deepEqual(s.fill('idle', 1000), [], 'not yet: the blocks are young');
  const dup = s.fill('idle', 2500);
  t.is(dup.length, 4, 'now every block of the piece is asked of the idle peer too');
  const first = s.onBlock('idle', p(0), 0, BLOCK_SIZE, 2600);
  t.deepEqual(first.cancels, [{ peer: 'slow', index: 0, offset: 0, length: BLOCK_SIZE }], 'and the slow copy is cancelled');
});

test('blocks nobody asked for are reported, not stored', (t) => {
  const s = withSeeders(layout(4), ['A'], { initialDepth: 1, minDepth: 1 });
  s.want(p(1), 'warm');
  t.is(s.onBlock('A', p(1), 0, BLOCK_SIZE, 0).verdict, 'unrequested');
  t.is(s.onBlock('A', p(1), 5, BLOCK_SIZE, 0).verdict, 'invalid');
  t.is(s.onBlock('A', p(9), 0, BLOCK_SIZE, 0).verdict, 'invalid');
  const [r] = s.fill('A', 0);
  t.is(s.onBlock('A', r!.index, r!.offset, r!.length - 1, 0).verdict, 'invalid', 'wrong length');
  t.is(s.onBlock('A', r!.index, r!.offset, r!.length, 0).verdict, 'accepted');
});

test('a failed piece names its sources and is fetched again', (t) => {
  const s = withSeeders(layout(2), ['A', 'B'], { initialDepth: 2, minDepth: 1 });
  s.want(p(0), 'urgent');
  const a = s.fill('A', 0);
  const b = s.fill('B', 0);
  t.is(a.length + b.length, 4);
  let complete = false;
  for (const [key, rs] of [['A', a], ['B', b]] as const) {
    for (const r of rs) complete = s.onBlock(key, r.index, r.offset, r.length, 1).pieceComplete;
  }
  t.true(complete);
  const sources = s.pieceFailed(p(0));
  t.deepEqual(sources.get('A'), [0, 1]);
  t.deepEqual(sources.get('B'), [2, 3]);
  t.true(s.isWanted(p(0)));
  t.is(s.fill('A', 2).length + s.fill('B', 2).length, 4, 'all four blocks asked for again');
});

test('unwant cancels what is in flight', (t) => {
  const s = withSeeders(layout(2), ['A'], { initialDepth: 8, minDepth: 1 });
  s.want(p(0), 'warm');
  s.want(p(1), 'warm');
  s.fill('A', 0);
  const cancels = s.unwant(p(1));
  t.is(cancels.length, 4);
  t.is(s.inflightCount('A'), 4);
  t.false(s.isWanted(p(1)));
});

test('raising a priority takes effect on the next pick', (t) => {
  const s = withSeeders(layout(3), ['A'], { initialDepth: 4, minDepth: 1 });
  s.want(p(0), 'warm');
  s.want(p(1), 'warm');
  s.want(p(1), 'urgent');
  t.deepEqual(pieces(s.fill('A', 0)), [1]);
});

test('the partial-piece memory bound stops new warm pieces, not urgent ones', (t) => {
  const s = withSeeders(layout(10), ['A'], { initialDepth: 100, minDepth: 1, maxPartialBytes: 2 * 4 * BLOCK_SIZE });
  for (let i = 0; i < 5; i++) s.want(p(i), 'warm');
  t.deepEqual(pieces(s.fill('A', 0)), [0, 1]);
  s.want(p(9), 'urgent');
  t.deepEqual(pieces(s.fill('A', 0)), [9]);
});

test('invariants hold under random events (property)', (t) => {
  const l = layout(6, BLOCK_SIZE * 3);
  const event = fc.oneof(
    fc.record({ kind: fc.constant('want' as const), index: fc.nat(5), pri: fc.constantFrom('urgent', 'readahead', 'warm' as const) }),
    fc.record({ kind: fc.constant('unwant' as const), index: fc.nat(5) }),
    fc.record({ kind: fc.constant('deliver' as const), peer: fc.nat(2) }),
    fc.record({ kind: fc.constant('choke' as const), peer: fc.nat(2), on: fc.boolean() }),
    fc.record({ kind: fc.constant('leave' as const), peer: fc.nat(2) }),
    fc.record({ kind: fc.constant('tick' as const) }),
  );
  fc.assert(
    fc.property(fc.array(event, { maxLength: 80 }), (events) => {
      const s = new Scheduler(l, { initialDepth: 3, minDepth: 1, requestTimeoutMs: 50 });
      const present = new Set<string>();
      const join = (k: string): void => {
        if (present.has(k)) return;
        s.addPeer(k, now);
        s.peerHaveAll(k);
        s.setChoked(k, false);
        present.add(k);
      };
      let now = 0;
      const verified = new Set<number>();
      ['P0', 'P1', 'P2'].forEach(join);
      for (const e of events) {
        now += 10;
        switch (e.kind) {
          case 'want':
            if (!verified.has(e.index)) s.want(p(e.index), e.pri, now + 100);
            break;
          case 'unwant':
            s.unwant(p(e.index));
            break;
          case 'deliver': {
            const key = `P${e.peer}`;
            if (!present.has(key)) break;
            const r = firstInflight(s, key);
            if (!r) break;
            const out = s.onBlock(key, r.index, r.offset, r.length, now);
            if (out.pieceComplete) {
              s.pieceVerified(r.index);
              verified.add(r.index);
            }
            break;
          }
          case 'choke':
            if (present.has(`P${e.peer}`)) s.setChoked(`P${e.peer}`, e.on);
            break;
          case 'leave':
            s.removePeer(`P${e.peer}`);
            present.delete(`P${e.peer}`);
            join(`P${(e.peer + 1) % 3}`);
            break;
          case 'tick':
            s.tick(now);
            break;
        }
        s.schedule(now);
        let total = 0;
        for (const key of present) {
          const seen = new Set<string>();
          for (const r of inflightOf(s, key)) {
            const id = `${r.index}:${r.offset}`;
            if (seen.has(id)) return false; // never the same block twice on one peer
            seen.add(id);
            if (!s.isWanted(r.index)) return false; // nothing in flight for an unwanted piece
          }
          total += seen.size;
        }
        if (total !== s.inflightCount()) return false;
      }
      // Everything wanted eventually completes when peers deliver.
      ['P0', 'P1', 'P2'].forEach(join);
      for (const key of present) s.setChoked(key, false);
      for (let round = 0; round < 200 && s.wantedCount() > 0; round++) {
        now += 10;
        s.schedule(now);
        for (const key of present) {
          const r = firstInflight(s, key);
          if (!r) continue;
          if (s.onBlock(key, r.index, r.offset, r.length, now).pieceComplete) s.pieceVerified(r.index);
        }
      }
      return s.wantedCount() === 0;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

const inflightOf = (s: Scheduler, key: string): BlockRequest[] => s.outstanding(key);
const firstInflight = (s: Scheduler, key: string): BlockRequest | undefined => s.outstanding(key)[0];
