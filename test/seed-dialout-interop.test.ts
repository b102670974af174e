/**
 * `btmount seed --peer` dialing out to real leechers (issue 13 item 2): the
 * outgoing connections read through a reused socket buffer, which a bitfield
 * kept as a view by the Wire used to corrupt, stalling aria2c after its first
 * few hundred pieces.
 */
import test from 'ava';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  BTMOUNT_BIN,
  freePort,
  makeDataset,
  sha256File,
  startLibtorrent,
  startListeningAria2Leecher,
  startProcess,
  type Dataset,
  type Proc,
} from './helpers/peers.js';

// Small pieces, many of them: the leecher sends a "have" for each one it gets.
const PIECE = 16 * 1024;
const FILES = [
  { path: 'a/000.bin', length: 3 * 1024 * 1024 + 5 },
  { path: 'b/001.bin', length: 2 * 1024 * 1024 },
  { path: 'c.txt', length: 1 },
];

let base: string;
let ds: Dataset;

test.before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'btmount-dialout-'));
  ds = await makeDataset(base, 'ds', FILES, PIECE);
});

test.after.always(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

function startSeed(peer: string): Proc {
  return startProcess(process.execPath, [BTMOUNT_BIN, 'seed', ds.torrentPath, ds.root, '--port', '0', '--host', '127.0.0.1', '--no-dht', '--peer', peer]);
}

async function assertDownloaded(t: import('ava').ExecutionContext, dir: string): Promise<void> {
  for (const f of ds.files) t.is(await sha256File(path.join(dir, 'ds', f.path)), f.sha256, `sha256 of ${f.path}`);
}

test('btmount seed --peer dials an aria2c leecher, which completes with the right bytes', async (t) => {
  const out = path.join(base, 'aria-out');
  await mkdir(out);
  const port = await freePort();
  const aria = await startListeningAria2Leecher(ds.torrentPath, out, port);
  const seed = startSeed(`127.0.0.1:${port}`);
  try {
    const code = await Promise.race([aria.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000).unref())]);
    t.is(code, 0, `aria2c: ${aria.output().slice(-1500)}\nseed: ${seed.output().slice(-1500)}`);
    await assertDownloaded(t, out);
  } finally {
    await aria.stop();
    await seed.stop();
  }
});

test('btmount seed --peer dials a python3-libtorrent leecher, which completes with the right bytes', async (t) => {
  const out = path.join(base, 'lt-out');
  await mkdir(out);
  const lt = await startLibtorrent('leech', { torrentPath: ds.torrentPath, savePath: out, listen: '127.0.0.3:0' });
  const seed = startSeed(`127.0.0.3:${lt.port}`);
  try {
    await lt.waitFor(/"event": "done"/, 60_000);
    await assertDownloaded(t, out);
  } finally {
    await lt.stop();
    await seed.stop();
  }
});
