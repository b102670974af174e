import test from 'ava';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
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

test("a folder walk requests the next file's pieces before the walker opens it", async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  // Files of two whole pieces each: a file's pieces are its own.
  const names = ['000.jpg', '001.jpg', '002.jpg', '003.jpg', '004.jpg'];
  const ds = await makeDataset(dir.path, 'dataset', names.map((n) => ({ path: `train/${n}`, length: 2 * PIECE })), PIECE);
  const storage = await fullStorage(ds);
  /** When each piece was first requested of the peer (it serves honestly; we watch). */
  const requested = new Map<number, number>();
  const peer = await startFakePeer('127.0.0.1', ds.metainfo, ({ wire, index, offset, length }) => {
    if (!requested.has(index)) requested.set(index, Date.now());
    wire.piece(index, offset, storage.get(index as never)!.subarray(offset, offset + length));
  });
  t.teardown(() => peer.close());
  const m = await mountTorrent(dir.path, ds.torrentPath, { peers: [`127.0.0.1:${peer.port}`], readTimeout: 30 });
  t.teardown(m.unmount);

  const go = path.join(dir.path, 'go');
  const walker = startProcess('/usr/bin/python3', ['-c', GATED_WALK, path.join(m.mountpoint, 'train'), go]);
  t.teardown(() => walker.stop());
  const listing = (await python('import os, sys; print("\\n".join(os.listdir(sys.argv[1])))', [path.join(m.mountpoint, 'train')])).stdout.trim().split('\n');
  t.deepEqual(listing, names, 'readdir order is the torrent order here');
  for (let i = 0; i < names.length; i++) {
    await walker.waitFor(new RegExp(`read ${i} ${names[i]} ${2 * PIECE}`), 30_000);
    if (i === names.length - 1) break;
    // File i+1 is not open yet (the walker waits for us): its first piece must be asked for already.
    const nextFirstPiece = 2 * (i + 1);
    await waitUntil(`a request for piece ${nextFirstPiece} (first of ${names[i + 1]}) before it is opened`, () => requested.has(nextFirstPiece), 10_000);
    await writeFile(`${go}.${i + 1}`, '');
  }
  t.is(requested.size, 2 * names.length, 'every piece was asked for once the walk was done');
});
