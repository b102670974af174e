import test, { type ExecutionContext } from 'ava';
import { PieceStore } from '../src/store/piece-store.js';
import { idx, makeTorrent, tempDir } from './helpers/store-fixtures.js';

const KiB = 1024;

async function openStore(t: ExecutionContext, pieces: number, budgetPieces: number) {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 16 * KiB, pieceCount: pieces });
  const store = await PieceStore.open({
    cacheRoot: root,
    infoHash: torrent.infoHash,
    layout: torrent.layout,
    budgetBytes: budgetPieces * 16 * KiB,
  });
  t.teardown(() => store.close());
  return { store, torrent };
}

test('a pinned piece is never evicted, however much is stored after it', async (t) => {
  const { store, torrent } = await openStore(t, 20, 3);
  await store.put(torrent.piece(0));
  const unpin = store.pin(idx(0));
  for (let i = 1; i < 20; i++) t.true(await store.put(torrent.piece(i)));
  t.true(store.has(idx(0)));
  t.true((await store.readBlock(idx(0), 0, 16 * KiB)).equals(torrent.data(0)));
  t.true(store.bytesUsed <= 3 * 16 * KiB);
  unpin();
  // Unpinned, it is the most recent: two more puts evict others first, the third evicts it.
  await store.put(torrent.piece(1));
  await store.put(torrent.piece(2));
  t.true(store.has(idx(0)));
  await store.put(torrent.piece(3));
  t.false(store.has(idx(0)));
});

test('pins nest: a piece stays pinned until every pin is released; unpin is idempotent', async (t) => {
  const { store, torrent } = await openStore(t, 10, 2);
  await store.put(torrent.piece(0));
  const a = store.pin(idx(0));
  const b = store.pin(idx(0));
  a();
  a(); // a second call of the same unpin must not release b's pin
  t.true(store.isPinned(idx(0)));
  for (let i = 1; i < 6; i++) await store.put(torrent.piece(i));
  t.true(store.has(idx(0)));
  b();
  t.false(store.isPinned(idx(0)));
  for (let i = 6; i < 9; i++) await store.put(torrent.piece(i));
  t.false(store.has(idx(0)));
});

test('a piece pinned before it arrives is kept when it arrives', async (t) => {
  const { store, torrent } = await openStore(t, 10, 2);
  const unpin = store.pin(idx(7));
  t.false(store.has(idx(7)));
  t.true(await store.put(torrent.piece(7)));
  for (let i = 0; i < 5; i++) await store.put(torrent.piece(i));
  t.true(store.has(idx(7)));
  unpin();
});

test('evict() refuses a pinned piece and removes an unpinned one', async (t) => {
  const { store, torrent } = await openStore(t, 4, 4);
  await store.put(torrent.piece(1));
  await store.put(torrent.piece(2));
  const unpin = store.pin(idx(1));
  await t.throwsAsync(store.evict(idx(1)), { name: 'PiecePinnedError' });
  t.true(store.has(idx(1)));
  await store.evict(idx(2));
  t.false(store.has(idx(2)));
  unpin();
  await store.evict(idx(1));
  t.false(store.has(idx(1)));
  t.is(store.bytesUsed, 0);
});

test('pinning more than the budget holds is a clear error, not a thrash', async (t) => {
  const { store } = await openStore(t, 10, 3);
  const unpins = [0, 1, 2].map((i) => store.pin(idx(i)));
  const err = t.throws(() => store.pin(idx(3)), { name: 'StoreBudgetError' });
  t.regex(err!.message, /cannot hold the 4 pieces .* raise --cache-size to at least 64 KiB/);
  t.is(store.pinnedBytes, 3 * 16 * KiB);
  t.notThrows(() => store.pin(idx(2))()); // nesting an existing pin costs nothing
  unpins[0]!();
  t.notThrows(() => store.pin(idx(3)));
});

test('a put with every held piece pinned is dropped (false) and logged, not stored over budget', async (t) => {
  const { store, torrent } = await openStore(t, 10, 2);
  await store.put(torrent.piece(0));
  await store.put(torrent.piece(1));
  store.pin(idx(0));
  store.pin(idx(1));
  t.false(await store.put(torrent.piece(2)));
  t.false(store.has(idx(2)));
  t.is(store.bytesUsed, 2 * 16 * KiB);
  t.is(store.stats.droppedOnWrite, 1);
});

test('a budget smaller than one piece is refused at open', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 64 * KiB, pieceCount: 2 });
  const err = await t.throwsAsync(
    PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 32 * KiB }),
    { name: 'StoreBudgetError' },
  );
  t.regex(err!.message, /cache size 32 KiB is smaller than one piece of this torrent \(64 KiB\)/);
});
