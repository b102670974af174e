import test from 'ava';
import { open, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PieceStore } from '../src/store/piece-store.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import {
  idx,
  makeTorrent,
  memoryLogger,
  pieceOffset,
  readSlotTable,
  StoreChild,
  tempDir,
  writeSlotEntry,
  type TestTorrent,
} from './helpers/store-fixtures.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Reads every held piece back in full and checks it against the torrent's SHA-1. */
async function everyHeldPieceVerifies(store: PieceStore, torrent: TestTorrent): Promise<number[]> {
  const bad: number[] = [];
  for (const i of [...store.haveIndices()]) {
    try {
      const data = await store.readBlock(i, 0, torrent.layout.pieceSize(i));
      if (!VerifiedPiece.check(torrent.layout, i, data)) bad.push(i);
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

test('a damaged piece on disk is detected on first read, dropped and can be stored again', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 64 * KiB, pieceCount: 8 });
  const opts = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: MiB };
  const first = await PieceStore.open(opts);
  for (let i = 0; i < 6; i++) await first.put(torrent.piece(i));
  const dir = first.dir;
  await first.close();
  const data = path.join(dir, 'data');
  const { slots } = await readSlotTable(dir);
  t.deepEqual(slots.slice(0, 6), [0, 1, 2, 3, 4, 5], 'pieces written in order fill slots in order');

  const fh = await open(data, 'r+');
  // 0: one flipped bit.
  const one = Buffer.alloc(1);
  const at0 = (await pieceOffset(dir, 0)) + 40_000;
  await fh.read(one, 0, 1, at0);
  one[0] = one[0]! ^ 0x10;
  await fh.write(one, 0, 1, at0);
  // 1: a zeroed run in the middle.
  await fh.write(Buffer.alloc(1000), 0, 1000, (await pieceOffset(dir, 1)) + 5000);
  await fh.close();
  // 2: its slot names another piece (7), whose bytes are not there.
  await writeSlotEntry(dir, slots.indexOf(2), 7);
  // 5: the data file is cut short inside the last slot.
  await truncate(data, (await pieceOffset(dir, 5)) + 1000);
  // 3: named twice (slot 6 claims it too): the second entry is ignored.
  await writeSlotEntry(dir, 6, 3);

  const { log, lines } = memoryLogger();
  const second = await PieceStore.open({ ...opts, log });
  t.teardown(() => second.close());
  const evicted: number[] = [];
  second.on('evicted', (i) => evicted.push(i));
  t.deepEqual([...second.haveIndices()], [0, 1, 3, 4, 5, 7]);
  for (const i of [0, 1, 7, 5]) {
    const err = await t.throwsAsync(second.readBlock(idx(i), 0, 4096), { name: 'PieceMissingError' });
    t.regex(err!.message, /corrupt on disk and has been dropped/);
    t.false(second.has(idx(i)));
    await t.throwsAsync(second.readBlock(idx(i), 0, 4096), { name: 'PieceMissingError', message: /not in the cache/ });
  }
  t.deepEqual(evicted, [0, 1, 7, 5]);
  t.is(second.stats.droppedCorrupt, 4);
  t.is(lines.filter((l) => /is damaged/.test(l.msg)).length, 4);
  for (const i of [3, 4]) t.true((await second.readBlock(idx(i), 0, 64 * KiB)).equals(torrent.data(i)));
  t.deepEqual((await readSlotTable(dir)).slots.slice(0, 8), [-1, -1, -1, 3, 4, -1, -1, -1], 'dropped and duplicate entries are cleared');
  // Re-fetched: stored again and served.
  t.true(await second.put(torrent.piece(0)));
  t.true((await second.readBlock(idx(0), 0, 64 * KiB)).equals(torrent.data(0)));
});

