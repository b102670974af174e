import test from 'ava';
import { silentLogger } from '../src/log.js';
import { Metainfo, type PieceIndex, type TorrentFile } from '../src/metainfo/index.js';
import { ReadStreams, type ReadAheadOptions } from '../src/reader/read-streams.js';
import { Reader, ReadFailedError, type CachedPieces, type OpenFile, type PieceFetcher } from '../src/reader/reader.js';
import type { Priority } from '../src/scheduler/index.js';
import { buildTorrent } from './helpers/torrent-builder.js';

const PIECE = 16384;

/** Pieces held in memory; `fetch` makes a piece appear when `deliver` says so. */
class FakeSwarm implements CachedPieces, PieceFetcher {
  held = new Map<number, Buffer>();
  fetches: Array<{ piece: number; priority: Priority; deadline?: number | undefined; signal?: AbortSignal | undefined }> = [];
  /** Connected peers that have each piece (sourcesOf). */
  sources = new Map<number, number>();
  pinned = new Map<number, number>();
  autoDeliver = true;
  /** Pieces whose first read fails as if evicted/corrupt between has() and read. */
  vanishOnce = new Set<number>();
  constructor(readonly data: Buffer) {}
  has(i: PieceIndex): boolean {
    return this.held.has(i);
  }
  async readInto(i: PieceIndex, offset: number, length: number, target: Buffer, targetOffset: number): Promise<void> {
    if (this.vanishOnce.delete(i)) {
      this.held.delete(i);
      throw new Error(`piece ${i} was corrupt on disk and has been dropped`);
    }
    const piece = this.held.get(i);
    if (!piece) throw new Error(`piece ${i} is not in the cache`);
    piece.copy(target, targetOffset, offset, offset + length);
  }
  async refresh(i: PieceIndex): Promise<boolean> {
    return this.held.has(i);
  }
  pin(i: PieceIndex): () => void {
    this.pinned.set(i, (this.pinned.get(i) ?? 0) + 1);
    return () => this.pinned.set(i, this.pinned.get(i)! - 1);
  }
  /** Fetches waiting for a piece (autoDeliver off): deliver() ends them. */
  pending = new Map<number, Array<() => void>>();
  deliver(i: number): void {
    this.held.set(i, this.data.subarray(i * PIECE, (i + 1) * PIECE));
    for (const resolve of this.pending.get(i) ?? []) resolve();
    this.pending.delete(i);
  }
  fetch(i: PieceIndex, priority: Priority, signal?: AbortSignal, deadline?: number): Promise<void> {
    this.fetches.push({ piece: i, priority, deadline, signal });
    if (this.autoDeliver) {
      this.deliver(i);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.pending.set(i, [...(this.pending.get(i) ?? []), resolve]);
      signal?.addEventListener('abort', () => reject(signal.reason));
    });
  }
  waitingReason(): string {
    return 'no peers';
  }
  sourcesOf(i: PieceIndex): number {
    return this.sources.get(i) ?? 0;
  }
}

/** A clock the test moves by hand. */
function fakeClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

/** A read into a buffer of its own (the FUSE path reads into the kernel's). */
async function readAll(reader: Reader, handle: OpenFile, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(Math.max(0, length));
  return buf.subarray(0, await reader.readInto(handle, offset, length, buf));
}

const READ_AHEAD: ReadAheadOptions = { initialBytes: PIECE, maxBytes: 4 * PIECE, backwardToleranceBytes: 8192 };

function setup(
  opts: {
    readTimeoutMs?: number;
    files?: Array<{ path: string[]; length: number }>;
    readAhead?: Partial<ReadAheadOptions>;
    now?: () => number;
    timeoutHoldMs?: number;
  } = {},
) {
  const files = opts.files ?? [3 * PIECE + 100, 0, 7 * PIECE + 400].map((length, i) => ({ path: [`f${i}`], length }));
  const data = Buffer.alloc(files.reduce((sum, f) => sum + f.length, 0));
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 8)) & 0xff;
  const m = Metainfo.fromTorrentFile(buildTorrent({ data, files }));
  const swarm = new FakeSwarm(data);
  const reader = new Reader({
    byteMap: m.byteMap,
    cache: swarm,
    fetcher: swarm,
    readTimeoutMs: opts.readTimeoutMs ?? 1000,
    readAhead: { ...READ_AHEAD, ...opts.readAhead },
    log: silentLogger,
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.timeoutHoldMs !== undefined ? { timeoutHoldMs: opts.timeoutHoldMs } : {}),
  });
  const file = (i: number): TorrentFile => m.files[i]!;
  const byPath = (p: string): TorrentFile => m.files.find((f) => f.path === p)!;
  return { data, swarm, reader, file, byPath, metainfo: m };
}

