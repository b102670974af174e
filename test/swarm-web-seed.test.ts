import test from 'ava';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash, randomBytes } from 'node:crypto';
import { asInfoHash, PieceLayout, pieceIndex, type PieceIndex } from '../src/metainfo/piece-layout.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import { MemoryPieceStorage, Swarm, type WebPieceSource } from '../src/swarm/index.js';
import { WebSeed } from '../src/webseed/index.js';
import { fetchAll, filesFromPieces, makeDataset, startHonestSeeder, type Dataset } from './helpers/peers.js';
import { waitUntil } from './helpers/discovery.js';
import { startWebSeedServer, type WebSeedServer } from './helpers/web-seed-server.js';

// A real Swarm with web seeds: a fake source serving pieces from a Buffer (to count and
// time what it is asked), and real WebSeeds against a node HTTP server on 127.0.0.1.
const PIECE = 32 * 1024;
const FILES = [
  { path: 'train/a.bin', length: 100_000 },
  { path: 'train/b.bin', length: 7 },
  { path: 'train/c.bin', length: 150_001 },
  { path: 'labels.csv', length: PIECE },
];

let base: string;
let ds: Dataset;
let stream: Buffer;
let server: WebSeedServer;

test.before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'btmount-swarm-webseed-'));
  ds = await makeDataset(base, 'ds', FILES, PIECE);
  stream = Buffer.alloc(ds.metainfo.layout.totalLength);
  for (const f of ds.metainfo.files) if (!f.pad) (await readFile(path.join(ds.root, ...f.path.split('/')))).copy(stream, f.offset);
  server = await startWebSeedServer(base);
});

test.after.always(async () => {
  await server?.close();
  if (base) await rm(base, { recursive: true, force: true });
});

/** A web seed in memory: serves the torrent's pieces from a Buffer and records what it was asked. */
class BufferWebSource implements WebPieceSource {
  readonly name = 'memory://origin/';
  ready = true;
  readonly asked: PieceIndex[] = [];
  readonly aborted: PieceIndex[] = [];
  inflight = 0;
  maxInflight = 0;
  closed = false;

  constructor(
    readonly layout: PieceLayout,
    readonly data: Buffer,
    readonly parallelPieces: number,
    readonly behaviour: { delayMs?: number; hang?: boolean; fail?: boolean } = {},
  ) {}

  async fetchVerifiedPiece(index: PieceIndex, signal?: AbortSignal): Promise<VerifiedPiece> {
    this.asked.push(index);
    this.maxInflight = Math.max(this.maxInflight, ++this.inflight);
    try {
      if (this.behaviour.hang) await new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }));
      await sleep(this.behaviour.delayMs ?? 2, undefined, signal ? { signal } : {});
      if (this.behaviour.fail) throw new Error('origin down');
      const start = this.layout.pieceOffset(index);
      const piece = VerifiedPiece.check(this.layout, index, Buffer.from(this.data.subarray(start, start + this.layout.pieceSize(index))));
      if (!piece) throw new Error('bad bytes');
      return piece;
    } catch (err) {
      if (signal?.aborted) this.aborted.push(index);
      throw err;
    } finally {
      this.inflight--;
    }
  }

  close(): void {
    this.closed = true;
  }
}

function leecher(): { swarm: Swarm; storage: MemoryPieceStorage } {
  const storage = new MemoryPieceStorage(ds.metainfo.layout);
  return { swarm: new Swarm({ infoHash: ds.metainfo.infoHash, layout: ds.metainfo.layout, storage, port: 0, host: '127.0.0.1' }), storage };
}

/** Aborts after `ms` with an Error (as the Reader's read timeout does): ava wants Errors, not DOMExceptions. */
function readTimeout(ms: number): AbortSignal {
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error('read timed out')), ms).unref();
  return ac.signal;
}

const count = (): number => ds.metainfo.layout.pieceCount;

function assertEveryFileExact(t: import('ava').ExecutionContext, storage: MemoryPieceStorage): void {
  const got = filesFromPieces(ds.metainfo, storage);
  for (const f of ds.files) t.is(got.get(f.path), f.sha256, f.path);
}

/** Reads: every piece urgent with a deadline, as blocked FUSE reads ask. */
const readAll = (swarm: Swarm, signal?: AbortSignal): Promise<void[]> =>
  Promise.all(Array.from({ length: count() }, (_, i) => swarm.fetch(pieceIndex(i), 'urgent', signal, Date.now() + 10_000)));

