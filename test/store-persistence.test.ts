import test from 'ava';
import { appendFile, mkdir, readdir, truncate, unlink, writeFile, open } from 'node:fs/promises';
import path from 'node:path';
import { PieceStore } from '../src/store/piece-store.js';
import { verifyPiece } from '../src/store/verified-piece.js';
import { idx, makeTorrent, memoryLogger, StoreChild, tempDir, type TestTorrent } from './helpers/store-fixtures.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Reads every held piece back in full and checks it against the torrent's SHA-1. */
async function everyHeldPieceVerifies(store: PieceStore, torrent: TestTorrent): Promise<number[]> {
  const bad: number[] = [];
  for (const i of [...store.haveIndices()]) {
    try {
      const data = await store.readBlock(i, 0, torrent.layout.pieceSize(i));
      if (!verifyPiece(torrent.layout, i, data)) bad.push(i);
    } catch (err) {
      if ((err as Error).name !== 'PieceMissingError') throw err;
    }
  }
  return bad;
}

test('pieces are served again after a clean close, checked once per piece on first read', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 64 * KiB, pieceCount: 6, lastPieceLength: 5000 });
  const opts = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: MiB };
  const first = await PieceStore.open(opts);
  for (const i of [0, 2, 5]) t.true(await first.put(torrent.piece(i)));
  await first.close();
  await t.throwsAsync(first.readBlock(idx(0), 0, 1), { name: 'StoreClosedError' });

  const second = await PieceStore.open(opts);
  t.teardown(() => second.close());
  t.deepEqual([...second.haveIndices()], [0, 2, 5]);
  t.is(second.haveCount, 3);
  t.is(second.bytesUsed, 2 * 64 * KiB + 5000);
  for (let n = 0; n < 5; n++) {
    t.true((await second.readBlock(idx(2), 4096, 4096)).equals(torrent.data(2).subarray(4096, 8192)));
  }
  t.is(second.stats.verifiedOnRead, 1, 'five reads of one piece check it once');
  t.true((await second.readBlock(idx(5), 0, 5000)).equals(torrent.data(5)));
  t.is(second.stats.verifiedOnRead, 2);
  t.deepEqual(await everyHeldPieceVerifies(second, torrent), []);
  t.is(second.stats.verifiedOnRead, 3);
});

test('a corrupt piece file is detected on first read, dropped and can be stored again', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 64 * KiB, pieceCount: 8 });
  const opts = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: MiB };
  const first = await PieceStore.open(opts);
  for (let i = 0; i < 6; i++) await first.put(torrent.piece(i));
  const file = (i: number) => path.join(first.dir, 'pieces', '0', String(i));
  await first.close();

  // One flipped bit, a torn (short) file, an empty file, a file with bytes appended, a deleted file.
  const fh = await open(file(0), 'r+');
  const one = Buffer.alloc(1);
  await fh.read(one, 0, 1, 40_000);
  one[0] = one[0]! ^ 0x10;
  await fh.write(one, 0, 1, 40_000);
  await fh.close();
  await truncate(file(1), 1000);
  await truncate(file(2), 0);
  await appendFile(file(3), 'x');
  await unlink(file(4));

  const { log, lines } = memoryLogger();
  const second = await PieceStore.open({ ...opts, log });
  t.teardown(() => second.close());
  const evicted: number[] = [];
  second.on('evicted', (i) => evicted.push(i));
  t.deepEqual([...second.haveIndices()], [0, 1, 2, 3, 5]);
  for (const i of [0, 1, 2, 3]) {
    const err = await t.throwsAsync(second.readBlock(idx(i), 0, 4096), { name: 'PieceMissingError' });
    t.regex(err!.message, /corrupt on disk and has been dropped/);
    t.false(second.has(idx(i)));
    await t.throwsAsync(second.readBlock(idx(i), 0, 4096), { name: 'PieceMissingError', message: /not in the cache/ });
  }
  t.deepEqual(evicted, [0, 1, 2, 3]);
  t.is(second.stats.droppedCorrupt, 4);
  t.is(lines.filter((l) => /is damaged/.test(l.msg)).length, 4);
  t.deepEqual(await readdir(path.join(second.dir, 'pieces', '0')), ['5']);
  t.true((await second.readBlock(idx(5), 0, 64 * KiB)).equals(torrent.data(5)));
  // Re-fetched: stored again and served.
  t.true(await second.put(torrent.piece(0)));
  t.true((await second.readBlock(idx(0), 0, 64 * KiB)).equals(torrent.data(0)));
});

