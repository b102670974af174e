import test from 'ava';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { dialPeer, PeerList } from '../src/swarm/peer-list.js';
import { freePort } from './helpers/peers.js';

// The one peer list of the swarm and the metadata fetch, with a fake clock.
const T0 = 1_000_000;
type Conn = { id: number };

test('candidates: known addresses and banned hosts are not added again; a known one can become persistent', (t) => {
  const list = new PeerList<Conn>();
  const a = list.add('10.0.0.1', 6881, 'dht', false);
  t.truthy(a);
  t.is(a!.key, '10.0.0.1:6881');
  t.is(list.add('10.0.0.1', 6881, 'static', true), undefined);
  t.true(a!.persistent, 'given by the user as well: persistent');
  t.truthy(list.add('10.0.0.1', 6882, 'pex', false), 'another port of the host is another candidate');
  t.is(list.size, 2);
  t.true(list.ban('10.0.0.1'));
  t.false(list.ban('10.0.0.1'), 'banned already');
  t.is(list.size, 0, 'every port of a banned host is forgotten');
  t.is(list.add('10.0.0.1', 7000, 'static', true), undefined);
  t.true(list.isBanned('10.0.0.1'));
  t.deepEqual([...list.bannedHosts], ['10.0.0.1']);
});

test('backoff: a failed peer is due again after 0.5 s × 2^failures; one that is not persistent is forgotten after three failures', (t) => {
  const list = new PeerList<Conn>();
  const cand = list.add('10.0.0.2', 1, 'tracker', false)!;
  t.deepEqual([...list.due(T0)], [cand], 'a new candidate is due at once');
  for (let failure = 1; failure <= 2; failure++) {
    const conn = { id: failure };
    list.dialled(cand, conn, T0);
    t.deepEqual([...list.due(T0)], [], 'not while connected');
    t.true(list.ended(cand, conn, { failed: true }, T0));
    t.is(cand.failures, failure);
    t.is(cand.nextAttemptAt, T0 + 500 * 2 ** failure);
    t.deepEqual([...list.due(T0 + 500 * 2 ** failure - 1)], []);
    t.deepEqual([...list.due(T0 + 500 * 2 ** failure)], [cand]);
  }
  const third = { id: 3 };
  list.dialled(cand, third, T0);
  t.false(list.ended(cand, third, { failed: true }, T0), 'forgotten');
  t.is(list.size, 0);
});

test('a persistent peer is kept and capped at its own backoff; reads waiting keep any peer', (t) => {
  const list = new PeerList<Conn>({ persistentMaxBackoffMs: 5_000 });
  const user = list.add('10.0.0.3', 1, 'static', true)!;
  const found = list.add('10.0.0.4', 1, 'dht', false)!;
  for (let i = 0; i < 10; i++) {
    for (const cand of [user, found]) {
      const conn = { id: i };
      list.dialled(cand, conn, T0);
      list.ended(cand, conn, { failed: true, keep: cand === found }, T0);
    }
  }
  t.is(list.size, 2);
  t.is(list.backoffMs(user), 5_000);
  t.is(list.backoffMs(found), 60_000, 'the default cap');
  // A connection that went well forgives the failures.
  list.connected(found);
  t.is(found.failures, 0);
  // A connection that lasted is not a failure.
  const good = { id: 99 };
  list.dialled(found, good, T0);
  list.ended(found, good, { failed: false }, T0);
  t.is(found.failures, 0);
  t.is(found.nextAttemptAt, T0 + 500);
});

test('our own address is forgotten, and not taken again when a tracker or PEX hands it back; the end of an older connection changes nothing', (t) => {
  const list = new PeerList<Conn>();
  const cand = list.add('127.0.0.1', 6881, 'tracker', true)!;
  const old = { id: 1 };
  const current = { id: 2 };
  list.dialled(cand, old, T0);
  list.dialled(cand, current, T0 + 1);
  t.true(list.ended(cand, old, { failed: true }, T0 + 2));
  t.is(cand.conn, current);
  t.is(cand.failures, 0);
  t.false(list.ended(cand, current, { self: true, failed: false }, T0 + 3));
  t.is(list.size, 0, 'even a persistent one');
  t.is(list.add('127.0.0.1', 6881, 'pex', false), undefined, 'our own address, learnt again');
  t.not(list.add('127.0.0.1', 6882, 'pex', false), undefined, 'another port of the host is another peer');
});

test('while reads starve, a peer that never stalled is re-dialled soon whatever its backoff', (t) => {
  const list = new PeerList<Conn>();
  const fine = list.add('10.0.0.5', 1, 'dht', false)!;
  const staller = list.add('10.0.0.6', 1, 'dht', false)!;
  for (const cand of [fine, staller]) {
    const conn = { id: 1 };
    list.dialled(cand, conn, T0);
    list.ended(cand, conn, { failed: true }, T0);
    list.dialled(cand, conn, T0);
    list.ended(cand, conn, { failed: true, keep: true }, T0); // backoff 2 s
  }
  staller.stalls = 1;
  t.deepEqual([...list.due(T0 + 1000)], []);
  t.deepEqual([...list.due(T0 + 1000, 1000)], [fine]);
  t.deepEqual([...list.due(T0 + 2000, 1000)], [fine, staller]);
});

test('dialPeer connects, and a connection is not cut by the dial timeout', async (t) => {
  const server = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const socket = dialPeer({ host: '127.0.0.1', port }, 100);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    await sleep(200);
    t.false(socket.destroyed);
    socket.destroy();
    const refused = dialPeer({ host: '127.0.0.1', port: await freePort() }, 100);
    const err = await new Promise<Error>((resolve) => refused.once('error', resolve));
    t.regex(err.message, /ECONNREFUSED/);
  } finally {
    server.close();
  }
});