/** Pieces asked for at readahead priority since `from` (an index into swarm.fetches). */
const aheadSince = (swarm: FakeSwarm, from = 0): number[] =>
  swarm.fetches.slice(from).filter((f) => f.priority === 'readahead').map((f) => f.piece);

/** Holds the process open while AbortSignal.timeout runs (in the daemon, FUSE does). */
function keepAlive(t: { teardown(fn: () => void): void }): void {
  const timer = setTimeout(() => undefined, 10_000);
  t.teardown(() => clearTimeout(timer));
}

test('a read returns exactly the file bytes, across piece boundaries, clipped at the end of file', async (t) => {
  const { data, reader, file } = setup();
  const f2 = file(2);
  const h = reader.open(f2);
  t.deepEqual(await readAll(reader, h, 1000, 40000), data.subarray(f2.offset + 1000, f2.offset + 41000));
  t.deepEqual(await readAll(reader, h, f2.length - 10, 4096), data.subarray(f2.offset + f2.length - 10, f2.offset + f2.length));
  t.is((await readAll(reader, h, f2.length, 4096)).length, 0);
  t.is((await readAll(reader, reader.open(file(1)), 0, 4096)).length, 0, 'empty file');
});

test('cached pieces are read without a fetch; missing ones are fetched as urgent', async (t) => {
  const { swarm, reader, file } = setup();
  swarm.deliver(0);
  await readAll(reader, reader.open(file(0)), 0, 100);
  t.deepEqual(swarm.fetches.filter((f) => f.priority === 'urgent'), []);
  await readAll(reader, reader.open(file(0)), PIECE * 2, 100);
  t.deepEqual(swarm.fetches.filter((f) => f.priority === 'urgent').map((f) => f.piece), [2]);
  t.is(reader.stats.cacheHits, 1);
  t.is(reader.stats.cacheMisses, 1);
});

test('pieces are pinned while read and unpinned after', async (t) => {
  const { swarm, reader, file } = setup();
  await readAll(reader, reader.open(file(0)), 0, PIECE * 2);
  t.deepEqual([...swarm.pinned.entries()], [[0, 0], [1, 0]]);
});

test('a read that gets no data fails after the timeout with the reason, not hangs', async (t) => {
  const { swarm, reader, file } = setup({ readTimeoutMs: 200 });
  swarm.autoDeliver = false;
  keepAlive(t);
  const err = await t.throwsAsync(readAll(reader, reader.open(file(0)), 0, 100), { instanceOf: ReadFailedError });
  t.regex(err!.message, /no data within 0.2 s \(no peers\)/);
  t.is(reader.waiting.size, 0, 'no longer listed as waiting');
  t.is(reader.stats.failedReads, 1);
});

test('a piece that vanishes between have and read is fetched again', async (t) => {
  const { data, swarm, reader, file } = setup();
  swarm.deliver(1);
  swarm.vanishOnce.add(1);
  const got = await readAll(reader, reader.open(file(0)), PIECE, 100);
  t.deepEqual(got, data.subarray(PIECE, PIECE + 100));
  t.deepEqual(swarm.fetches.map((f) => f.piece), [1]);
});

