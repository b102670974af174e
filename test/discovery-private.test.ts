import test, { type ExecutionContext } from 'ava';
import path from 'node:path';
import { createTorrentFile } from '../src/cli/create.js';
import { PEX_EXTENSION, PeerExchange } from '../src/discovery/index.js';
import { silentLogger } from '../src/log.js';
import { loadMetainfo } from '../src/metainfo/index.js';
import type { PeerConnection } from '../src/swarm/peer-connection.js';
import { Swarm } from '../src/swarm/index.js';
import { checkAllFiles, mountSource, startLocalDht, waitUntil, type LocalDht } from './helpers/discovery.js';
import { fullStorage, makeDataset, startHonestSeeder, type Dataset } from './helpers/peers.js';
import { btmount, tempDir } from './helpers/run.js';

interface DiscoveryJson {
  discovery: { staticPeers: number; dht: { enabled: boolean; nodes: number }; pex: { enabled: boolean }; trackers: unknown[] };
}

/** What the local DHT nodes were asked about one infohash. */
function dhtQueries(dht: LocalDht, infoHash: string): { getPeers: number; announces: number } {
  const seen = { getPeers: 0, announces: 0 };
  for (const dhtNode of dht.nodes) {
    // bittorrent-dht emits one event per query it answers; its typings list only error and warning.
    const node = dhtNode as unknown as NodeJS.EventEmitter;
    node.on('get_peers', (hash: Uint8Array) => void (Buffer.from(hash).toString('hex') === infoHash && seen.getPeers++));
    node.on('announce_peer', (hash: Uint8Array) => void (Buffer.from(hash).toString('hex') === infoHash && seen.announces++));
  }
  return seen;
}

/**
 * A seeder that speaks ut_pex (our engine with PeerExchange), recording what each
 * connected peer said in BEP 10: whether its handshake offered ut_pex, and every
 * ut_pex message it sent.
 */
async function startPexSeeder(t: ExecutionContext, ds: Dataset): Promise<{ port: number; offeredPex: () => boolean; pexMessages: () => number }> {
  const swarm = new Swarm({
    infoHash: ds.metainfo.infoHash,
    layout: ds.metainfo.layout,
    storage: await fullStorage(ds),
    port: 0,
    host: '127.0.0.1',
    infoBuffer: ds.metainfo.infoBuffer,
    extensions: [PEX_EXTENSION],
  });
  const pex = new PeerExchange(swarm, silentLogger);
  t.teardown(async () => {
    pex.close();
    await swarm.close();
  });
  let offered = false;
  let messages = 0;
  swarm.on('peer-ready', (pc: PeerConnection) => {
    const check = (): void => void ((pc.wire as unknown as { peerExtendedMapping: Record<string, number> }).peerExtendedMapping['ut_pex'] && (offered = true));
    check();
    pc.wire.on('extended', (ext: string) => (ext === 'handshake' ? check() : ext === 'ut_pex' && messages++));
  });
  return { port: await swarm.listen(), offeredPex: () => offered, pexMessages: () => messages };
}

/**
 * Mounts `source` with a local DHT as its only bootstrap and two --peer seeders, one
 * PEX-capable (so a mount with PEX on tells it about the other). Resolves once every
 * file read back through the mount.
 */
async function mountWithObservers(t: ExecutionContext, dir: string, ds: Dataset, source: string, dht: LocalDht, name: string) {
  const dhtSeen = dhtQueries(dht, ds.metainfo.infoHash);
  const pexSeeder = await startPexSeeder(t, ds);
  const other = await startHonestSeeder(ds, '127.0.0.1');
  t.teardown(() => other.swarm.close());
  const bootstrap = dht.bootstrap.flatMap((b) => ['--dht-bootstrap', b]);
  const m = await mountSource(dir, source, ['--cache', path.join(dir, `cache-${name}`), '--port', '0', ...bootstrap, '--peer', `127.0.0.1:${pexSeeder.port}`, '--peer', `127.0.0.1:${other.port}`], name);
  t.teardown(m.unmount);
  const { got, want } = await checkAllFiles(m.mountpoint, ds);
  t.deepEqual(got, want);
  return { m, dhtSeen, pexSeeder };
}

test('a private torrent (BEP 27): the DHT never hears an announce and PEX is never spoken, by hash or from its .torrent (a public one, same setup, does both)', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const dht = await startLocalDht(3);
  t.teardown(dht.close);
  const open = await makeDataset(dir.path, 'closed', [{ path: 'c/1.bin', length: 400_000 }], 64 * 1024);
  const torrentPath = path.join(dir.path, 'closed-private.torrent');
  await createTorrentFile(open.root, { output: torrentPath, pieceSize: 64 * 1024, tracker: [], webSeed: [], private: true });
  const closed = { ...open, torrentPath, metainfo: await loadMetainfo(torrentPath) };
  t.true(closed.metainfo.private);
  t.false(open.metainfo.private);

  // The control: the same observers see a public torrent's mount announce itself and send PEX.
  const pub = await mountWithObservers(t, dir.path, open, open.metainfo.infoHash, dht, 'public');
  const started = Date.now();
  await waitUntil('the public mount to announce on the DHT and send a PEX message', () => pub.dhtSeen.announces > 0 && pub.pexSeeder.pexMessages() > 0, 30_000);
  t.true(pub.pexSeeder.offeredPex());
  // How long after the reads a leak showed here, with room to spare (the first PEX message goes 2 s after the handshake).
  const observeMs = Math.max(4000, 3 * (Date.now() - started));
  t.is((await pub.m.unmount()).code, 0);

  // By hash: a lookup before the metadata says "private" is allowed; an announce or PEX never is.
  const byHash = await mountWithObservers(t, dir.path, closed, closed.metainfo.infoHash, dht, 'by-hash');
  const status = await btmount(['status', byHash.m.mountpoint, '--json']);
  t.is(status.code, 0, status.stderr);
  const { discovery } = JSON.parse(status.stdout) as DiscoveryJson;
  t.like(discovery, { dht: { enabled: false }, pex: { enabled: false }, staticPeers: 2 });
  await new Promise((r) => setTimeout(r, observeMs));
  t.is(byHash.dhtSeen.announces, 0, 'no DHT node was told the mount has the private torrent');
  t.is(byHash.pexSeeder.pexMessages(), 0, 'no PEX message reached the PEX-capable seeder');
  t.false(byHash.pexSeeder.offeredPex(), 'ut_pex not offered in the BEP 10 handshake');
  t.is((await byHash.m.unmount()).code, 0);

  // From the .torrent file: private from the start, so the DHT is not even asked.
  const fromFile = await mountWithObservers(t, dir.path, closed, torrentPath, dht, 'from-file');
  const status2 = JSON.parse((await btmount(['status', fromFile.m.mountpoint, '--json'])).stdout) as DiscoveryJson;
  t.like(status2.discovery, { dht: { enabled: false }, pex: { enabled: false } });
  await new Promise((r) => setTimeout(r, observeMs));
  t.deepEqual(fromFile.dhtSeen, { getPeers: 0, announces: 0 }, 'the DHT never heard of it');
  t.is(fromFile.pexSeeder.pexMessages(), 0);
  t.false(fromFile.pexSeeder.offeredPex());
});
