import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { asInfoHash, PieceLayout, pieceIndex, type PieceIndex } from '../src/metainfo/piece-layout.js';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import { handshakeBytes, startRawPeer } from './helpers/peers.js';

// In-process engine tests on 127.0.0.1: our own engine on both ends.
const PIECE = 64 * 1024;
const COUNT = 24;
const data = randomBytes(PIECE * COUNT - 1000);
const hashes = Buffer.concat(
  Array.from({ length: COUNT }, (_, i) => createHash('sha1').update(data.subarray(i * PIECE, (i + 1) * PIECE)).digest()),
);
const layout = new PieceLayout(PIECE, data.length, hashes);
const infoHash = asInfoHash(randomBytes(20).toString('hex'));

async function seeder(host = '127.0.0.1', opts: { uploadLimit?: number } = {}): Promise<{ swarm: Swarm; port: number }> {
  const storage = new MemoryPieceStorage(layout);
  for (let i = 0; i < COUNT; i++) {
    const index = pieceIndex(i);
    await storage.put(VerifiedPiece.check(layout, index, data.subarray(i * PIECE, i * PIECE + layout.pieceSize(index)))!);
  }
  const swarm = new Swarm({ infoHash, layout, storage, port: 0, host, ...opts });
  return { swarm, port: await swarm.listen() };
}

function leecher(opts: { downloadLimit?: number } = {}): { swarm: Swarm; storage: MemoryPieceStorage } {
  const storage = new MemoryPieceStorage(layout);
  return { swarm: new Swarm({ infoHash, layout, storage, port: 0, host: '127.0.0.1', ...opts }), storage };
}

const all = (swarm: Swarm, signal?: AbortSignal): Promise<void[]> =>
  Promise.all(Array.from({ length: COUNT }, (_, i) => swarm.fetch(pieceIndex(i), 'warm', signal)));

function pieceOk(storage: MemoryPieceStorage, i: number): boolean {
  const got = storage.get(i as PieceIndex);
  return got !== undefined && got.equals(data.subarray(i * PIECE, i * PIECE + layout.pieceSize(pieceIndex(i))));
}

test('callers asking for the same piece share one fetch', async (t) => {
  const s = await seeder();
  const { swarm, storage } = leecher();
  let verified = 0;
  swarm.on('verified', () => verified++);
  try {
    swarm.addPeer('127.0.0.1', s.port);
    await Promise.all([swarm.fetch(pieceIndex(3), 'warm'), swarm.fetch(pieceIndex(3), 'urgent'), swarm.fetch(pieceIndex(3), 'readahead')]);
    t.true(pieceOk(storage, 3));
    t.is(verified, 1);
    t.is(storage.size, 1, 'only what was asked for: no background download');
    // Already held: resolves at once.
    await swarm.fetch(pieceIndex(3), 'warm');
    t.is(verified, 1);
  } finally {
    await swarm.close();
    await s.swarm.close();
  }
});

test('an aborted fetch rejects with the signal’s reason; the piece is then not wanted', async (t) => {
  const { swarm } = leecher();
  try {
    const ac = new AbortController();
    const p = swarm.fetch(pieceIndex(1), 'urgent', ac.signal);
    t.is(swarm.stats().wanted, 1);
    t.is(swarm.waitingReason(), 'no peers');
    ac.abort(new Error('read timed out'));
    await t.throwsAsync(p, { message: 'read timed out' });
    t.is(swarm.stats().wanted, 0);
    await t.throwsAsync(swarm.fetch(pieceIndex(1), 'warm', AbortSignal.abort(new Error('already'))), { message: 'already' });
    await t.throwsAsync(swarm.fetch(pieceIndex(COUNT), 'warm'), { instanceOf: RangeError });
  } finally {
    await swarm.close();
  }
});

test('one caller giving up does not cancel the fetch for the others', async (t) => {
  const s = await seeder();
  const { swarm, storage } = leecher();
  try {
    const ac = new AbortController();
    const quitter = swarm.fetch(pieceIndex(5), 'urgent', ac.signal);
    const stayer = swarm.fetch(pieceIndex(5), 'warm');
    ac.abort(new Error('gone'));
    await t.throwsAsync(quitter);
    swarm.addPeer('127.0.0.1', s.port);
    await stayer;
    t.true(pieceOk(storage, 5));
  } finally {
    await swarm.close();
    await s.swarm.close();
  }
});

test('close rejects pending fetches', async (t) => {
  const { swarm } = leecher();
  const p = swarm.fetch(pieceIndex(2), 'warm');
  await swarm.close();
  await t.throwsAsync(p, { message: /swarm closed/ });
});