test('sequential reads prefetch ahead at readahead priority; random reads do not', async (t) => {
  const { swarm, reader, file } = setup();
  const h = reader.open(file(2));
  for (let off = 0; off < 3 * 4096; off += 4096) await readAll(reader, h, off, 4096);
  const ahead = swarm.fetches.filter((f) => f.priority === 'readahead').map((f) => f.piece);
  t.true(ahead.length > 0, 'read-ahead asked for pieces');
  t.true(ahead.every((p) => p >= 3), 'only pieces after the reads');
  t.is(new Set(ahead).size, ahead.length, 'no piece asked twice');

  const { swarm: swarm2, reader: reader2, file: file2 } = setup();
  const r = reader2.open(file2(2));
  for (const off of [5 * PIECE, 100, 3 * PIECE, 6 * PIECE + 7]) await readAll(reader2, r, off, 4096);
  t.deepEqual(swarm2.fetches.filter((f) => f.priority === 'readahead'), []);
});

test('the read-ahead window doubles up to its cap, survives a small step back and resets on a seek', (t) => {
  const { metainfo, file } = setup();
  const clock = fakeClock();
  const streams = new ReadStreams(metainfo.byteMap, { initialBytes: 100, maxBytes: 800, backwardToleranceBytes: 50 }, clock.now);
  const f = file(2);
  const windows: number[] = [];
  const handle = {};
  const read = (offset: number, length: number): void => {
    streams.observe(handle, f, offset, length);
    windows.push(streams.windowBytesTotal);
  };
  read(0, 10);
  read(10, 10);
  read(20, 10);
  read(30, 10);
  read(40, 10);
  t.deepEqual(windows, [100, 200, 400, 800, 800], 'doubles, then capped');
  read(45, 5);
  t.is(windows.at(-1), 800, 'a small step back is not a seek');
  read(60, 10);
  read(50, 10);
  t.is(windows.at(-1), 800, 'nor is a step forward by one read (the kernel sent the later request first)');
  t.is(streams.activeStreams, 1);
  read(200, 10);
  t.is(streams.activeStreams, 1, 'a longer step forward is a seek');
  t.is(windows.at(-1), 0);
  read(10_000, 10);
  t.is(streams.activeStreams, 1, 'a jump ends the stream and starts another');
  read(10_010, 10);
  t.is(windows.at(-1), 100, 'which grows from the start');
  streams.observe({}, f, 10_020, 10);
  t.is(streams.windowBytesTotal, 200, 'another reader continuing it grows it');
});

test('16 readers walking the next files at once are one stream: its read-ahead runs as far ahead as one reader\'s would', (t) => {
  // 192 files of half a piece; 16 readers (a DataLoader's workers) each open the next file and
  // read it, their reads arriving in any order within each batch of 16 (8 pieces).
  const files = Array.from({ length: 192 }, (_, i) => ({ path: ['train', `${String(i).padStart(3, '0')}.jpg`], length: PIECE / 2 }));
  const { metainfo } = setup({ files });
  const clock = fakeClock();
  const streams = new ReadStreams(metainfo.byteMap, { initialBytes: PIECE, maxBytes: 32 * PIECE, backwardToleranceBytes: PIECE }, clock.now);
  let seed = 7;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let furthest = -1;
  const leads: number[] = [];
  const signals: AbortSignal[] = [];
  let late: Array<() => void> = [];
  for (let batch = 0; batch < files.length; batch += 16) {
    const order = Array.from({ length: 16 }, (_, k) => batch + k);
    for (let k = order.length - 1; k > 0; k--) {
      const j = Math.floor(random() * (k + 1));
      [order[k], order[j]] = [order[j]!, order[k]!];
    }
    // Each reads its file in two halves: the last of a batch at once, the others after the next
    // batch's first halves (slow workers), when the walk is past them by more than the tolerance.
    const handles = order.map(() => ({}));
    const observe = (k: number, half: number): void => {
      const ahead = streams.observe(handles[k]!, metainfo.files[order[k]!]!, (half * PIECE) / 4, PIECE / 4);
      if (!ahead) return;
      furthest = Math.max(furthest, ...ahead.pieces);
      signals.push(ahead.signal);
    };
    order.forEach((_, k) => observe(k, 0));
    observe(order.length - 1, 1); // the last worker goes on with its own file at once
    late.forEach((read) => read());
    late = order.slice(0, -1).map((_, k) => () => observe(k, 1));
    clock.advance(100);
    leads.push(furthest - (batch + 16) / 2); // pieces asked for beyond the batch just read
  }
  // Each reader taken as its own stream, the budget was split ~17 ways: 0-4 pieces ahead. The
  // batches checked are those with more than 16 pieces of the torrent (96) left after them.
  t.true(Math.min(...leads.slice(0, 9)) >= 16, `read-ahead past the walk, per batch: ${leads.join(' ')} pieces`);
  // A lagging worker's next read is no seek of the walk (it used to end it: ~1,000 requests cancelled).
  t.false(signals.some((s) => s.aborted), 'no read-ahead of the walk was cancelled');
});

