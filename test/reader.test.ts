import test from 'ava';
import { silentLogger } from '../src/log.js';
import { Metainfo, type PieceIndex, type TorrentFile } from '../src/metainfo/index.js';
import { ReadAheadWindow } from '../src/reader/readahead.js';
import { Reader, ReadFailedError, type CachedPieces, type OpenFile, type PieceFetcher } from '../src/reader/reader.js';
import type { Priority } from '../src/scheduler/index.js';
import { buildTorrent } from './helpers/torrent-builder.js';

const PIECE = 16384;

/** Pieces held in memory; `fetch` makes a piece appear when `deliver` says so. */
class FakeSwarm implements CachedPieces, PieceFetcher {
  held = new Map<number, Buffer>();
  fetches: Array<{ piece: number; priority: Priority }> = [];
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
  deliver(i: number): void {
    this.held.set(i, this.data.subarray(i * PIECE, (i + 1) * PIECE));
  }
  fetch(i: PieceIndex, priority: Priority, signal?: AbortSignal): Promise<void> {
    this.fetches.push({ piece: i, priority });
    if (this.autoDeliver) {
      this.deliver(i);
      return Promise.resolve();
    }
    return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
  }
  waitingReason(): string {
    return 'no peers';
  }
}

/** A read into a buffer of its own (the FUSE path reads into the kernel's). */
async function readAll(reader: Reader, handle: OpenFile, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(Math.max(0, length));
  return buf.subarray(0, await reader.readInto(handle, offset, length, buf));
}

function setup(opts: { readTimeoutMs?: number } = {}) {
  const data = Buffer.alloc(10 * PIECE + 500);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 8)) & 0xff;
  const lengths = [3 * PIECE + 100, 0, 7 * PIECE + 400];
  const m = Metainfo.fromTorrentFile(buildTorrent({ data, files: lengths.map((length, i) => ({ path: [`f${i}`], length })) }));
  const swarm = new FakeSwarm(data);
  const reader = new Reader({
    byteMap: m.byteMap,
    cache: swarm,
    fetcher: swarm,
    readTimeoutMs: opts.readTimeoutMs ?? 1000,
    readAhead: { initialBytes: PIECE, maxBytes: 4 * PIECE, backwardToleranceBytes: 8192 },
    log: silentLogger,
  });
  const file = (i: number): TorrentFile => m.files[i]!;
  return { data, swarm, reader, file };
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
  // AbortSignal.timeout does not keep a process alive (in the daemon, FUSE does): hold it open here.
  const keepAlive = setTimeout(() => undefined, 5000);
  t.teardown(() => clearTimeout(keepAlive));
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
  const w = new ReadAheadWindow({ initialBytes: 100, maxBytes: 800, backwardToleranceBytes: 50 });
  t.deepEqual(w.observe(0, 10), { offset: 10, length: 100 });
  t.is(w.observe(10, 10)?.length, 200);
  t.is(w.observe(20, 10)?.length, 400);
  t.is(w.observe(30, 10)?.length, 800);
  t.is(w.observe(40, 10)?.length, 800, 'capped');
  t.is(w.observe(45, 5)?.length, 800, 'a small step back is not a seek');
  t.is(w.observe(10_000, 10), undefined, 'a jump drops the window');
  t.is(w.windowBytes, 0);
  t.is(w.observe(10_010, 10)?.length, 100, 'and it grows again from the start');
});
