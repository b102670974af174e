import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import { fetchAll, filesFromPieces, freePort, makeDataset, startAria2Seeder, startLibtorrent, type Dataset } from './helpers/peers.js';

// A multi-file dataset with files smaller than, equal to and spanning pieces, nested folders, and an empty file.
const PIECE = 256 * 1024;
const FILES = [
  { path: 'train/000.bin', length: 3 * PIECE + 12_345 },
  { path: 'train/001.bin', length: PIECE },
  { path: 'train/sub/002.bin', length: 777 },
  { path: 'val/003.bin', length: 5 * PIECE - 1 },
  { path: 'labels.csv', length: 40_001 },
];

let base: string;
let ds: Dataset;

test.before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'btmount-swarm-interop-'));
  ds = await makeDataset(base, 'ds', FILES, PIECE);
});

test.after.always(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

function assertSameFiles(t: import('ava').ExecutionContext, storage: MemoryPieceStorage): void {
  const got = filesFromPieces(ds.metainfo, storage);
  t.is(got.size, FILES.length);
  for (const f of ds.files) t.is(got.get(f.path), f.sha256, `sha256 of ${f.path}`);
}

test('downloads a multi-file torrent completely from an aria2c seeder', async (t) => {
  const port = await freePort();
  const aria = await startAria2Seeder(ds, port);
  const storage = new MemoryPieceStorage(ds.metainfo.layout);
  const swarm = new Swarm({ infoHash: ds.metainfo.infoHash, layout: ds.metainfo.layout, storage, port: 0, host: '127.0.0.1' });
  try {
    await swarm.listen();
    swarm.addPeer('127.0.0.1', port);
    await fetchAll(swarm, ds.metainfo.layout.pieceCount, AbortSignal.timeout(60_000));
    assertSameFiles(t, storage);
    const s = swarm.stats();
    t.is(s.hashFailures, 0);
    t.true(s.peers.some((p) => p.address === `127.0.0.1:${port}`));
  } finally {
    await swarm.close();
    await aria.stop();
  }
});

test('downloads a multi-file torrent completely from a python3-libtorrent seeder', async (t) => {
  const lt = await startLibtorrent('seed', { torrentPath: ds.torrentPath, savePath: ds.parent, listen: '127.0.0.2:0' });
  const storage = new MemoryPieceStorage(ds.metainfo.layout);
  const swarm = new Swarm({ infoHash: ds.metainfo.infoHash, layout: ds.metainfo.layout, storage, port: 0, host: '127.0.0.1' });
  try {
    await swarm.listen();
    swarm.addPeer('127.0.0.2', lt.port);
    await fetchAll(swarm, ds.metainfo.layout.pieceCount, AbortSignal.timeout(60_000));
    assertSameFiles(t, storage);
    t.is(swarm.stats().hashFailures, 0);
  } finally {
    await swarm.close();
    await lt.stop();
  }
});
