/**
 * A seeder that appears while a read waits is found at once (issue 13 item 5).
 * The mount knows the seeder's address (--peer) from the start, but nothing
 * listens there yet, so its dials fail and back off. Before the fix the backoff
 * grew to 16 s and more, and the read finished about 20 s after the seeder came
 * up; while reads wait unserved, known addresses are now re-dialled every second.
 * The seeders below start 24 s in, between the old code's dials at about 15-20 s
 * and 31-37 s after the mount: these tests fail on it.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTrackerServer } from './helpers/discovery.js';
import { mountTorrent, sha256Via } from './helpers/mount.js';
import type { PieceIndex } from '../src/metainfo/piece-layout.js';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import { freePort, makeDataset, startAria2Seeder, startFakePeer, startHonestSeeder, startLibtorrent, type Dataset } from './helpers/peers.js';

const PIECE = 256 * 1024;
const FILES = [{ path: 'data/0.bin', length: 8 * PIECE + 17 }];
/** How long the read waits before the seeder starts: long enough for the old backoff to reach 16 s (then 32 s). */
const SEEDER_LATE_MS = 24_000;
/** The goal is 3 s; the bound leaves room for a loaded machine (the old code took 15 s or more here). */
const FOUND_WITHIN_MS = 6_000;

let base: string;
let ds: Dataset;

test.before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'btmount-late-'));
  ds = await makeDataset(base, 'ds', FILES, PIECE);
});

test.after.always(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts a read of the file through the mount; resolves with its hash and when it finished. */
function readLater(file: string): Promise<{ sha256: string; at: number }> {
  return sha256Via(file).then((sha256) => ({ sha256, at: Date.now() }));
}

async function checkRead(
  t: ExecutionContext,
  read: Promise<{ sha256: string; at: number }>,
  seederUpAt: number,
  expected = ds.files[0]!.sha256,
  mountLog?: string,
): Promise<void> {
  const { sha256, at } = await read;
  t.is(sha256, expected);
  const ms = at - seederUpAt;
  t.log(`read finished ${ms} ms after the seeder started listening`);
  if (ms >= FOUND_WITHIN_MS && mountLog) {
    // What the mount saw of its peers, to tell why.
    const lines = (await readFile(mountLog, 'utf8')).split('\n').filter((l) => /peer|starv|stall/i.test(l));
    t.log(lines.slice(-40).join('\n'));
  }
  t.true(ms < FOUND_WITHIN_MS, `read finished ${ms} ms after the seeder appeared (bound ${FOUND_WITHIN_MS} ms)`);
}

test('a read waiting on a seeder that is down finishes soon after the seeder starts (python3-libtorrent seeder)', async (t) => {
  const port = await freePort();
  const m = await mountTorrent(base, ds.torrentPath, { name: 'mnt-late', cache: path.join(base, 'cache-late'), peers: [`127.0.0.1:${port}`], readTimeout: 90 });
  t.teardown(m.unmount);
  const read = readLater(path.join(m.mountpoint, 'data', '0.bin'));
  await sleep(SEEDER_LATE_MS);
  const seeder = await startLibtorrent('seed', { torrentPath: ds.torrentPath, savePath: ds.parent, listen: `127.0.0.1:${port}` });
  t.teardown(() => seeder.stop());
  await checkRead(t, read, Date.now());
});

test('a hostile first peer that claims every piece and sends none costs no more than a few seconds once an honest seeder starts (aria2c)', async (t) => {
  // It completes the handshake, announces all pieces, unchokes, and ignores every request.
  const staller = await startFakePeer('127.0.0.31', ds.metainfo, () => undefined);
  t.teardown(() => staller.close());
  const port = await freePort();
  const m = await mountTorrent(base, ds.torrentPath, {
    name: 'mnt-hostile',
    cache: path.join(base, 'cache-hostile'),
    peers: [`127.0.0.31:${staller.port}`, `127.0.0.1:${port}`],
    readTimeout: 90,
  });
  t.teardown(m.unmount);
  const read = readLater(path.join(m.mountpoint, 'data', '0.bin'));
  await sleep(SEEDER_LATE_MS);
  t.true(staller.connections > 0, 'the mount connected to the hostile peer first');
  const seeder = await startAria2Seeder(ds, port);
  t.teardown(() => seeder.stop());
  await checkRead(t, read, Date.now());
});

test('a hostile first peer costs no more than a few seconds when an honest seeder connects in while the read waits (python3-libtorrent)', async (t) => {
  // Nothing to re-dial here: the seeder dials the mount. What is left is the
  // staller sitting on the read's requests and read-ahead (before: until its
  // 15 s snub, or piece by piece near each deadline).
  const big = await makeDataset(base, 'big', [{ path: 'data/0.bin', length: 32 * PIECE }], PIECE);
  const staller = await startFakePeer('127.0.0.32', big.metainfo, () => undefined);
  t.teardown(() => staller.close());
  const m = await mountTorrent(base, big.torrentPath, { name: 'mnt-hostile-in', cache: path.join(base, 'cache-hostile-in'), peers: [`127.0.0.32:${staller.port}`], readTimeout: 90, extra: ['--debug'] });
  t.teardown(m.unmount);
  const logFile = /, log (.+)\)$/m.exec(m.stdout)![1]!;
  const mountPort = Number(/listening for peers on port (\d+)/.exec(await readFile(logFile, 'utf8'))![1]);
  const read = readLater(path.join(m.mountpoint, 'data', '0.bin'));
  await sleep(3000); // past the read's 3 s urgent deadline, with every block at the staller
  t.true(staller.connections > 0, 'the mount connected to the hostile peer first');
  // Plain BitTorrent from the first dial: libtorrent tries encryption first, which btmount
  // refuses, and its plain retry came after 1 s here; once in CI the read finished 62 s after
  // the seeder started (no log kept; likely the retry after libtorrent's 60 s
  // min_reconnect_time). Its reconnect policy is not what this test is about.
  const seeder = await startLibtorrent('seed', {
    torrentPath: big.torrentPath,
    savePath: big.parent,
    listen: '127.0.0.33:0',
    peers: [`127.0.0.1:${mountPort}`],
    plaintext: true,
  });
  t.teardown(() => seeder.stop());
  await checkRead(t, read, Date.now(), big.files[0]!.sha256, logFile);
  // The mount dropped the staller once the seeder served (--peer addresses are then dialled again).
  const until = Date.now() + 15_000;
  while (staller.connections < 2 && Date.now() < until) await sleep(100);
  t.true(staller.connections >= 2, 'the peer that sat on the requests was dropped');
});