test('with no peers every piece comes from the web seed, at most parallelPieces at once', async (t) => {
  const { swarm, storage } = leecher();
  const origin = new BufferWebSource(ds.metainfo.layout, stream, 3, { delayMs: 5 });
  try {
    swarm.addWebSeed(origin);
    await fetchAll(swarm, count());
    assertEveryFileExact(t, storage);
    t.is(origin.asked.length, count(), 'each piece asked once');
    t.is(new Set(origin.asked).size, count());
    t.true(origin.maxInflight <= 3, `at most 3 in flight (saw ${origin.maxInflight})`);
    t.true(origin.maxInflight >= 2, 'in parallel');
    const stats = swarm.stats();
    t.deepEqual(stats.webSeeds, [{ name: origin.name, piecesFetched: count(), bytesFetched: ds.metainfo.layout.totalLength, inflight: 0 }]);
    t.is(stats.downloaded, ds.metainfo.layout.totalLength);
    t.deepEqual(stats.bySource, { webSeed: { downloaded: ds.metainfo.layout.totalLength, uploaded: 0 } });
  } finally {
    await swarm.close();
  }
  t.true(origin.closed, 'the swarm closes its web seeds');
});

test('a real WebSeed over HTTP serves blocked reads of every file exactly', async (t) => {
  const { swarm, storage } = leecher();
  const seed = new WebSeed(ds.metainfo, `${server.base}/good/`, { connections: 2 });
  try {
    swarm.addWebSeed(seed);
    await readAll(swarm, AbortSignal.timeout(30_000));
    assertEveryFileExact(t, storage);
    t.is(swarm.stats().webSeeds[0]!.piecesFetched, count());
    t.is(seed.status().piecesFetched, count());
  } finally {
    await swarm.close();
  }
});

test('with a peer that has everything, the web seed is asked for (almost) nothing', async (t) => {
  const seeder = await startHonestSeeder(ds, '127.0.0.1');
  const { swarm, storage } = leecher();
  const origin = new BufferWebSource(ds.metainfo.layout, stream, 4);
  try {
    swarm.addPeer('127.0.0.1', seeder.port);
    await swarm.fetch(pieceIndex(0), 'urgent'); // connected and unchoked
    swarm.addWebSeed(origin);
    await Promise.all(
      Array.from({ length: count() }, (_, i) => swarm.fetch(pieceIndex(i), i % 3 === 0 ? 'urgent' : i % 3 === 1 ? 'readahead' : 'warm')),
    );
    assertEveryFileExact(t, storage);
    t.log(`web seed asked for ${origin.asked.length} of ${count()} pieces`);
    t.true(origin.asked.length <= 1, `asked for ${origin.asked.length}`);
    t.is(swarm.stats().webSeeds[0]!.piecesFetched, origin.asked.length - origin.aborted.length);
  } finally {
    await swarm.close();
    await seeder.swarm.close();
  }
});

test('a web seed that fails: a blocked read still ends at its deadline, and peers deliver later', async (t) => {
  const { swarm, storage } = leecher();
  const seed = new WebSeed(ds.metainfo, `${server.base}/404/`, { connections: 2, backoffMs: 50 });
  let seeder: Awaited<ReturnType<typeof startHonestSeeder>> | undefined;
  const failures: number[] = [];
  swarm.on('web-seed-failure', (_name: string, index: number) => failures.push(index));
  try {
    swarm.addWebSeed(seed);
    const started = Date.now();
    await t.throwsAsync(swarm.fetch(pieceIndex(1), 'urgent', readTimeout(1500)), { message: 'read timed out' });
    t.true(Date.now() - started < 5000, 'no hang');
    t.true(failures.length > 0, 'the seed was asked and failed');
    t.is(seed.status().lastFailure?.kind, 'http-status');
    t.true(storage.size === 0);
    t.regex(swarm.waitingReason(), /no peers/);
    // A peer comes: every piece arrives from it, the seed still failing beside it.
    seeder = await startHonestSeeder(ds, '127.0.0.1');
    swarm.addPeer('127.0.0.1', seeder.port);
    await fetchAll(swarm, count(), AbortSignal.timeout(30_000));
    assertEveryFileExact(t, storage);
    t.is(swarm.stats().webSeeds[0]!.piecesFetched, 0);
  } finally {
    await swarm.close();
    await seeder?.swarm.close();
  }
});

test('a lying web seed (bad bytes) never yields a piece', async (t) => {
  const { swarm, storage } = leecher();
  const seed = new WebSeed(ds.metainfo, `${server.base}/corrupt/`, { connections: 2, backoffMs: 50 });
  let verified = 0;
  swarm.on('verified', () => verified++);
  let seeder: Awaited<ReturnType<typeof startHonestSeeder>> | undefined;
  try {
    swarm.addWebSeed(seed);
    await t.throwsAsync(readAll(swarm, readTimeout(1500)), { message: 'read timed out' });
    t.is(verified, 0);
    t.is(storage.size, 0);
    t.is(seed.status().lastFailure?.kind, 'hash-mismatch');
    t.is(swarm.stats().webSeeds[0]!.piecesFetched, 0);
    seeder = await startHonestSeeder(ds, '127.0.0.1');
    swarm.addPeer('127.0.0.1', seeder.port);
    await readAll(swarm, AbortSignal.timeout(30_000));
    assertEveryFileExact(t, storage);
  } finally {
    await swarm.close();
    await seeder?.swarm.close();
  }
});