test('waitingReason says when every peer chokes us, and when no peer has the piece', async (t) => {
  // A peer that has every piece but never unchokes.
  const choker = await startRawPeer('127.0.0.41', (socket) => {
    socket.write(handshakeBytes(infoHash));
    const bits = Buffer.alloc(Math.ceil(COUNT / 8), 0xff);
    bits[bits.length - 1] = 0xff << (8 - (COUNT % 8 || 8));
    const msg = Buffer.alloc(5 + bits.length);
    msg.writeUInt32BE(1 + bits.length);
    msg[4] = 5;
    bits.copy(msg, 5);
    socket.write(msg);
    socket.on('data', () => {});
  });
  // A peer that has nothing.
  const empty = await startRawPeer('127.0.0.42', (socket) => {
    socket.write(handshakeBytes(infoHash));
    socket.on('data', () => {});
  });
  const { swarm } = leecher();
  try {
    const ac = new AbortController();
    const p = swarm.fetch(pieceIndex(0), 'urgent', ac.signal).catch(() => {});
    swarm.addPeer(empty.host, empty.port);
    await until(() => swarm.stats().peers.length === 1);
    t.is(swarm.waitingReason(), 'no peer has piece 0');
    swarm.addPeer(choker.host, choker.port);
    await until(() => swarm.waitingReason().includes('choking'));
    t.is(swarm.waitingReason(), 'all 1 peers with piece 0 choking us');
    ac.abort();
    await p;
  } finally {
    await swarm.close();
    await choker.close();
    await empty.close();
  }
});

test('a mount is a peer: what one leecher fetched, another gets from it', async (t) => {
  const s = await seeder();
  const a = leecher();
  const b = leecher();
  try {
    a.swarm.addPeer('127.0.0.1', s.port);
    await all(a.swarm);
    await s.swarm.close(); // the origin is gone
    const portA = await a.swarm.listen();
    b.swarm.addPeer('127.0.0.1', portA);
    await all(b.swarm);
    for (let i = 0; i < COUNT; i++) t.true(pieceOk(b.storage, i));
    t.true(a.swarm.stats().uploaded >= data.length);
  } finally {
    await a.swarm.close();
    await b.swarm.close();
    await s.swarm.close();
  }
});

test('with upload and download limits the transfer still completes', async (t) => {
  const s = await seeder('127.0.0.1', { uploadLimit: 4 * 1024 * 1024 });
  const { swarm, storage } = leecher({ downloadLimit: 4 * 1024 * 1024 });
  try {
    swarm.addPeer('127.0.0.1', s.port);
    await all(swarm);
    for (let i = 0; i < COUNT; i++) t.true(pieceOk(storage, i));
  } finally {
    await swarm.close();
    await s.swarm.close();
  }
});

test('incoming connections for another torrent are refused', async (t) => {
  const s = await seeder();
  const net = await import('node:net');
  try {
    const closed = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port: s.port }, () => sock.write(handshakeBytes(randomBytes(20).toString('hex'))));
      sock.on('data', () => resolve(false));
      sock.on('close', () => resolve(true));
      sock.on('error', () => {});
    });
    t.true(closed, 'closed without answering');
  } finally {
    await s.swarm.close();
  }
});

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a peer that connected to us is not dialled at the address it says it listens on (no duplicate connection churn)', async (t) => {
  const a = await seeder();
  const b = leecher();
  const bPort = await b.swarm.listen();
  const closedAtA: string[] = [];
  a.swarm.on('peer-closed', (_address: string, reason: string) => closedAtA.push(reason));
  try {
    b.swarm.addPeer('127.0.0.1', a.port);
    const until = Date.now() + 10_000;
    // Until B's extended handshake has reached A (its client name comes in it), A does not know
    // where B listens: only from then on is B's listen address one A is connected to.
    const handshaken = (): boolean => a.swarm.stats().peers.some((p) => p.client !== undefined);
    while (!handshaken() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    t.is(a.swarm.stats().peers.length, 1, 'B connected to A');
    t.true(handshaken(), "B's extended handshake reached A");
    // A now hears of B's listening address (as from a tracker or PEX): B is already connected.
    a.swarm.addPeer('127.0.0.1', bPort, 'tracker');
    await new Promise((r) => setTimeout(r, 2_500));
    t.deepEqual(closedAtA, [], 'A dialled B again and one side hung up on the duplicate');
    t.is(a.swarm.stats().peers.length, 1);
  } finally {
    await b.swarm.close();
    await a.swarm.close();
  }
});