test('while a read waits and no peer serves it, the mount asks its tracker again early, at most every 5 s', async (t) => {
  const tracker = await startTrackerServer(); // it tells clients to come back in 60 s
  t.teardown(tracker.close);
  const m = await mountTorrent(base, ds.torrentPath, { name: 'mnt-announce', cache: path.join(base, 'cache-announce'), readTimeout: 90, extra: ['--tracker', tracker.httpUrl] });
  t.teardown(m.unmount);
  const started = Date.now();
  void readLater(path.join(m.mountpoint, 'data', '0.bin')).catch(() => undefined); // ends with the unmount
  await sleep(13_000);
  const ours = tracker.announces.filter((a) => a.type === 'http');
  const elapsed = Date.now() - started;
  t.log(`${ours.length} announces in ${elapsed} ms: ${ours.map((a) => a.event ?? 'update').join(', ')}`);
  t.is(ours[0]?.event, 'started');
  t.true(ours.length >= 3, 'asked again while the read waited');
  t.true(ours.length <= 2 + Math.ceil(elapsed / 5000), 'no more often than every 5 s');
});

test('a full swarm whose reads wait takes an incoming seeder at once, in place of a peer without their pieces', async (t) => {
  const { infoHash, layout } = ds.metainfo;
  // Another leecher with nothing: connected, useless to us.
  const empty = new Swarm({ infoHash, layout, storage: new MemoryPieceStorage(layout), port: 0, host: '127.0.0.41' });
  t.teardown(() => empty.close());
  const us = new Swarm({ infoHash, layout, storage: new MemoryPieceStorage(layout), port: 0, host: '127.0.0.1', maxConnections: 1 });
  t.teardown(() => us.close());
  const usPort = await us.listen();
  us.addPeer('127.0.0.41', await empty.listen());
  const read = us.fetch(0 as PieceIndex, 'urgent', AbortSignal.timeout(15_000));
  await sleep(1500); // the read has waited long enough to count as starving
  t.is(us.stats().peers.length, 1, 'full: the one connection is the empty leecher');
  const seeder = await startHonestSeeder(ds, '127.0.0.42');
  t.teardown(() => seeder.swarm.close());
  seeder.swarm.addPeer('127.0.0.1', usPort);
  await read; // before the fix the seeder was refused (full) and the read timed out
  t.deepEqual(us.stats().peers.map((p) => p.source), ['incoming']);
});
