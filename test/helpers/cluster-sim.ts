/**
 * A simulated cluster for the sharing rules (issues 11 and 12): N nodes, each a real Scheduler
 * (and, with an HTTP origin, the real web-seed picker), an origin, and a reader per node that
 * reads its pieces in order with a few reads blocked (urgent, with a deadline) and a read-ahead
 * window beyond them. Time is a fake clock in ticks of 10 ms; every uploader (the origin and each
 * node) sends `rate` blocks per tick from a FIFO of requests; a request, a reject or a HAVE takes
 * one tick to arrive. Two origins:
 *
 * - `seed`: a peer with every piece and a SharePolicy (`distinct`: rejects a piece another peer has
 *   or is being sent) or none (`all`);
 * - `web`: an HTTP server (no rejects) sending `rate` blocks per tick over all the fetches in
 *   flight, in turn; each node has `webSlots` fetches at a time, picked by pickWebSeedFetches from
 *   the candidates the Swarm gathers (urgent pieces, then the wanted ones), and a fetch is cut
 *   off when a peer delivers its piece first (the blocks already sent still count).
 *
 * Workloads: `full` (every node reads every piece, in the same order) and `shards` (node i reads
 * every N-th piece of a seeded permutation, then its shard of a second permutation).
 *
 * The origin factor counts the blocks the origin sent / the dataset's blocks; the bound is the
 * swarm's: full max(F/u_s, N·F/(u_s + Σu_i)); shards, epoch 1 at least F/u_s, epoch 2 the blocks
 * the nodes lack spread over every uploader.
 */
import { BLOCK_SIZE, PieceLayout, pieceIndex, type PieceIndex } from '../../src/metainfo/piece-layout.js';
import { Scheduler, type BlockRequest, type SchedulerOptions } from '../../src/scheduler/index.js';
import { SharePolicy } from '../../src/swarm/share-policy.js';
import { pickWebSeedFetches, type WantedPieceSupply } from '../../src/swarm/web-seed-picker.js';

export const SIM_BLOCKS_PER_PIECE = 4;
const TICK = 10;
/** The origin's key in every node's scheduler. */
const ORIGIN = 'S';

export interface ClusterSimOptions {
  nodes: number;
  pieces: number;
  origin: 'seed' | 'web';
  /** Seed origin only: distinct (reject what another peer has or is getting) or all. Default distinct. */
  share?: 'distinct' | 'all';
  /** `one`: node 0 reads every piece, the others are mounted and read nothing. */
  workload: 'full' | 'shards' | 'one';
  seed: number;
  /** Blocks per tick each uploader sends. Default 2. */
  rate?: number;
  /** Reads blocked at once per node (urgent pieces). Default 4. */
  reads?: number;
  /** Read-ahead pieces beyond the blocked reads. Default 32. */
  window?: number;
  /** A blocked read's deadline, ms after it began. Default 3000 (the Reader's urgent target). */
  deadlineMs?: number;
  /** Web fetches in flight per node. Default 4 (a web seed's connections). */
  webSlots?: number;
  /** Scheduler options of every node (beside the sim's own). */
  scheduler?: SchedulerOptions;
  /** Gives each node the peer ids of the others (first-copy owners). Default true. */
  peerIds?: boolean;
  /** Node i starts reading at a random time within this many ms (the nodes of a real cluster start apart). Default 500. */
  startSpreadMs?: number;
  /** Give up after this much simulated time. Default 600 s. */
  limitMs?: number;
}

export interface ClusterSimResult {
  doneAtMs: number;
  boundMs: number;
  originBlocks: number;
  totalBlocks: number;
  /** Rejects the seed origin sent. */
  rejects: number;
  /** Time the origin sent less than its rate while some node still read (ms). */
  originIdleMs: number;
  /** doneAtMs / boundMs. */
  timeOverBound: number;
  originFactor: number;
}

/** mulberry32: a seeded PRNG, so every run makes the same choices. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(count: number, random: () => number): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** A btmount-style peer id (hex, as the wire gives it) for node i. */
export function simPeerId(i: number): string {
  return Buffer.from(`-BM0100-sim${String(i).padStart(9, '0')}`, 'latin1').toString('hex');
}