test('leftover temp files and junk in the piece directory are cleaned at open, never served', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 16 * KiB, pieceCount: 4000 });
  const opts = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 64 * MiB };
  const first = await PieceStore.open(opts);
  await first.put(torrent.piece(1));
  await first.put(torrent.piece(3000)); // shard 2
  const dir = first.dir;
  await first.close();
  await writeFile(path.join(dir, 'incoming', '2.0'), torrent.data(2).subarray(0, 100));
  await writeFile(path.join(dir, 'pieces', '0', '007'), 'not a canonical name');
  await writeFile(path.join(dir, 'pieces', '0', '3000'), 'wrong shard');
  await writeFile(path.join(dir, 'pieces', '0', '99999'), 'no such piece');
  await mkdir(path.join(dir, 'pieces', 'junk'));
  await writeFile(path.join(dir, 'recency'), 'garbage');

  const second = await PieceStore.open(opts);
  t.teardown(() => second.close());
  t.deepEqual([...second.haveIndices()], [1, 3000]);
  t.deepEqual(await readdir(path.join(dir, 'incoming')), []);
  t.deepEqual((await readdir(path.join(dir, 'pieces', '0'))).sort(), ['1']);
  t.deepEqual((await readdir(path.join(dir, 'pieces'))).sort(), ['0', '2']);
  t.deepEqual(await everyHeldPieceVerifies(second, torrent), []);
});

test('after kill -9 of a writer mid-piece, a reopen serves every acknowledged piece and only intact ones', async (t) => {
  const root = await tempDir(t);
  const spec = { pieceLength: 4 * MiB, pieceCount: 40, seed: 7 };
  const torrent = makeTorrent(spec);
  const budgetBytes = 64 * MiB; // 16 pieces: the writers also evict while they are killed
  const acknowledged = new Set<number>();
  /** What the writers' stores held when they were killed, by their own events. */
  const expected = new Set<number>();
  let tempFilesSeen = 0;
  for (let round = 0; round < 4; round++) {
    const order = [...Array(spec.pieceCount).keys()].sort((a, b) => ((a * 7919 + round * 31) % 41) - ((b * 7919 + round * 31) % 41));
    const child = new StoreChild({ mode: 'write', cacheRoot: root, ...spec, budgetBytes, order, concurrency: 4 });
    await child.waitFor((lines) => lines.filter((l) => l.startsWith('added')).length >= 3 + round);
    await new Promise((r) => setTimeout(r, 7 * round));
    await child.kill('SIGKILL');
    t.is(child.proc.signalCode, 'SIGKILL', 'the writer was killed, not finished');
    for (const line of child.lines) {
      const m = /^(added|evicted) (\d+)$/.exec(line);
      if (!m) continue;
      if (m[1] === 'added') {
        acknowledged.add(Number(m[2]));
        expected.add(Number(m[2]));
      } else {
        expected.delete(Number(m[2]));
      }
    }
    const dir = path.join(root, torrent.infoHash);
    tempFilesSeen += (await readdir(path.join(dir, 'incoming'))).length;

    const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes });
    try {
      t.deepEqual(await readdir(path.join(dir, 'incoming')), [], 'half-written temp files are removed');
      const held = new Set<number>(store.haveIndices());
      const lost = [...expected].filter((i) => !held.has(i));
      t.deepEqual(lost, [], 'every piece the writer had stored (and not evicted) is there');
      t.deepEqual(await everyHeldPieceVerifies(store, torrent), [], 'every piece served verifies');
      t.is(store.stats.droppedCorrupt, 0);
      t.is(store.stats.verifiedOnRead, held.size);
      // What this open holds is what the next writer starts from.
      expected.clear();
      for (const i of store.haveIndices()) expected.add(i);
    } finally {
      await store.close();
    }
  }
  t.log(`${acknowledged.size} pieces acknowledged; ${tempFilesSeen} half-written temp files found after the kills`);
  t.true(tempFilesSeen > 0, 'at least one kill landed in the middle of a piece write');
});

test('a torn piece file (renamed, then cut short by a power loss) is never served', async (t) => {
  // A process crash cannot produce this (the rename comes after the write), but a power
  // loss without fsync can: the name is on disk, the data is not.
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 256 * KiB, pieceCount: 3 });
  const opts = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: MiB };
  const first = await PieceStore.open(opts);
  await first.put(torrent.piece(1));
  const dir = first.dir;
  await first.close();
  const fh = await open(path.join(dir, 'pieces', '0', '1'), 'r+');
  await fh.write(Buffer.alloc(128 * KiB), 0, 128 * KiB, 128 * KiB); // second half zeroed, size unchanged
  await fh.close();
  const second = await PieceStore.open(opts);
  t.teardown(() => second.close());
  t.true(second.has(idx(1)));
  await t.throwsAsync(second.readBlock(idx(1), 0, 4096), { name: 'PieceMissingError' });
  t.false(second.has(idx(1)));
});
