import test from 'ava';
import { setMaxListeners } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import { handshakeBytes, makeDataset, startHonestSeeder, type Dataset } from './helpers/peers.js';

/**
 * A stranger's FIN ends the swarm's side of the connection, whatever state the stranger left
 * the connection in, and also while the swarm has stopped reading (--download-limit).
 * Each test uses its own 127.0.0.x addresses.
 */
const PIECE = 64 * 1024;
let base: string;
let ds: Dataset;

test.before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'btmount-fin-'));
  ds = await makeDataset(base, 'ds', [{ path: 'x.bin', length: 40 * PIECE }], PIECE);
});

test.after.always(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

/** Generous: the swarm hangs up at once; a half-open connection stays for 10 s (handshake timeout) or longer. */
const HANG_UP_WITHIN_MS = 4_000;

function leecher(downloadLimit?: number): Swarm {
  const storage = new MemoryPieceStorage(ds.metainfo.layout);
  return new Swarm({ infoHash: ds.metainfo.infoHash, layout: ds.metainfo.layout, storage, port: 0, host: '127.0.0.1', ...(downloadLimit ? { downloadLimit } : {}) });
}

/** Connects from `from`, sends `bytes`, ends our side; resolves with how long the swarm took to close its side after our FIN (or Infinity). */
async function finAfter(port: number, from: string, bytes: Buffer): Promise<number> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: from });
  socket.on('error', () => {});
  socket.resume();
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  if (bytes.length > 0) await new Promise<void>((resolve) => socket.write(bytes, () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, 100));
  const finAt = Date.now();
  socket.end();
  const inTime = await Promise.race([closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), HANG_UP_WITHIN_MS))]);
  socket.destroy();
  await closed;
  return inTime ? Date.now() - finAt : Infinity;
}

function message(id: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length + 1, 0);
  head[4] = id;
  return Buffer.concat([head, payload]);
}

test('a FIN ends the connection: before the handshake, after it, mid-message, after keep-alives', async (t) => {
  const swarm = leecher();
  t.teardown(() => swarm.close());
  const port = await swarm.listen();
  const hs = handshakeBytes(ds.metainfo.infoHash);
  const partialPiece = message(7, Buffer.alloc(8 + 16384)).subarray(0, 5000);
  const shapes: Array<[string, Buffer]> = [
    ['nothing', Buffer.alloc(0)],
    ['half a handshake', hs.subarray(0, 30)],
    ['a handshake', hs],
    ['a handshake and half a piece message', Buffer.concat([hs, partialPiece])],
    ['a handshake, interested, then a length prefix only', Buffer.concat([hs, message(2, Buffer.alloc(0)), Buffer.from([0, 0, 0x40])])],
    ['a handshake and keep-alives', Buffer.concat([hs, Buffer.alloc(4), Buffer.alloc(4)])],
  ];
  let n = 10;
  for (const [what, bytes] of shapes) {
    const took = await finAfter(port, `127.0.3.${n++}`, bytes);
    t.true(took < HANG_UP_WITHIN_MS, `after ${what}: the swarm left the connection half-open`);
  }
});

test('a FIN ends the connection while --download-limit has paused reading', async (t) => {
  const seeder = await startHonestSeeder(ds, '127.0.3.40');
  t.teardown(() => seeder.swarm.close());
  // 16 KiB/s: the first read of many blocks puts the bucket seconds in debt, and reading pauses.
  const swarm = leecher(16 * 1024);
  t.teardown(() => swarm.close());
  const port = await swarm.listen();
  const wants = new AbortController();
  setMaxListeners(0, wants.signal);
  t.teardown(() => wants.abort(new Error('test over')));
  for (let i = 0; i < ds.metainfo.layout.pieceCount; i++) swarm.fetch(i as never, 'warm', wants.signal).catch(() => {});
  swarm.addPeer('127.0.3.40', seeder.port);
  const end = Date.now() + 20_000;
  while (swarm.stats().downloaded < 4 * PIECE) {
    if (Date.now() > end) return t.fail('the seeder sent nothing');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const hs = handshakeBytes(ds.metainfo.infoHash);
  t.true((await finAfter(port, '127.0.3.41', hs)) < HANG_UP_WITHIN_MS, 'a stranger that arrived during the pause');
  t.true((await finAfter(port, '127.0.3.42', Buffer.alloc(0))) < HANG_UP_WITHIN_MS, 'a stranger that sent nothing');
});

test('a stranger that connects and sends nothing is dropped by the handshake timeout', async (t) => {
  const swarm = leecher();
  t.teardown(() => swarm.close());
  const port = await swarm.listen();
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.3.50' });
  socket.on('error', () => {});
  socket.resume();
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  // The timeout is 10 s; generous on a loaded machine.
  const inTime = await Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20_000))]);
  socket.destroy();
  t.true(inTime, 'the silent stranger still holds its connection');
});
