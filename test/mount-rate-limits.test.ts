import test from 'ava';
import type { PieceIndex } from '../src/metainfo/piece-layout.js';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import { mountTorrent, seedWithBtmount, statusJson } from './helpers/mount.js';
import { fetchAll, freePort, makeDataset } from './helpers/peers.js';
import { btmount, tempDir } from './helpers/run.js';

// Bounds, not speed claims: a limited transfer may be as slow as the machine makes it, but never
// faster than the limit allows. The token bucket lets a burst of max(rate / 4, 64 KiB) through at once.
const MiB = 1024 * 1024;
const LIMIT = 1 * MiB;
const BURST = LIMIT / 4;
const SIZE = 3 * MiB;
/** The least time SIZE bytes can take at LIMIT, less a 20 % margin for clocks and accounting. */
const FLOOR_S = (0.8 * (SIZE - BURST)) / LIMIT;

const FILES = [
  { path: 'x/0.bin', length: SIZE / 2 },
  { path: 'x/1.bin', length: SIZE / 2 },
];

test('--download-limit: a warm of 3 MiB at 1M/s takes no less than the limit allows', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'dataset', FILES, 64 * 1024);
  const port = await freePort();
  const seeder = await seedWithBtmount(ds, port);
  t.teardown(() => seeder.stop());
  const m = await mountTorrent(dir.path, ds.torrentPath, { peers: [`127.0.0.1:${port}`], extra: ['--download-limit', '1M'] });
  t.teardown(m.unmount);
  const warm = await btmount(['warm', m.mountpoint], { timeoutMs: 120_000 });
  t.is(warm.code, 0, warm.stderr);
  // The job's own clock, in the daemon: the CLI's start-up is not part of the transfer.
  const job = (await statusJson(m.mountpoint)).warm[0]!;
  t.is(job.state, 'complete');
  const seconds = (Date.parse(job.finishedAt!) - Date.parse(job.startedAt)) / 1000;
  t.true(seconds >= FLOOR_S, `3 MiB in ${seconds} s at --download-limit 1M (no less than ${FLOOR_S.toFixed(2)} s allowed)`);
});

test('--upload-limit: a peer fetching 3 MiB from a mount limited to 1M/s takes no less than the limit allows', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'dataset', FILES, 64 * 1024);
  const port = await freePort();
  const seeder = await seedWithBtmount(ds, port);
  const mountPort = await freePort();
  const m = await mountTorrent(dir.path, ds.torrentPath, { peers: [`127.0.0.1:${port}`], extra: ['--upload-limit', '1M', '--port', String(mountPort)] });
  t.teardown(m.unmount);
  t.is((await btmount(['warm', m.mountpoint])).code, 0);
  await seeder.stop(); // the mount is now the only source

  const { layout } = ds.metainfo;
  const storage = new MemoryPieceStorage(layout);
  const leech = new Swarm({ infoHash: ds.metainfo.infoHash, layout, storage, port: 0, host: '127.0.0.1' });
  t.teardown(() => leech.close());
  leech.addPeer('127.0.0.1', mountPort);
  const started = Date.now();
  await fetchAll(leech, layout.pieceCount, AbortSignal.timeout(60_000));
  const seconds = (Date.now() - started) / 1000;
  t.is(storage.get(0 as PieceIndex)?.length, 64 * 1024);
  t.true(seconds >= FLOOR_S, `3 MiB in ${seconds} s from a mount with --upload-limit 1M (no less than ${FLOOR_S.toFixed(2)} s allowed)`);
  t.true((await statusJson(m.mountpoint)).transfer.uploadedBytes >= SIZE);
});
