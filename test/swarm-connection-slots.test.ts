import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConnectionSlots, USELESS_AFTER_MS } from '../src/swarm/connection-slots.js';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import { fetchAll, handshakeBytes, makeDataset, startHonestSeeder } from './helpers/peers.js';

const idle = (key: string) => ({ key, inUse: false });
const busy = (key: string) => ({ key, inUse: true });

test('no connection gives up its slot before it has been of no use for the threshold', (t) => {
  const slots = new ConnectionSlots(10_000);
  slots.opened('a', 0);
  t.is(slots.leastUseful([idle('a')], 9_999), undefined);
  t.is(slots.leastUseful([idle('a')], 10_000), 'a');
  t.is(new ConnectionSlots().leastUseful([idle('x')], 0), undefined, 'a connection the slots never saw opened is not picked');
  t.is(USELESS_AFTER_MS, 30_000);
});

test('the connection useless the longest goes first; one in use never, however old', (t) => {
  const slots = new ConnectionSlots(10_000);
  slots.opened('old-busy', 0);
  slots.opened('old-idle', 1_000);
  slots.opened('newer-idle', 5_000);
  const all = [busy('old-busy'), idle('old-idle'), idle('newer-idle')];
  t.is(slots.leastUseful(all, 20_000), 'old-idle');
  t.is(slots.leastUseful([busy('old-busy'), idle('newer-idle')], 20_000), 'newer-idle');
  t.is(slots.leastUseful([busy('old-busy')], 100_000), undefined);
});

test('interest seen at a tick resets the clock; a closed connection is forgotten', (t) => {
  const slots = new ConnectionSlots(10_000);
  slots.opened('a', 0);
  slots.opened('b', 0);
  slots.observe([busy('a'), idle('b')], 8_000);
  t.is(slots.leastUseful([idle('a'), idle('b')], 12_000), 'b', 'a was in use at 8 s');
  t.is(slots.leastUseful([idle('a')], 17_999), undefined);
  t.is(slots.leastUseful([idle('a')], 18_000), 'a');
  slots.closed('b');
  t.is(slots.leastUseful([idle('b')], 50_000), undefined);
  slots.observe([busy('b')], 50_000);
  t.is(slots.leastUseful([idle('b')], 90_000), undefined, 'observing a closed connection does not bring it back');
});

test('with every slot held by strangers that do nothing, an honest seeder that connects gets one and the data comes (real TCP)', async (t) => {
  const base = await mkdtemp(path.join(tmpdir(), 'btmount-slots-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const ds = await makeDataset(base, 'ds', [{ path: 'x.bin', length: 12 * 64 * 1024 + 100 }], 64 * 1024);
  const { layout, infoHash } = ds.metainfo;
  const leecher = new Swarm({ infoHash, layout, storage: new MemoryPieceStorage(layout), port: 0, host: '127.0.0.1', maxConnections: 3, uselessConnectionMs: 1_000 });
  t.teardown(() => leecher.close());
  const port = await leecher.listen();
  const closedReasons: string[] = [];
  leecher.on('peer-closed', (_address: string, reason: string) => closedReasons.push(reason));

  // Three strangers take the three slots: a valid handshake, then nothing (no bitfield, no interest).
  const strangers = [1, 2, 3].map((n) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.5.${n}` });
    socket.on('error', () => {});
    socket.on('connect', () => socket.write(handshakeBytes(infoHash)));
    socket.resume();
    return socket;
  });
  t.teardown(() => strangers.forEach((s) => s.destroy()));
  const until = async (cond: () => boolean, what: string, ms: number): Promise<void> => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  await until(() => leecher.stats().peers.length === 3, 'the strangers to take every slot', 10_000);

  const wants = new AbortController();
  t.teardown(() => wants.abort(new Error('test over')));
  const fetched = fetchAll(leecher, layout.pieceCount, wants.signal);
  const seeder = await startHonestSeeder(ds, '127.0.5.10');
  t.teardown(() => seeder.swarm.close());
  seeder.swarm.addPeer('127.0.0.1', port);
  // Without the slot policy the seeder is turned away until a stranger's 150 s idle timeout.
  await Promise.race([fetched, new Promise((_, reject) => setTimeout(() => reject(new Error('the data did not come in 30 s')), 30_000))]);
  t.true(closedReasons.filter((r) => /no interest either way/.test(r)).length >= 1, closedReasons.join('; '));
  t.true(strangers.some((s) => s.destroyed || s.readableEnded), 'a stranger lost its connection');
});
