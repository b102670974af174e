import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from './helpers/run.js';
import type { PieceIndex } from '../src/metainfo/piece-layout.js';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import {
  BTMOUNT_BIN,
  freePort,
  makeDataset,
  sha256File,
  startAria2Leecher,
  startLibtorrent,
  startProcess,
  startTracker,
  type Dataset,
  type Proc,
} from './helpers/peers.js';

const PIECE = 256 * 1024;
const FILES = [
  { path: 'a/000.bin', length: 2 * PIECE + 99 },
  { path: 'a/001.bin', length: 3 * PIECE },
  { path: 'b/002.bin', length: 12_345 },
  { path: 'c.txt', length: 1 },
];

let base: string;
let ds: Dataset;

test.before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'btmount-seed-'));
  ds = await makeDataset(base, 'ds', FILES, PIECE);
});

test.after.always(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

/** `btmount seed` on 127.0.0.1, any port; resolves once it serves. */
async function startSeed(extra: string[] = []): Promise<Proc & { port: number }> {
  const proc = startProcess(process.execPath, [BTMOUNT_BIN, 'seed', ds.torrentPath, ds.root, '--port', '0', '--host', '127.0.0.1', '--no-dht', ...extra]);
  const m = await proc.waitFor(/on port (\d+)/, 30_000);
  return Object.assign(proc, { port: Number(m[1]) });
}

async function assertDownloaded(t: import('ava').ExecutionContext, dir: string): Promise<void> {
  for (const f of ds.files) t.is(await sha256File(path.join(dir, 'ds', f.path)), f.sha256, `sha256 of ${f.path}`);
}

test('an aria2c leecher downloads the whole torrent from btmount seed', async (t) => {
  const seed = await startSeed();
  const tracker = await startTracker([{ host: '127.0.0.1', port: seed.port }]);
  const out = path.join(base, 'aria-out');
  await mkdir(out);
  const aria = startAria2Leecher(ds.torrentPath, out, tracker.url, await freePort());
  try {
    const code = await Promise.race([aria.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 90_000).unref())]);
    t.is(code, 0, aria.output().slice(-2000));
    await assertDownloaded(t, out);
    // A clean exit on SIGINT.
    t.is(await seed.stop('SIGINT'), 0, seed.output());
    t.regex(seed.output(), /stopped: uploaded/);
  } finally {
    await aria.stop();
    await seed.stop();
    await tracker.close();
  }
});

test('a python3-libtorrent leecher downloads the whole torrent from btmount seed', async (t) => {
  const seed = await startSeed();
  const out = path.join(base, 'lt-out');
  await mkdir(out);
  const lt = await startLibtorrent('leech', {
    torrentPath: ds.torrentPath,
    savePath: out,
    listen: '127.0.0.3:0',
    peers: [`127.0.0.1:${seed.port}`],
  });
  try {
    await lt.waitFor(/"event": "done"/, 90_000);
    await assertDownloaded(t, out);
    t.is(await seed.stop('SIGTERM'), 0, seed.output());
  } finally {
    await lt.stop();
    await seed.stop();
  }
});

test('a single-file torrent is served to a python3-libtorrent leecher that has only its magnet (metadata over BEP 9)', async (t) => {
  const blob = randomBytes(3 * PIECE + 17);
  const file = path.join(base, 'blob.bin');
  await writeFile(file, blob);
  // A torrent of the file itself (single-file), made by `btmount create`.
  const torrent = path.join(base, 'blob.torrent');
  const made = await run(process.execPath, [BTMOUNT_BIN, 'create', file, '-o', torrent, '--piece-size', String(PIECE)]);
  t.is(made.code, 0, made.stderr);
  const infoHash = /: ([0-9a-f]{40}) /.exec(made.stdout)![1]!;
  const proc = startProcess(process.execPath, [BTMOUNT_BIN, 'seed', torrent, file, '--port', '0', '--host', '127.0.0.1', '--no-dht']);
  const port = Number((await proc.waitFor(/on port (\d+)/, 30_000))[1]);
  const out = path.join(base, 'magnet-out');
  await mkdir(out);
  const lt = await startLibtorrent('leech', { magnet: `magnet:?xt=urn:btih:${infoHash}`, savePath: out, listen: '127.0.0.5:0', peers: [`127.0.0.1:${port}`] });
  try {
    await lt.waitFor(/"event": "done"/, 90_000);
    t.is(await sha256File(path.join(out, 'blob.bin')), createHash('sha256').update(blob).digest('hex'));
  } finally {
    await lt.stop();
    t.is(await proc.stop('SIGINT'), 0);
  }
});

