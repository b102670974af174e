import test from 'ava';
import path from 'node:path';
import { mountFixture, waitForStatus } from './control-helpers.js';
import { sha256Via } from './helpers/mount.js';
import { startProcess } from './helpers/peers.js';
import type { MountStatus } from '../src/control/status-schema.js';

const FILES = [
  { path: 'train/0.jpg', length: 100_000 },
  { path: 'train/1.jpg', length: 250_001 },
  { path: 'train/2.jpg', length: 64 * 1024 },
  { path: 'labels.csv', length: 777 },
];

test('status --json fields match a known state', async (t) => {
  const f = await mountFixture(t, { files: FILES });
  const { metainfo } = f.ds;
  const warm = await f.bt(['warm', f.mountpoint]);
  t.is(warm.code, 0, warm.stderr);

  const out = await f.bt(['status', f.mountpoint, '--json']);
  t.is(out.code, 0, out.stderr);
  const s = JSON.parse(out.stdout) as MountStatus;
  t.is(s.schema, 1);
  t.is(s.mountpoint, f.mountpoint);
  t.is(s.pid, f.pid);
  t.deepEqual(s.torrent, {
    name: 'dataset',
    infoHash: metainfo.infoHash,
    pieceLength: 64 * 1024,
    pieceCount: metainfo.layout.pieceCount,
    totalBytes: metainfo.layout.totalLength,
    fileCount: 4,
  });
  t.deepEqual(s.pieces, { have: metainfo.layout.pieceCount, total: metainfo.layout.pieceCount });
  t.is(s.cache.usedBytes, metainfo.layout.totalLength);
  t.is(s.cache.budgetBytes, 10 * 1024 ** 3);
  t.is(s.cache.pinnedBytes, 0);
  t.true(s.transfer.downloadedBytes >= metainfo.layout.totalLength);
  t.is(s.peers.length, 1);
  t.like(s.peers[0], { source: 'static', client: 'btmount' });
  t.regex(s.peers[0]!.address, /^127\.0\.0\.1:\d+$/);
  t.deepEqual(s.reads, { count: 0, bytes: 0, failed: 0, waiting: 0, oldest: null });
  t.is(s.cache.hitRate, null);
  t.deepEqual(s.integrity, { hashFailures: 0, bannedPeers: [] });
  t.is(s.warm.length, 1);
  t.like(s.warm[0], { id: 1, state: 'complete', files: { done: 4, total: 4 }, bytes: { done: metainfo.layout.totalLength, total: metainfo.layout.totalLength } });
  // DHT and PEX may be on (their state is the discovery tests' business); the shape is fixed.
  t.like(s.discovery, { staticPeers: 1, trackers: [] });
  t.is(typeof s.discovery.dht.enabled, 'boolean');
  t.is(typeof s.discovery.dht.nodes, 'number');
  t.is(typeof s.discovery.pex.enabled, 'boolean');

  // Reads after warm are cache hits.
  for (const file of f.ds.files.slice(0, 2)) t.is(await sha256Via(path.join(f.mountpoint, file.path)), file.sha256);
  const after = await f.status();
  t.true(after.reads.count > 0);
  t.is(after.reads.bytes, FILES[0]!.length + FILES[1]!.length);
  t.is(after.cache.misses, 0);
  t.is(after.cache.hitRate, 1);
});

test('status prints a readable summary; --watch refreshes until Ctrl-C', async (t) => {
  const f = await mountFixture(t, { files: FILES });
  const out = await f.bt(['status', f.mountpoint]);
  t.is(out.code, 0, out.stderr);
  t.regex(out.stdout, new RegExp(`^${f.mountpoint}: dataset\\n  infohash   ${f.ds.metainfo.infoHash}\\n`));
  t.regex(out.stdout, /\n  peers      1 connected\n    127\.0\.0\.1:\d+ +static /);
  t.regex(out.stdout, /\n  pieces     0 of \d+ \(0%\)/);
  t.regex(out.stdout, /\n  warm       no jobs\n/);

  const watch = f.spawn(['status', f.mountpoint, '--watch', '--json', '--interval', '0.2']);
  await watch.waitFor(/\{"schema":1[^\n]*\n\{"schema":1[^\n]*\n/, 60_000);
  process.kill(watch.pid, 'SIGINT');
  t.is(await watch.exited, 0);
  for (const line of watch.output().trim().split('\n')) t.is((JSON.parse(line) as MountStatus).torrent.name, 'dataset');

  const gone = await f.bt(['status', path.join(f.dir, 'elsewhere')]);
  t.is(gone.code, 1);
  t.is(gone.stderr, `btmount: cannot get status: ${path.join(f.dir, 'elsewhere')} is not a btmount mount point\n`);
});

test('status shows a waiting read, its age and what it waits for', async (t) => {
  // No peers: a read waits until its timeout, then fails.
  const f = await mountFixture(t, { files: FILES, seed: false, readTimeout: 6 });
  const reader = startProcess('cat', [path.join(f.mountpoint, 'train/1.jpg')]);
  t.teardown(() => reader.stop('SIGKILL'));
  const s = await waitForStatus(f, (x) => x.reads.waiting > 0, 30_000);
  t.is(s.reads.oldest!.path, 'train/1.jpg');
  t.true(s.reads.oldest!.ageSeconds >= 0);
  t.regex(s.reads.oldest!.reason, /no peers/);
  const text = await f.bt(['status', f.mountpoint]);
  t.regex(text.stdout, /reads .* \d+ waiting; the oldest for .* on train\/1\.jpg \(piece \d+\): no peers/);
  t.not(await reader.exited, 0, 'the read fails at its timeout');
  const after = await f.status();
  t.is(after.reads.waiting, 0);
  t.true(after.reads.failed > 0);
});
