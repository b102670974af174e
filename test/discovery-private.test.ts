import test from 'ava';
import path from 'node:path';
import { createTorrentFile } from '../src/cli/create.js';
import { loadMetainfo } from '../src/metainfo/index.js';
import { checkAllFiles, mountSource, startLocalDht } from './helpers/discovery.js';
import { seedWithBtmount } from './helpers/mount.js';
import { freePort, makeDataset } from './helpers/peers.js';
import { btmount, tempDir } from './helpers/run.js';

interface DiscoveryJson {
  discovery: { staticPeers: number; dht: { enabled: boolean; nodes: number }; pex: { enabled: boolean }; trackers: unknown[] };
}

test('a private torrent (BEP 27) fetched by its hash turns DHT and PEX off once its metadata says so', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const dht = await startLocalDht(3);
  t.teardown(dht.close);
  const open = await makeDataset(dir.path, 'closed', [{ path: 'c/1.bin', length: 400_000 }], 64 * 1024);
  const torrentPath = path.join(dir.path, 'closed-private.torrent');
  await createTorrentFile(open.root, { output: torrentPath, pieceSize: 64 * 1024, tracker: [], webSeed: [], private: true });
  const ds = { ...open, torrentPath, metainfo: await loadMetainfo(torrentPath) };
  t.true(ds.metainfo.private);
  const seedPort = await freePort();
  const seeder = await seedWithBtmount(ds, seedPort);
  t.teardown(() => seeder.stop());

  const bootstrap = dht.bootstrap.flatMap((b) => ['--dht-bootstrap', b]);
  const m = await mountSource(dir.path, ds.metainfo.infoHash, ['--cache', path.join(dir.path, 'cache'), '--port', '0', ...bootstrap, '--peer', `127.0.0.1:${seedPort}`]);
  t.teardown(m.unmount);
  const { got, want } = await checkAllFiles(m.mountpoint, ds);
  t.deepEqual(got, want);
  const status = await btmount(['status', m.mountpoint, '--json']);
  t.is(status.code, 0, status.stderr);
  const { discovery } = JSON.parse(status.stdout) as DiscoveryJson;
  t.is(discovery.dht.enabled, false);
  t.is(discovery.pex.enabled, false);
  t.is(discovery.staticPeers, 1);

  // The same torrent mounted from its .torrent file: trackers only from the start.
  t.is((await m.unmount()).code, 0);
  const again = await mountSource(dir.path, torrentPath, ['--cache', path.join(dir.path, 'cache'), '--port', '0', ...bootstrap], 'mnt2');
  t.teardown(again.unmount);
  const status2 = JSON.parse((await btmount(['status', again.mountpoint, '--json'])).stdout) as DiscoveryJson;
  t.is(status2.discovery.dht.enabled, false);
  t.is(status2.discovery.pex.enabled, false);
});