test('seed refuses a folder that does not match, with a readable error', async (t) => {
  const wrong = path.join(base, 'wrong');
  await mkdir(path.join(wrong, 'a'), { recursive: true });
  await writeFile(path.join(wrong, 'a', '000.bin'), 'not the data');
  const r = await run(process.execPath, [BTMOUNT_BIN, 'seed', ds.torrentPath, wrong, '--port', '0', '--no-dht'], { timeoutMs: 30_000 });
  t.is(r.code, 1);
  t.regex(r.stderr, /^btmount: cannot seed: no data in .* matches/m);
  const missing = await run(process.execPath, [BTMOUNT_BIN, 'seed', ds.torrentPath, path.join(base, 'nope'), '--port', '0', '--no-dht'], { timeoutMs: 30_000 });
  t.is(missing.code, 1);
  t.regex(missing.stderr, /btmount: cannot seed: .*no such file or directory/);
});

test('seed serves what matches when part of the data is damaged: exactly the damaged pieces are withheld, the good ones download', async (t) => {
  const partial = path.join(base, 'partial');
  await run('cp', ['-r', ds.root, partial]);
  // a/001.bin spans pieces 2..5 (from 2 × PIECE + 99 on; piece 5 also holds b/002.bin and c.txt): 4 of 6 damaged.
  await writeFile(path.join(partial, 'a', '001.bin'), Buffer.alloc(3 * PIECE, 7));
  const { layout } = ds.metainfo;
  t.is(layout.pieceCount, 6);
  const proc = startProcess(process.execPath, [BTMOUNT_BIN, 'seed', ds.torrentPath, partial, '--port', '0', '--host', '127.0.0.1', '--no-dht']);
  const storage = new MemoryPieceStorage(layout);
  const leech = new Swarm({ infoHash: ds.metainfo.infoHash, layout, storage, port: 0, host: '127.0.0.1' });
  try {
    const port = Number((await proc.waitFor(/on port (\d+)/, 30_000))[1]);
    t.regex(proc.output(), /warning: 4 of 6 pieces are missing or damaged; serving the other 2/);
    // Our own engine as the leecher: it keeps only pieces whose SHA-1 checks.
    leech.addPeer('127.0.0.1', port);
    await Promise.all([0, 1].map((i) => leech.fetch(i as PieceIndex, 'warm', AbortSignal.timeout(60_000))));
    const source = await readFile(path.join(ds.root, 'a', '000.bin'));
    t.true(storage.get(0 as PieceIndex)!.equals(source.subarray(0, PIECE)), 'piece 0 has the source bytes');
    t.true(storage.get(1 as PieceIndex)!.equals(source.subarray(PIECE, 2 * PIECE)), 'piece 1 has the source bytes');
    // A damaged piece is never offered: asking for it gets nothing.
    const damaged = await leech.fetch(2 as PieceIndex, 'warm', AbortSignal.timeout(3000)).then(() => 'fetched', (e: Error) => e.name);
    t.is(damaged, 'TimeoutError');
    t.false(storage.has(2 as PieceIndex));
  } finally {
    await leech.close();
    t.is(await proc.stop('SIGINT'), 0);
  }
});
