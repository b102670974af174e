import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Socket } from 'node:net';
import type { PieceIndex } from '../src/metainfo/piece-layout.js';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import {
  fetchAll,
  filesFromPieces,
  handshakeBytes,
  makeDataset,
  startFakePeer,
  startHonestSeeder,
  startRawPeer,
  type Dataset,
  type FakePeer,
} from './helpers/peers.js';

// Each test has its own 127.0.0.x addresses: bans are per host.
const PIECE = 64 * 1024;
const FILES = [
  { path: 'x/0.bin', length: 20 * PIECE + 5000 },
  { path: 'x/1.bin', length: 11 * PIECE },
];

let base: string;
let ds: Dataset;

test.before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'btmount-hostile-'));
  ds = await makeDataset(base, 'ds', FILES, PIECE);
});

test.after.always(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

function leecher(): { swarm: Swarm; storage: MemoryPieceStorage; closed: Array<{ address: string; reason: string }> } {
  const storage = new MemoryPieceStorage(ds.metainfo.layout);
  const swarm = new Swarm({ infoHash: ds.metainfo.infoHash, layout: ds.metainfo.layout, storage, port: 0, host: '127.0.0.1' });
  const closed: Array<{ address: string; reason: string }> = [];
  swarm.on('peer-closed', (address: string, reason: string) => closed.push({ address, reason }));
  return { swarm, storage, closed };
}

async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function assertComplete(t: ExecutionContext, storage: MemoryPieceStorage): void {
  const { layout } = ds.metainfo;
  t.is(storage.size, layout.pieceCount);
  for (let i = 0; i < layout.pieceCount; i++) {
    const data = storage.get(i as PieceIndex)!;
    t.true(createHash('sha1').update(data).digest().equals(layout.pieceHash(i as PieceIndex)), `piece ${i} stored intact`);
  }
  const files = filesFromPieces(ds.metainfo, storage);
  for (const f of ds.files) t.is(files.get(f.path), f.sha256);
}

test('a lying peer beside an honest one: correct data, the liar is banned, nothing corrupt stored', async (t) => {
  const liar = await startFakePeer('127.0.0.21', ds.metainfo, ({ wire, index, offset, length }) => wire.piece(index, offset, randomBytes(length)));
  const honest = await startHonestSeeder(ds, '127.0.0.22');
  const { swarm, storage } = leecher();
  const stored: number[] = [];
  storage.on('added', (i: number) => stored.push(i));
  try {
    await swarm.listen();
    const all = fetchAll(swarm, ds.metainfo.layout.pieceCount, AbortSignal.timeout(60_000));
    swarm.addPeer(liar.host, liar.port);
    await until(() => swarm.stats().hashFailures > 0, 'a first hash failure from the liar');
    swarm.addPeer('127.0.0.22', honest.port);
    await all;
    assertComplete(t, storage);
    const s = swarm.stats();
    t.deepEqual(s.banned, ['127.0.0.21']);
    t.true(s.hashFailures >= 2);
    t.false(s.peers.some((p) => p.address.startsWith('127.0.0.21:')), 'the liar is disconnected');
    // Banned for the life of the torrent: adding it again does nothing.
    const before = liar.connections;
    swarm.addPeer(liar.host, liar.port);
    await new Promise((r) => setTimeout(r, 300));
    t.is(liar.connections, before);
    t.true(swarm.waitingReason().includes('hash failures'));
  } finally {
    await swarm.close();
    await honest.swarm.close();
    await liar.close();
  }
});

test('a peer that corrupts only some of its blocks is banned too', async (t) => {
  // The liar is honest except for one block in three. Pieces it sent alone fail and charge it; pieces it
  // shared with the honest peer fail, and once they verify, its blocks are the ones that differ (smart ban).
  const full = await (await import('./helpers/peers.js')).fullStorage(ds);
  const liar = await startFakePeer('127.0.0.23', ds.metainfo, ({ wire, index, offset, length, count }) => {
    void full.readBlock(index as PieceIndex, offset, length).then((good) => wire.piece(index, offset, count % 3 === 0 ? randomBytes(length) : good));
  });
  const honest = await startHonestSeeder(ds, '127.0.0.24');
  const { swarm, storage } = leecher();
  try {
    await swarm.listen();
    swarm.addPeer(liar.host, liar.port);
    swarm.addPeer('127.0.0.24', honest.port);
    await fetchAll(swarm, ds.metainfo.layout.pieceCount, AbortSignal.timeout(60_000));
    assertComplete(t, storage);
    t.deepEqual(swarm.stats().banned, ['127.0.0.23']);
  } finally {
    await swarm.close();
    await honest.swarm.close();
    await liar.close();
  }
});

test('a peer that disconnects mid-piece costs only its connection', async (t) => {
  let served = 0;
  const quitter = await startFakePeer('127.0.0.25', ds.metainfo, ({ wire, socket, index, offset, length }) => {
    if (served++ < 2) {
      void fullBlock(index, offset, length).then((b) => wire.piece(index, offset, b));
    } else socket.destroy();
  });
  const honest = await startHonestSeeder(ds, '127.0.0.26');
  const { swarm, storage, closed } = leecher();
  try {
    await swarm.listen();
    const all = fetchAll(swarm, ds.metainfo.layout.pieceCount, AbortSignal.timeout(60_000));
    swarm.addPeer(quitter.host, quitter.port);
    await until(() => closed.some((c) => c.address.startsWith('127.0.0.25:')), 'the quitter to drop');
    t.is(storage.size, 0, 'no piece completed from the quitter alone');
    swarm.addPeer('127.0.0.26', honest.port);
    await all;
    assertComplete(t, storage);
    t.is(swarm.stats().hashFailures, 0, 'blocks it did send were good and kept');
    t.deepEqual(swarm.stats().banned, []);
  } finally {
    await swarm.close();
    await honest.swarm.close();
    await quitter.close();
  }
});

async function garbageTest(
  t: ExecutionContext,
  host: string,
  honestHost: string,
  onConnection: (socket: Socket) => void,
  expectedReason: RegExp,
): Promise<{ peakBufferGrowth: number }> {
  const bad = await startRawPeer(host, onConnection);
  const honest = await startHonestSeeder(ds, honestHost);
  const { swarm, storage, closed } = leecher();
  // Buffer memory (where received bytes live), sampled: its peak over the test, above where it started.
  const baseline = process.memoryUsage().arrayBuffers;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 5);
  try {
    await swarm.listen();
    const all = fetchAll(swarm, ds.metainfo.layout.pieceCount, AbortSignal.timeout(60_000));
    swarm.addPeer(bad.host, bad.port);
    await until(() => closed.some((c) => c.address.startsWith(`${host}:`)), 'the bad peer to be dropped');
    const reason = closed.find((c) => c.address.startsWith(`${host}:`))!.reason;
    t.regex(reason, expectedReason);
    swarm.addPeer(honestHost, honest.port);
    await all;
    assertComplete(t, storage);
    return { peakBufferGrowth: peak - baseline };
  } finally {
    clearInterval(sampler);
    await swarm.close();
    await honest.swarm.close();
    await bad.close();
  }
}

