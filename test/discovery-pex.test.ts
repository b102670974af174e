import test from 'ava';
import path from 'node:path';
import { PEX_EXTENSION, PeerExchange } from '../src/discovery/index.js';
import { silentLogger } from '../src/log.js';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import { checkAllFiles, magnetOf, mountSource, waitUntil } from './helpers/discovery.js';
import { freePort, makeDataset, startAria2Seeder } from './helpers/peers.js';
import { btmount, tempDir } from './helpers/run.js';

test('PEX only: the mount knows only peer A, which has no data but knows the seeder B; the data comes from B', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'pexed', [
    { path: 'p/1.bin', length: 700_000 },
    { path: 'p/2.bin', length: 123_456 },
  ], 64 * 1024);
  const seederPort = await freePort();
  const b = await startAria2Seeder(ds, seederPort);
  t.teardown(() => b.stop());

  // A: a swarm with ut_pex and the torrent's info dictionary but no pieces, connected to B.
  const a = new Swarm({
    infoHash: ds.metainfo.infoHash,
    layout: ds.metainfo.layout,
    storage: new MemoryPieceStorage(ds.metainfo.layout),
    port: 0,
    host: '127.0.0.1',
    infoBuffer: ds.metainfo.infoBuffer,
    extensions: [PEX_EXTENSION],
  });
  const pex = new PeerExchange(a, silentLogger);
  t.teardown(async () => {
    pex.close();
    await a.close();
  });
  const aPort = await a.listen();
  a.addPeer('127.0.0.1', seederPort);
  await waitUntil('A to connect to B', () => a.stats().peers.some((p) => p.address === `127.0.0.1:${seederPort}`));

  const m = await mountSource(dir.path, magnetOf(ds), ['--cache', path.join(dir.path, 'cache'), '--port', '0', '--no-dht', '--peer', `127.0.0.1:${aPort}`]);
  t.teardown(m.unmount);
  const { got, want } = await checkAllFiles(m.mountpoint, ds);
  t.deepEqual(got, want);
  t.is(a.stats().uploaded, 0, 'A had nothing to give');

  const status = await btmount(['status', m.mountpoint, '--json']);
  t.is(status.code, 0, status.stderr);
  const peers = (JSON.parse(status.stdout) as { peers: Array<{ address: string; source: string }> }).peers;
  t.deepEqual(
    peers.find((p) => p.address === `127.0.0.1:${seederPort}`),
    { ...peers.find((p) => p.address === `127.0.0.1:${seederPort}`)!, source: 'pex' },
    JSON.stringify(peers),
  );
  t.true(peers.some((p) => p.address === `127.0.0.1:${aPort}` && p.source === 'static'), JSON.stringify(peers));
});
