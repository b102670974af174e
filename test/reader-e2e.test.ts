import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadMetainfo, type Metainfo, type PieceIndex } from '../src/metainfo/index.js';
import { buildTorrent } from './helpers/torrent-builder.js';
import { waitUntil } from './helpers/discovery.js';
import { mountTorrent, python } from './helpers/mount.js';
import { freePort, fullStorage, makeDataset, startFakePeer, startProcess } from './helpers/peers.js';
import { run, tempDir } from './helpers/run.js';

const PIECE = 64 * 1024;

test('a failed buffered read (cat) gets EIO within --read-timeout, not twice it (the kernel retry fails at once)', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'dataset', [{ path: 'a.bin', length: 300_000 }], PIECE);
  const deadPort = await freePort();
  const m = await mountTorrent(dir.path, ds.torrentPath, { peers: [`127.0.0.1:${deadPort}`], readTimeout: 3 });
  t.teardown(m.unmount);

  const started = Date.now();
  const cat = await run('cat', [path.join(m.mountpoint, 'a.bin')], { timeoutMs: 30_000 });
  const seconds = (Date.now() - started) / 1000;
  t.not(cat.code, 0);
  t.regex(cat.stderr, /Input\/output error/);
  t.true(seconds >= 2.5, `waited ${seconds} s: the read did wait for data`);
  // The old code took 2 × 3 s; the margin covers a loaded machine.
  t.true(seconds < 4.8, `EIO after ${seconds} s with --read-timeout 3`);
});

/** Walks a folder in readdir order; before opening each next file it waits for `<go>.<i>` to exist. */
const GATED_WALK = `
import os, sys, time
folder, go = sys.argv[1], sys.argv[2]
for i, name in enumerate(os.listdir(folder)):
    if i > 0:
        while not os.path.exists(f'{go}.{i}'):
            time.sleep(0.01)
    with open(os.path.join(folder, name), 'rb') as f:
        n = len(f.read())
    print('read', i, name, n, flush=True)
`;

/** Serves `data` (the torrent's byte stream) honestly and notes when each piece was first asked for. */
async function watchedPeer(metainfo: Metainfo, data: Buffer) {
  const requested = new Map<number, number>();
  const { pieceLength } = metainfo.layout;
  const peer = await startFakePeer('127.0.0.1', metainfo, ({ wire, index, offset, length }) => {
    if (!requested.has(index)) requested.set(index, Date.now());
    const at = index * pieceLength + offset;
    wire.piece(index, offset, data.subarray(at, at + length));
  });
  return { peer, requested };
}

/**
 * Walks `folder` of a mount with GATED_WALK; after each file, checks that the
 * first piece of the next one (from `firstPieceOf`) was asked for already,
 * while the walker waits to open it.
 */
async function walkChecking(t: ExecutionContext, base: string, folder: string, requested: Map<number, number>, firstPieceOf: (name: string) => number, expected: string[]): Promise<void> {
  const listing = (await python('import os, sys; print("\\n".join(os.listdir(sys.argv[1])))', [folder])).stdout.trim().split('\n');
  t.deepEqual(listing, expected, 'readdir order');
  const go = path.join(base, 'go');
  const walker = startProcess('/usr/bin/python3', ['-c', GATED_WALK, folder, go]);
  t.teardown(() => walker.stop());
  for (let i = 0; i < listing.length; i++) {
    await walker.waitFor(new RegExp(`read ${i} ${listing[i]} \\d+`), 30_000);
    if (i === listing.length - 1) break;
    const next = firstPieceOf(listing[i + 1]!);
    // The walker has not opened the next file yet (it waits for us): its first piece must be asked for already.
    await waitUntil(`a request for piece ${next} (first of ${listing[i + 1]}) before it is opened`, () => requested.has(next), 10_000);
    await writeFile(`${go}.${i + 1}`, '');
  }
}

test("a folder walk requests the next file's pieces before the walker opens it", async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  // Files of two whole pieces each: a file's pieces are its own.
  const names = ['000.jpg', '001.jpg', '002.jpg', '003.jpg', '004.jpg'];
  const ds = await makeDataset(dir.path, 'dataset', names.map((n) => ({ path: `train/${n}`, length: 2 * PIECE })), PIECE);
  const storage = await fullStorage(ds);
  const data = Buffer.concat(Array.from({ length: ds.metainfo.layout.pieceCount }, (_, i) => storage.get(i as PieceIndex)!));
  const { peer, requested } = await watchedPeer(ds.metainfo, data);
  t.teardown(() => peer.close());
  const m = await mountTorrent(dir.path, ds.torrentPath, { peers: [`127.0.0.1:${peer.port}`], readTimeout: 30 });
  t.teardown(m.unmount);
  await walkChecking(t, dir.path, path.join(m.mountpoint, 'train'), requested, (name) => 2 * names.indexOf(name), names);
  t.is(requested.size, 2 * names.length, 'every piece was asked for once the walk was done');
});

test('a folder listed out of torrent order is walked as one stream in listing order (readdir, then opens)', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  // The torrent interleaves two folders: walking `a` alone is no run of the torrent's bytes.
  const order = ['a/1.jpg', 'b/1.jpg', 'a/2.jpg', 'b/2.jpg', 'a/3.jpg'];
  const data = randomBytes(order.length * 2 * PIECE);
  const torrent = path.join(dir.path, 'interleaved.torrent');
  await writeFile(torrent, buildTorrent({ data, pieceLength: PIECE, files: order.map((p) => ({ path: p.split('/'), length: 2 * PIECE })) }));
  const metainfo = await loadMetainfo(torrent);
  const { peer, requested } = await watchedPeer(metainfo, data);
  t.teardown(() => peer.close());
  const m = await mountTorrent(dir.path, torrent, { peers: [`127.0.0.1:${peer.port}`], readTimeout: 30 });
  t.teardown(m.unmount);
  await walkChecking(t, dir.path, path.join(m.mountpoint, 'a'), requested, (name) => 2 * order.indexOf(`a/${name}`), ['1.jpg', '2.jpg', '3.jpg']);
  t.false(requested.has(2) || requested.has(3) || requested.has(6) || requested.has(7), `b's pieces were not fetched (asked: ${[...requested.keys()].sort((x, y) => x - y).join(' ')})`);
});
