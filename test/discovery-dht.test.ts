import test from 'ava';
import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { checkAllFiles, mountSource, startLocalDht, waitUntil } from './helpers/discovery.js';
import { BTMOUNT_BIN, freePort, makeDataset, startAria2Seeder, startProcess } from './helpers/peers.js';
import { tempDir } from './helpers/run.js';

// A DHT of bittorrent-dht nodes on 127.0.0.1; the mounts bootstrap from it only (never the public routers).

test('a bare infohash mounts with peers from the DHT only; the mount announces itself there and keeps its routing table for the next mount', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const dht = await startLocalDht(4);
  t.teardown(dht.close);
  const ds = await makeDataset(dir.path, 'dataset', [
    { path: 'a/0001.bin', length: 900_000 },
    { path: 'a/0002.bin', length: 400_000 },
    { path: 'b.txt', length: 5_000 },
  ], 128 * 1024);
  const seederPort = await freePort();
  const seeder = await startAria2Seeder(ds, seederPort);
  t.teardown(() => seeder.stop());
  await dht.announce(ds.metainfo.infoHash, seederPort); // the seeder's address is in the DHT now

  const cache = path.join(dir.path, 'cache');
  const mountPort = await freePort();
  const bootstrap = dht.bootstrap.flatMap((b) => ['--dht-bootstrap', b]);
  const m = await mountSource(dir.path, ds.metainfo.infoHash, ['--cache', cache, '--port', String(mountPort), ...bootstrap]);
  t.teardown(m.unmount);
  t.regex(m.stderr, /fetching metadata/);
  const { got, want } = await checkAllFiles(m.mountpoint, ds);
  t.deepEqual(got, want);

  // The mount is a peer: its own port can be found in the DHT.
  const peers = await waitUntil('the mount to announce itself on the DHT', async () => {
    const found = await dht.lookup(ds.metainfo.infoHash);
    return found.some((p) => p.port === mountPort) ? found : undefined;
  });
  t.true(peers.some((p) => p.port === seederPort));

  t.is((await m.unmount()).code, 0);
  const state = JSON.parse(await readFile(path.join(cache, 'dht', 'state.json'), 'utf8')) as { nodes: Array<{ port: number }> };
  const dhtPorts = new Set(dht.nodes.map((n) => n.address().port));
  t.true(state.nodes.some((n) => dhtPorts.has(n.port)), 'the routing table was saved');

  // Next mount, fresh cache holding only that routing table, and a bootstrap node that does not answer:
  // the saved table alone leads to the seeder.
  const cache2 = path.join(dir.path, 'cache2');
  await cp(path.join(cache, 'dht'), path.join(cache2, 'dht'), { recursive: true });
  const deadPort = await freePort();
  const again = await mountSource(dir.path, ds.metainfo.infoHash, ['--cache', cache2, '--port', '0', '--dht-bootstrap', `127.0.0.1:${deadPort}`], 'mnt2');
  t.teardown(again.unmount);
  const second = await checkAllFiles(again.mountpoint, ds);
  t.deepEqual(second.got, want);
});

test('btmount seed announces itself on the DHT: a bare infohash mount finds the origin with nothing else', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const dht = await startLocalDht(4);
  t.teardown(dht.close);
  const ds = await makeDataset(dir.path, 'dataset', [{ path: 'x/1.bin', length: 300_000 }, { path: 'y.txt', length: 777 }], 64 * 1024);
  const bootstrap = dht.bootstrap.flatMap((b) => ['--dht-bootstrap', b]);
  const seedPort = await freePort();
  const seeder = startProcess(process.execPath, [
    BTMOUNT_BIN, 'seed', ds.torrentPath, ds.root, '--host', '127.0.0.1', '--port', String(seedPort),
    '--cache', path.join(dir.path, 'seed-cache'), ...bootstrap,
  ]);
  t.teardown(() => seeder.stop());
  await seeder.waitFor(/seeding .* on port/, 60_000);
  await waitUntil('the seeder to announce itself on the DHT', async () => {
    const found = await dht.lookup(ds.metainfo.infoHash);
    return found.some((p) => p.port === seedPort) || undefined;
  }, 60_000);

  const m = await mountSource(dir.path, ds.metainfo.infoHash, ['--cache', path.join(dir.path, 'cache'), '--port', '0', ...bootstrap]);
  t.teardown(m.unmount);
  const { got, want } = await checkAllFiles(m.mountpoint, ds);
  t.deepEqual(got, want);
});