test('a web fetch is aborted when a peer delivers the piece first, or when nobody wants it', async (t) => {
  const { swarm, storage } = leecher();
  const origin = new BufferWebSource(ds.metainfo.layout, stream, 2, { hang: true });
  let seeder: Awaited<ReturnType<typeof startHonestSeeder>> | undefined;
  try {
    swarm.addWebSeed(origin);
    const gone = new AbortController();
    const unwanted = swarm.fetch(pieceIndex(5), 'warm', gone.signal);
    await waitUntil('the seed is asked for piece 5', () => origin.asked.includes(pieceIndex(5)));
    gone.abort(new Error('not needed'));
    await t.throwsAsync(unwanted, { message: 'not needed' });
    await waitUntil('its fetch is aborted', () => origin.aborted.includes(pieceIndex(5)));

    const fetched = swarm.fetch(pieceIndex(3), 'readahead');
    await waitUntil('the seed is asked for piece 3', () => origin.asked.includes(pieceIndex(3)));
    seeder = await startHonestSeeder(ds, '127.0.0.1');
    swarm.addPeer('127.0.0.1', seeder.port);
    await fetched;
    t.truthy(storage.get(pieceIndex(3)));
    await waitUntil('the web fetch is aborted', () => origin.aborted.includes(pieceIndex(3)));
    t.deepEqual(swarm.stats().webSeeds[0], { name: origin.name, piecesFetched: 0, bytesFetched: 0, inflight: 0 });
    t.is(origin.inflight, 0);
  } finally {
    await swarm.close();
    await seeder?.swarm.close();
  }
});

test('a web seed that is not ready is not asked; once ready it is', async (t) => {
  const { swarm, storage } = leecher();
  const origin = new BufferWebSource(ds.metainfo.layout, stream, 2);
  origin.ready = false;
  try {
    swarm.addWebSeed(origin);
    const fetched = swarm.fetch(pieceIndex(2), 'urgent', AbortSignal.timeout(20_000));
    await sleep(300);
    t.deepEqual(origin.asked, []);
    t.regex(swarm.waitingReason(), /1 web seed: 0 pieces in flight, 1 backing off/);
    origin.ready = true; // the swarm looks again on its next tick
    await fetched;
    t.truthy(storage.get(pieceIndex(2)));
    t.deepEqual(origin.asked, [pieceIndex(2)]);
  } finally {
    await swarm.close();
  }
});

test('a web seed added to a closed swarm is closed at once', async (t) => {
  const { swarm } = leecher();
  await swarm.close();
  const origin = new BufferWebSource(ds.metainfo.layout, stream, 1);
  swarm.addWebSeed(origin);
  t.true(origin.closed);
});

test('three nodes connected to each other over one web seed fetch each piece from it about once', async (t) => {
  // A bigger torrent in memory than the dataset on disk: enough pieces for the random spread.
  const P = 16 * 1024;
  const N = 96;
  const bytes = randomBytes(P * N);
  const layout = new PieceLayout(P, bytes.length, Buffer.concat(Array.from({ length: N }, (_, i) => createHash('sha1').update(bytes.subarray(i * P, (i + 1) * P)).digest())));
  const infoHash = asInfoHash(randomBytes(20).toString('hex'));
  const origin = new BufferWebSource(layout, bytes, 1000, { delayMs: 20 });
  const nodes = [0, 1, 2].map(() => {
    const storage = new MemoryPieceStorage(layout);
    return { storage, swarm: new Swarm({ infoHash, layout, storage, port: 0, host: '127.0.0.1' }) };
  });
  try {
    const ports = await Promise.all(nodes.map((n) => n.swarm.listen()));
    for (const [i, n] of nodes.entries()) for (const [j, port] of ports.entries()) if (j > i) n.swarm.addPeer('127.0.0.1', port);
    await waitUntil('every node sees the other two', () => nodes.every((n) => n.swarm.stats().peers.length === 2));
    // Each node its own view of the origin (its own slots), all counting into one origin.
    for (const n of nodes) {
      const view: WebPieceSource = { name: origin.name, ready: true, parallelPieces: 2, fetchVerifiedPiece: (i, s) => origin.fetchVerifiedPiece(i, s), close: () => {} };
      n.swarm.addWebSeed(view);
    }
    await Promise.all(nodes.map((n) => Promise.all(Array.from({ length: N }, (_, i) => n.swarm.fetch(pieceIndex(i), 'readahead', readTimeout(60_000))))));
    for (const n of nodes) t.is(n.storage.size, N);
    const fromOrigin = origin.asked.length - origin.aborted.length;
    t.log(`origin asked for ${origin.asked.length} pieces (${origin.aborted.length} aborted) for ${N}: factor ${(fromOrigin / N).toFixed(2)}`);
    t.true(fromOrigin <= N * 1.5, `origin served ${fromOrigin} pieces for ${N}`);
  } finally {
    await Promise.all(nodes.map((n) => n.swarm.close()));
  }
});