test('a peer that sends random bytes instead of a handshake is dropped', async (t) => {
  await garbageTest(t, '127.0.0.27', '127.0.0.28', (s) => s.write(randomBytes(64 * 1024)), /protocol violation: not the BitTorrent protocol/);
});

test('a peer that sends random bytes after a valid handshake is dropped', async (t) => {
  await garbageTest(
    t,
    '127.0.0.29',
    '127.0.0.30',
    (s) => {
      s.write(handshakeBytes(ds.metainfo.infoHash));
      // A random length prefix is almost surely over the limit; make sure with the top bit.
      const junk = randomBytes(256 * 1024);
      junk[0] = junk[0]! | 0x40;
      s.write(junk);
    },
    /protocol violation: message of \d+ bytes \(limit \d+\)/,
  );
});

for (const [n, prefix, host, honestHost] of [
  [2 ** 31, 0x80000000, '127.0.0.31', '127.0.0.32'],
  [2 ** 31 - 1, 0x7fffffff, '127.0.0.33', '127.0.0.34'],
] as const) {
  // Serial: ava runs these before the concurrent tests, so the Buffer memory sampled is this test's alone.
  test.serial(`a peer that announces a ${n}-byte message is dropped before it is buffered`, async (t) => {
    let written = 0;
    let writeFailed = false;
    const { peakBufferGrowth } = await garbageTest(
      t,
      host,
      honestHost,
      (s) => {
        s.write(handshakeBytes(ds.metainfo.infoHash));
        const header = Buffer.alloc(5);
        header.writeUInt32BE(prefix, 0);
        header[4] = 7; // "piece"
        s.write(header);
        // Then keep streaming: 64 MiB would sit in memory if the engine waited for the message to end.
        const chunk = Buffer.alloc(1024 * 1024, 0xab);
        const pump = (): void => {
          while (written < 64 * 1024 * 1024 && !s.destroyed) {
            written += chunk.length;
            if (!s.write(chunk)) return void s.once('drain', pump);
          }
        };
        s.on('error', () => (writeFailed = true));
        s.on('close', () => (writeFailed = true));
        pump();
      },
      new RegExp(`protocol violation: message of ${n} bytes`),
    );
    t.true(writeFailed, 'the engine closed the connection');
    t.true(written < 64 * 1024 * 1024, `the peer could not push all its bytes (${written} written)`);
    // The honest download's own pieces (2 MiB, in two storages) and socket buffers fit well under 16 MiB; 64 MiB of flood would not.
    t.log(`peak Buffer growth ${(peakBufferGrowth / 2 ** 20).toFixed(1)} MiB`);
    t.true(peakBufferGrowth < 16 * 1024 * 1024, `Buffer memory grew by ${(peakBufferGrowth / 2 ** 20).toFixed(1)} MiB at most`);
  });
}

async function fullBlock(index: number, offset: number, length: number): Promise<Buffer> {
  fullBlock.storage ??= await (await import('./helpers/peers.js')).fullStorage(ds);
  return fullBlock.storage.readBlock(index as PieceIndex, offset, length);
}
fullBlock.storage = undefined as MemoryPieceStorage | undefined;

export type { FakePeer };
