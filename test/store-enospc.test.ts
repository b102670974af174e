import test from 'ava';
import { PieceStore } from '../src/store/piece-store.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import { idx, makeTorrent, memoryLogger, readSlotTable } from './helpers/store-fixtures.js';
import { mountTmpfs, tmpfsTest } from './helpers/tmpfs.js';

const KiB = 1024;
const MiB = 1024 * KiB;

tmpfsTest('on a full disk (2 MiB tmpfs, budget far larger) puts evict and retry, then drop; nothing corrupt is kept', async (t) => {
  const root = await mountTmpfs(t, '2m');
  const torrent = makeTorrent({ pieceLength: 256 * KiB, pieceCount: 24 });
  const { log, lines } = memoryLogger();
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 64 * MiB, log });
  t.teardown(() => store.close());
  const evicted: number[] = [];
  store.on('evicted', (i) => evicted.push(i));

  // 24 × 256 KiB = 6 MiB into 2 MiB: each put that hits ENOSPC evicts the oldest pieces and retries.
  for (let i = 0; i < 16; i++) t.true(await store.put(torrent.piece(i)), `put ${i}`);
  t.true(store.stats.noSpaceErrors > 0, 'the disk did fill up');
  t.true(evicted.length > 0);
  t.true(store.effectiveBudgetBytes < 2 * MiB, 'the cache now stays below what the disk held');
  t.true(lines.some((l) => /disk full while storing piece/.test(l.msg)));
  t.true(store.bytesUsed <= 2 * MiB);
  t.true(store.has(idx(15)), 'the newest piece is kept');
  for (const i of store.haveIndices()) {
    const data = await store.readBlock(i, 0, 256 * KiB);
    t.truthy(VerifiedPiece.check(torrent.layout, i, data), `piece ${i} verifies`);
  }

  // Now pin everything held: nothing can be evicted, so a put that does not fit is dropped.
  for (const i of [...store.haveIndices()]) store.pin(i);
  const before = [...store.haveIndices()];
  const droppedBefore = store.stats.droppedOnWrite;
  const results: boolean[] = [];
  for (let i = 16; i < 24; i++) results.push(await store.put(torrent.piece(i)));
  t.true(results.includes(false), `puts: ${results}`);
  t.true(store.stats.droppedOnWrite > droppedBefore);
  t.true(lines.some((l) => l.level >= 40 && /piece \d+ dropped/.test(l.msg)), 'the drop is logged at warn');
  for (const i of before) t.true(store.has(i), `pinned piece ${i} kept`);
  for (const i of store.haveIndices()) {
    t.truthy(VerifiedPiece.check(torrent.layout, i, await store.readBlock(i, 0, 256 * KiB)));
  }
  // What a reopen finds is exactly what was held, and all of it intact.
  const held = [...store.haveIndices()];
  await store.close();
  const again = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 64 * MiB });
  t.teardown(() => again.close());
  t.deepEqual([...again.haveIndices()], held);
  for (const i of held) t.truthy(VerifiedPiece.check(torrent.layout, i, await again.readBlock(i, 0, 256 * KiB)));
  t.is(again.stats.droppedCorrupt, 0);
});

tmpfsTest('a write that fails on a full disk with nothing to evict is dropped cleanly: false, logged, no partial file', async (t) => {
  const root = await mountTmpfs(t, '1m');
  // One piece larger than the whole file system: evicting cannot help.
  const torrent = makeTorrent({ pieceLength: 2 * MiB, pieceCount: 2 });
  const { log, lines } = memoryLogger();
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 8 * MiB, log });
  t.teardown(() => store.close());
  t.false(await store.put(torrent.piece(0)));
  t.false(store.has(idx(0)));
  t.is(store.bytesUsed, 0);
  t.is(store.stats.noSpaceErrors, 1);
  t.true(lines.some((l) => l.level >= 40 && /piece 0 dropped: the disk is full and no piece can be evicted \(ENOSPC\)/.test(l.msg)));
  await t.throwsAsync(store.readBlock(idx(0), 0, 1), { name: 'PieceMissingError' });
  t.deepEqual((await readSlotTable(store.dir)).slots, [-1, -1], 'the half-written slot is named by no entry');
});