test('junk in the slot table is ignored, never served', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 16 * KiB, pieceCount: 40 });
  const opts = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 8 * 16 * KiB };
  const first = await PieceStore.open(opts);
  await first.put(torrent.piece(1));
  await first.put(torrent.piece(30));
  const dir = first.dir;
  await first.close();
  await writeSlotEntry(dir, 2, 40); // no such piece
  await writeSlotEntry(dir, 3, -7);
  await writeSlotEntry(dir, 4, 2 ** 31 - 1);
  await writeFile(path.join(dir, 'recency'), 'garbage');

  const second = await PieceStore.open(opts);
  t.deepEqual([...second.haveIndices()], [1, 30]);
  t.deepEqual(await everyHeldPieceVerifies(second, torrent), []);
  await second.close();

  // A table with a foreign header: the cache starts empty rather than guessing.
  const fh = await open(path.join(dir, 'slots'), 'r+');
  await fh.write(Buffer.from('NOTSLOTS'), 0, 8, 0);
  await fh.close();
  const third = await PieceStore.open(opts);
  t.teardown(() => third.close());
  t.is(third.haveCount, 0);
  t.is((await stat(path.join(dir, 'data'))).size, 0);
});

test('after kill -9 of a writer mid-piece, a reopen serves every acknowledged piece and only intact ones', async (t) => {
  const root = await tempDir(t);
  const spec = { pieceLength: 4 * MiB, pieceCount: 40, seed: 7 };
  const torrent = makeTorrent(spec);
  const budgetBytes = 64 * MiB; // 16 pieces: the writers also evict while they are killed
  const acknowledged = new Set<number>();
  /** What the writers' stores held when they were killed, by their own events. */
  const expected = new Set<number>();
  let writesInFlightAtKill = 0;
  for (let round = 0; round < 4; round++) {
    const order = [...Array(spec.pieceCount).keys()].sort((a, b) => ((a * 7919 + round * 31) % 41) - ((b * 7919 + round * 31) % 41));
    const child = new StoreChild({ mode: 'write', cacheRoot: root, ...spec, budgetBytes, order, concurrency: 4 });
    const linesBefore = child.lines.length;
    await child.waitFor((lines) => lines.filter((l) => l.startsWith('added')).length >= 3 + round);
    await new Promise((r) => setTimeout(r, 7 * round));
    await child.kill('SIGKILL');
    t.is(child.proc.signalCode, 'SIGKILL', 'the writer was killed, not finished');
    // Pieces whose put had started but not completed when the kill landed.
    const started = new Set<number>();
    for (const line of child.lines.slice(linesBefore)) {
      const m = /^(put|added) (\d+)$/.exec(line);
      if (m?.[1] === 'put') started.add(Number(m[2]));
      else if (m) started.delete(Number(m[2]));
    }
    writesInFlightAtKill += started.size;
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

    const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes });
    try {
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
  t.log(`${acknowledged.size} pieces acknowledged; ${writesInFlightAtKill} piece writes were in flight at the kills`);
  t.true(writesInFlightAtKill > 0, 'the kills landed while pieces were being written');
});

test('a torn piece (its slot-table entry reached the disk, half its bytes did not) is never served', async (t) => {
  // A process crash cannot produce this (the entry is written after the data), but a
  // power loss without fsync can: the kernel may write back the entry before the data.
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 256 * KiB, pieceCount: 3 });
  const opts = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: MiB };
  const first = await PieceStore.open(opts);
  await first.put(torrent.piece(1));
  const dir = first.dir;
  await first.close();
  const fh = await open(path.join(dir, 'data'), 'r+');
  await fh.write(Buffer.alloc(128 * KiB), 0, 128 * KiB, (await pieceOffset(dir, 1)) + 128 * KiB); // second half zeroed
  await fh.close();
  const second = await PieceStore.open(opts);
  t.teardown(() => second.close());
  t.true(second.has(idx(1)));
  await t.throwsAsync(second.readBlock(idx(1), 0, 4096), { name: 'PieceMissingError' });
  t.false(second.has(idx(1)));
});