test('a folder walk in torrent order is one stream: read-ahead runs into the next files before they are opened', (t) => {
  // Five files of 1.5 pieces, so every file boundary falls inside a piece or on one.
  const files = [0, 1, 2, 3, 4].map((i) => ({ path: ['dir', `${i}.jpg`], length: PIECE + PIECE / 2 }));
  const { swarm, reader, byPath } = setup({ files, readAhead: { maxBytes: 8 * PIECE } });
  const h0 = reader.open(byPath('dir/0.jpg'));
  return (async () => {
    await readAll(reader, h0, 0, PIECE + PIECE / 2);
    h0.close();
    const afterFirst = aheadSince(swarm);
    t.deepEqual(afterFirst, [1, 2], 'the first file read at its start fetches one window past its end');
    // The next file continues the stream: its window doubles rather than starting over.
    const before = swarm.fetches.length;
    await readAll(reader, reader.open(byPath('dir/1.jpg')), 0, PIECE + PIECE / 2);
    t.deepEqual(aheadSince(swarm, before), [3, 4], 'a doubled window of 2 pieces past the end of file 1');
    t.is(reader.readAheadState().streams, 1);
    t.false(swarm.fetches.some((f) => f.signal?.aborted), 'closing a file does not cancel the read-ahead for the next');
  })();
});

test('a folder walked in listing order that is not the torrent order is one stream too', async (t) => {
  // The torrent interleaves two folders; walking `a` alone skips b's files.
  const files = ['a/1', 'b/1', 'a/2', 'b/2', 'a/3'].map((p) => ({ path: p.split('/'), length: 2 * PIECE }));
  const { swarm, reader, byPath } = setup({ files, readAhead: { maxBytes: 8 * PIECE } });
  reader.listed('/a', [byPath('a/1'), byPath('a/2'), byPath('a/3')]);
  reader.listed('/b', [byPath('b/1'), byPath('b/2')]);
  await readAll(reader, reader.open(byPath('a/1')), 0, 2 * PIECE);
  t.deepEqual(aheadSince(swarm), [4], 'the window past a/1 is in a/2 (pieces 4-5), not b/1 (2-3)');
  const before = swarm.fetches.length;
  await readAll(reader, reader.open(byPath('a/2')), 0, 2 * PIECE);
  t.deepEqual(aheadSince(swarm, before), [8, 9], 'a/2 continues the stream: its window doubles, running on into a/3');
  t.is(reader.readAheadState().streams, 1);

  // Without the listing the same walk is two streams, and a/1's read-ahead goes to b/1.
  const plain = setup({ files, readAhead: { maxBytes: 8 * PIECE } });
  await readAll(plain.reader, plain.reader.open(plain.byPath('a/1')), 0, 2 * PIECE);
  t.deepEqual(aheadSince(plain.swarm), [2]);
});