class SimReader {
  pos = 0;
  /** Pieces wanted, by priority asked. */
  readonly asked = new Map<number, 'urgent' | 'readahead'>();
  constructor(
    readonly epochs: number[][],
    public epoch = 0,
  ) {}
  get order(): number[] {
    return this.epochs[this.epoch] ?? [];
  }
  get done(): boolean {
    return this.epoch >= this.epochs.length;
  }
}

interface WebFetch {
  node: number;
  index: number;
  sent: number;
}

export function simulateCluster(o: ClusterSimOptions): ClusterSimResult {
  const n = o.nodes;
  const pieceCount = o.pieces;
  const rate = o.rate ?? 2;
  const reads = o.reads ?? 4;
  const window = o.window ?? 32;
  const deadlineMs = o.deadlineMs ?? 3000;
  const webSlots = o.webSlots ?? 4;
  const limitMs = o.limitMs ?? 600_000;
  const spread = seeded(o.seed * 31 + 5);
  const startAt = Array.from({ length: n }, () => Math.floor((spread() * (o.startSpreadMs ?? 500)) / TICK) * TICK);
  const pieceLength = BLOCK_SIZE * SIM_BLOCKS_PER_PIECE;
  const layout = new PieceLayout(pieceLength, pieceLength * pieceCount, Buffer.alloc(20 * pieceCount));
  const keys = Array.from({ length: n }, (_, i) => `N${i}`);
  const nodeOf = new Map(keys.map((k, i) => [k, i]));

  // Readers.
  const epochOrders: number[][] =
    o.workload === 'full'
      ? [Array.from({ length: pieceCount }, (_, i) => i)]
      : o.workload === 'one'
      ? [Array.from({ length: pieceCount }, (_, i) => i)]
      : [shuffled(pieceCount, seeded(o.seed * 7919 + 1)), shuffled(pieceCount, seeded(o.seed * 7919 + 2))];
  const readers = keys.map(
    (_, i) =>
      new SimReader(
        o.workload === 'full' ? epochOrders : o.workload === 'one' ? (i === 0 ? epochOrders : []) : epochOrders.map((ord) => ord.filter((_, k) => k % n === i)),
      ),
  );

  const ids = o.peerIds ?? true;
  const schedulers = keys.map((key, i) => {
    const s = new Scheduler(layout, {
      random: seeded(o.seed * 100 + i),
      initialDepth: 8,
      targetQueueMs: 200,
      ...(ids ? { selfId: simPeerId(i) } : {}),
      ...o.scheduler,
    });
    if (o.origin === 'seed') {
      // The origin is a btmount too: its id follows the rule, but a seed is no member.
      s.addPeer(ORIGIN, 0, { fast: true, ...(ids ? { peerId: simPeerId(1000) } : {}) });
      s.peerHaveAll(ORIGIN);
      s.setChoked(ORIGIN, false);
    }
    for (const [k, other] of keys.entries()) {
      if (other === key) continue;
      s.addPeer(other, 0, { fast: true, ...(ids ? { peerId: simPeerId(k) } : {}) });
      s.setChoked(other, false);
    }
    return s;
  });
  const have = keys.map(() => new Set<number>());
  const policy = o.origin === 'seed' && (o.share ?? 'distinct') === 'distinct' ? new SharePolicy() : undefined;
  type Queued = { to: number; r: BlockRequest };
  const queues = new Map<string, Queued[]>([[ORIGIN, []], ...keys.map((k) => [k, []] as [string, Queued[]])]);
  let rejectsInFlight: Array<{ to: number; r: BlockRequest }> = [];
  let havesInFlight: Array<{ from: number; index: number }> = [];
  const webFetches: WebFetch[] = [];
  let webTurn = 0;
  let originBlocks = 0;
  let originIdleMs = 0;
  let rejects = 0;
  let now = 0;

  const isSeedNode = (i: number): boolean => have[i]!.size === pieceCount;
  const othersHave = (piece: number, peer: string): boolean => keys.some((k, i) => k !== peer && !isSeedNode(i) && have[i]!.has(piece));
  const seedHas = (_piece: number, peer: string): boolean => keys.some((k, i) => k !== peer && isSeedNode(i));

  const dropQueued = (uploader: string, to: number, index: number, offset?: number): void => {
    const q = queues.get(uploader)!;
    queues.set(
      uploader,
      q.filter((e) => !(e.to === to && e.r.index === index && (offset === undefined || e.r.offset === offset))),
    );
  };

  /** Node i has piece `index` verified (from a peer, the origin or the web). */
  const gotPiece = (i: number, index: number): void => {
    if (have[i]!.has(index)) return;
    have[i]!.add(index);
    const s = schedulers[i]!;
    if (s.isWanted(pieceIndex(index))) for (const c of s.pieceVerified(pieceIndex(index))) dropQueued(c.peer, i, c.index);
    readers[i]!.asked.delete(index);
    havesInFlight.push({ from: i, index });
    for (let k = webFetches.length - 1; k >= 0; k--) if (webFetches[k]!.node === i && webFetches[k]!.index === index) webFetches.splice(k, 1);
  };

  const route = (from: number, requests: Map<string, BlockRequest[]>): void => {
    for (const [to, list] of requests) {
      for (const r of list) {
        if (to === ORIGIN && policy) {
          if (policy.decide(keys[from]!, r.index, now, othersHave, seedHas) === 'reject') {
            rejects++;
            rejectsInFlight.push({ to: from, r });
            continue;
          }
          policy.serving(keys[from]!, r.index, now);
        }
        queues.get(to)!.push({ to: from, r });
      }
    }
  };

  /** The reader's wants: blocked reads (urgent, deadline) then the read-ahead window. */
  const readStep = (i: number): void => {
    const reader = readers[i]!;
    const s = schedulers[i]!;
    if (now < startAt[i]!) return;
    while (!reader.done) {
      const order = reader.order;
      while (reader.pos < order.length && have[i]!.has(order[reader.pos]!)) reader.pos++;
      if (reader.pos < order.length) break;
      reader.epoch++;
      reader.pos = 0;
    }
    if (reader.done) return;
    const order = reader.order;
    let blocked = 0;
    for (let k = reader.pos; k < order.length && k < reader.pos + reads + window; k++) {
      const index = order[k]!;
      if (have[i]!.has(index)) continue;
      const priority = blocked < reads ? 'urgent' : 'readahead';
      if (priority === 'urgent') blocked++;
      if (reader.asked.get(index) === priority) continue;
      reader.asked.set(index, priority);
      if (priority === 'urgent') s.want(pieceIndex(index), 'urgent', now + deadlineMs, now);
      else s.want(pieceIndex(index), 'readahead', undefined, now);
    }
  };

  const webStart = (i: number): void => {
    const mine = webFetches.filter((f) => f.node === i);
    const free = webSlots - mine.length;
    if (free <= 0) return;
    const s = schedulers[i]!;
    const fetching = new Set(mine.map((f) => f.index));
    const reader = readers[i]!;
    if (![...reader.asked.values()].includes('urgent') && reader.asked.size === 0) return; // the Swarm asks only with reads waiting
    const candidates: WantedPieceSupply[] = [];
    for (const [index, priority] of reader.asked) {
      if (priority !== 'urgent' || fetching.has(index)) continue;
      candidates.push({ index: pieceIndex(index), priority, deadline: undefined, ...s.peerSupply(pieceIndex(index), now, true) });
    }
    let others = 0;
    for (const index of s.wantedPieces()) {
      if (s.priorityOf(index) === 'urgent' || fetching.has(index)) continue;
      if (++others > 512) break;
      candidates.push({ index, priority: s.priorityOf(index)!, deadline: undefined, ...s.peerSupply(index, now, false) });
    }
    // Deadlines: the sim's urgent pieces were asked with now + deadlineMs; the picker wants them per piece.
    const withDeadlines = candidates.map((c) => (c.priority === 'urgent' ? { ...c, deadline: urgentDeadline.get(`${i} ${c.index}`) } : c));
    for (const pick of pickWebSeedFetches(withDeadlines, [{ id: 0, ready: true, freeSlots: free }], now, { random: webRandom[i]! })) {
      webFetches.push({ node: i, index: pick.index, sent: 0 });
    }
  };
  const urgentDeadline = new Map<string, number>();
  const webRandom = keys.map((_, i) => seeded(o.seed * 1000 + 17 + i));

  const allDone = (): boolean => readers.every((r) => r.done);
  while (!allDone() && now < limitMs) {
    now += TICK;
    for (const { to, r } of rejectsInFlight) if (schedulers[to]!.hasPeer(ORIGIN)) schedulers[to]!.onReject(ORIGIN, r.index, r.offset, now);
    rejectsInFlight = [];
    const haves = havesInFlight;
    havesInFlight = [];
    for (const { from, index } of haves) for (let k = 0; k < n; k++) if (k !== from) schedulers[k]!.peerHave(keys[from]!, pieceIndex(index), now);

    const originBefore = originBlocks;
    // Peer and seed uploads.
    for (const [uploader, queue] of queues) {
      for (let sent = 0; sent < rate && queue.length > 0; ) {
        const { to, r } = queue.shift()!;
        const s = schedulers[to]!;
        if (!s.outstanding(uploader).some((q) => q.index === r.index && q.offset === r.offset)) continue; // cancelled
        sent++;
        if (uploader === ORIGIN) originBlocks++;
        const out = s.onBlock(uploader, r.index, r.offset, r.length, now);
        for (const c of out.cancels) dropQueued(c.peer, to, c.index, c.offset);
        if (out.pieceComplete) gotPiece(to, r.index);
      }
    }
    // The web server: `rate` blocks per tick over the fetches in flight, in turn.
    if (o.origin === 'web') {
      for (let sent = 0; sent < rate && webFetches.length > 0; sent++) {
        webTurn = (webTurn + 1) % webFetches.length;
        const f = webFetches[webTurn]!;
        f.sent++;
        originBlocks++;
        if (f.sent === SIM_BLOCKS_PER_PIECE) {
          webFetches.splice(webTurn, 1);
          gotPiece(f.node, f.index);
        }
      }
    }
    if (originBlocks - originBefore < rate) originIdleMs += TICK;
    for (let i = 0; i < n; i++) {
      const s = schedulers[i]!;
      const before = new Set([...readers[i]!.asked].filter(([, p]) => p === 'urgent').map(([k]) => k));
      readStep(i);
      for (const [index, p] of readers[i]!.asked) if (p === 'urgent' && !before.has(index)) urgentDeadline.set(`${i} ${index}`, now + deadlineMs);
      if (now % 1000 === 0) for (const c of s.tick(now)) dropQueued(c.peer, i, c.index, c.offset);
      const { requests, cancels } = s.schedule(now);
      for (const c of cancels) dropQueued(c.peer, i, c.index, c.offset);
      route(i, requests);
      if (o.origin === 'web') webStart(i);
    }
  }

  const totalBlocks = pieceCount * SIM_BLOCKS_PER_PIECE;
  const perMs = rate / TICK;
  // The origin sends every piece someone reads at least once; every node's pieces arrive over all N + 1 uploaders.
  const read = readers.reduce((sum, r) => sum + new Set(r.epochs.flat()).size, 0) * SIM_BLOCKS_PER_PIECE;
  const union = new Set(readers.flatMap((r) => r.epochs.flat())).size * SIM_BLOCKS_PER_PIECE;
  const boundMs = Math.max(union / perMs, read / ((n + 1) * perMs));
  const doneAtMs = allDone() ? now : Infinity;
  return {
    doneAtMs,
    boundMs,
    originBlocks,
    totalBlocks,
    rejects,
    originIdleMs,
    timeOverBound: doneAtMs / boundMs,
    originFactor: originBlocks / totalBlocks,
  };
}

export function describeSim(r: ClusterSimResult): string {
  return `time ${r.doneAtMs} ms / bound ${r.boundMs.toFixed(0)} ms = ${r.timeOverBound.toFixed(2)}, origin factor ${r.originFactor.toFixed(2)}, rejects ${r.rejects}`;
}

export type { PieceIndex };