test('the total window is shared fairly among streams; a seek or idleness ends a stream and cancels its read-ahead', async (t) => {
  const files = [0, 1, 2, 3].map((i) => ({ path: [`big${i}`], length: 40 * PIECE }));
  const clock = fakeClock();
  const { swarm, reader, byPath } = setup({ files, now: clock.now, readAhead: { maxBytes: 16 * PIECE, totalBytes: 16 * PIECE, streamIdleMs: 5000 } });
  swarm.autoDeliver = false; // read-ahead stays in flight; each read is served because its piece is delivered first
  const handles = [0, 1, 2, 3].map((i) => reader.open(byPath(`big${i}`)));
  const readAt = async (i: number, piece: number): Promise<void> => {
    swarm.deliver(i * 40 + piece);
    await readAll(reader, handles[i]!, piece * PIECE, PIECE);
  };
  // One stream alone grows to the per-stream cap.
  for (let p = 0; p < 6; p++) await readAt(0, p);
  t.deepEqual(reader.readAheadState(), { streams: 1, windowBytes: 16 * PIECE });
  const firstRun = swarm.fetches.filter((f) => f.priority === 'readahead');

  // Four streams: each grows to a quarter of the total, no more.
  const mark = swarm.fetches.length;
  for (let round = 0; round < 6; round++) for (let i = 0; i < 4; i++) await readAt(i, 10 + round);
  t.true(firstRun.every((f) => f.signal?.aborted), "the seek from piece 6 to 10 ended the first run and cancelled its read-ahead");
  t.deepEqual(reader.readAheadState(), { streams: 4, windowBytes: 16 * PIECE }, 'four streams of 4 pieces each');

  const ahead = swarm.fetches.slice(mark).filter((f) => f.priority === 'readahead');
  t.true(ahead.length > 0);
  t.false(ahead.some((f) => f.signal?.aborted));
  clock.advance(5001);
  t.is(reader.readAheadState().streams, 0, 'idle streams are over');
  t.true(ahead.every((f) => f.signal?.aborted), 'and their read-ahead is cancelled');
});

test('misses from many readers are in flight together, ordered by deadline (first come, first served)', async (t) => {
  const clock = fakeClock();
  const { data, swarm, reader, file } = setup({ now: clock.now, readTimeoutMs: 5000 });
  swarm.autoDeliver = false;
  keepAlive(t);
  const f = file(2);
  const reads = [0, 1, 2].map((i) => {
    const read = readAll(reader, reader.open(f), (i * 3 + 1) * PIECE, 100);
    clock.advance(10);
    return read;
  });
  const urgent = swarm.fetches.filter((x) => x.priority === 'urgent');
  t.deepEqual(urgent.map((x) => x.piece), [4, 7, 10], 'all three asked for at once, none waiting on another');
  t.deepEqual(urgent.map((x) => x.deadline! - 1_000_000), [3000, 3010, 3020], 'each deadline from its own read start');
  t.is(reader.waiting.size, 3);
  for (const p of [10, 4, 7]) swarm.deliver(p);
  const got = await Promise.all(reads);
  got.forEach((buf, i) => t.deepEqual(buf, data.subarray(f.offset + (i * 3 + 1) * PIECE, f.offset + (i * 3 + 1) * PIECE + 100)));
  t.is(reader.waiting.size, 0);
});

test('a piece that just timed out fails at once on the next read, until a source appears or the hold ends', async (t) => {
  const clock = fakeClock();
  const { swarm, reader, file } = setup({ now: clock.now, readTimeoutMs: 200, timeoutHoldMs: 3000 });
  swarm.autoDeliver = false;
  keepAlive(t);
  const h = reader.open(file(0));
  await t.throwsAsync(readAll(reader, h, 0, 100), { message: /no data within 0.2 s/ });
  t.is(swarm.fetches.filter((f) => f.priority === 'urgent').length, 1);

  // The kernel's retry of the page: no second wait.
  const started = Date.now();
  const again = await t.throwsAsync(readAll(reader, h, 0, 100), { instanceOf: ReadFailedError });
  t.regex(again!.message, /piece 0: timed out 0.0 s ago and no new source for it has appeared since/);
  t.true(Date.now() - started < 150, 'failed without waiting the timeout');
  t.is(swarm.fetches.filter((f) => f.priority === 'urgent').length, 1, 'and asked nothing of the swarm');
  t.is(reader.stats.failedReads, 2);

  // A peer with the piece connects: the next read waits (and here gets it).
  swarm.sources.set(0, 1);
  swarm.autoDeliver = true;
  t.is((await readAll(reader, h, 0, 100)).length, 100);

  // The hold ends by itself too.
  swarm.autoDeliver = false;
  await t.throwsAsync(readAll(reader, h, 2 * PIECE, 100), { message: /no data within/ });
  await t.throwsAsync(readAll(reader, h, 2 * PIECE, 100), { message: /no new source/ });
  clock.advance(3001);
  await t.throwsAsync(readAll(reader, h, 2 * PIECE, 100), { message: /no data within/ });
});
