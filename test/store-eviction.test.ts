import test from 'ava';
import fc from 'fast-check';
import { LruList } from '../src/store/lru-list.js';
import { PieceStore } from '../src/store/piece-store.js';
import { idx, makeTorrent, pieceBytesOnDisk, tempDir, usedBytes } from './helpers/store-fixtures.js';
import { mountTmpfs, tmpfsTest } from './helpers/tmpfs.js';

const KiB = 1024;

test('LruList: touch, remove and oldest follow recency', (t) => {
  const lru = new LruList(10);
  t.is(lru.oldest(), -1);
  for (const i of [3, 1, 4, 5]) lru.touch(i);
  t.deepEqual([...lru.values()], [3, 1, 4, 5]);
  lru.touch(3);
  t.deepEqual([...lru.values()], [1, 4, 5, 3]);
  t.true(lru.remove(4));
  t.false(lru.remove(4));
  lru.pushOldest(9);
  t.deepEqual([...lru.values()], [9, 1, 5, 3]);
  t.is(lru.oldest(), 9);
  t.is(lru.size, 4);
});

test('evicts the least recently used piece first and never exceeds the byte budget', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 64 * KiB, pieceCount: 12, lastPieceLength: 10 * KiB });
  const budget = 4 * 64 * KiB;
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: budget });
  t.teardown(() => store.close());
  const evicted: number[] = [];
  const added: number[] = [];
  store.on('evicted', (i) => evicted.push(i));
  store.on('added', (i) => added.push(i));

  for (const i of [0, 1, 2, 3]) t.true(await store.put(torrent.piece(i)));
  t.deepEqual(evicted, []);
  t.is(store.bytesUsed, budget);
  await store.readBlock(idx(0), 0, 16); // 0 becomes the most recent: 1 is now the oldest
  t.true(await store.put(torrent.piece(4)));
  t.deepEqual(evicted, [1]);
  t.true(await store.put(torrent.piece(0))); // already held: a touch, not a write
  t.true(await store.put(torrent.piece(5)));
  t.deepEqual(evicted, [1, 2]);
  t.deepEqual([...store.haveIndices()].sort((a, b) => a - b), [0, 3, 4, 5]);
  t.deepEqual(added, [0, 1, 2, 3, 4, 5]);

  // The short last piece still takes a slot of one piece length.
  t.true(await store.put(torrent.piece(11)));
  t.deepEqual(evicted, [1, 2, 3]);
  for (const i of [6, 7, 8, 9, 10]) {
    t.true(await store.put(torrent.piece(i)));
    t.true(store.bytesUsed <= budget);
    t.true((await pieceBytesOnDisk(store.dir)) <= budget, 'the data file stays within the budget');
  }
  t.deepEqual(evicted, [1, 2, 3, 4, 0, 5, 11, 6]); // 0 was touched by its second put
  t.is(store.haveCount, [...store.haveIndices()].length);
  t.true(store.has(idx(10)));
  t.false(store.has(idx(1)));
  await t.throwsAsync(store.readBlock(idx(1), 0, 16), { name: 'PieceMissingError' });
});

tmpfsTest('concurrent puts stay within the budget on disk at every moment (sampled on a tmpfs)', async (t) => {
  // statfs on a tmpfs is an exact, instantaneous count of bytes in use; walking directories is not.
  const root = await mountTmpfs(t, '16m');
  const torrent = makeTorrent({ pieceLength: 128 * KiB, pieceCount: 40 });
  const budget = 5 * 128 * KiB;
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: budget });
  t.teardown(() => store.close());
  const baseline = await usedBytes(root); // lock + meta.json
  let maxSeen = 0;
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxSeen = Math.max(maxSeen, (await usedBytes(root)) - baseline);
      samples++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => store.put(torrent.piece(i))));
  sampling = false;
  await sampler;
  t.true(results.every(Boolean));
  t.log(`${samples} samples, at most ${maxSeen} bytes in use above the baseline`);
  t.true(maxSeen <= budget, `saw ${maxSeen} bytes in use, budget ${budget}`);
  t.true(maxSeen >= budget - 128 * KiB, 'the sampler saw the cache fill up');
  t.is(store.bytesUsed, budget);
  t.is(await pieceBytesOnDisk(store.dir), budget);
});

test('the LRU order survives a clean close', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 32 * KiB, pieceCount: 8 });
  const opts = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 4 * 32 * KiB };
  const first = await PieceStore.open(opts);
  for (const i of [5, 2, 7, 1]) await first.put(torrent.piece(i));
  await first.readBlock(idx(5), 0, 1); // order now, oldest first: 2, 7, 1, 5
  await first.close();

  const second = await PieceStore.open(opts);
  t.teardown(() => second.close());
  const evicted: number[] = [];
  second.on('evicted', (i) => evicted.push(i));
  await second.put(torrent.piece(0));
  await second.put(torrent.piece(3));
  t.deepEqual(evicted, [2, 7]);
});

test('a budget below what is already on disk drops pieces beyond it at open and shrinks the data file', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 32 * KiB, pieceCount: 8 });
  const base = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout };
  const first = await PieceStore.open({ ...base, budgetBytes: 8 * 32 * KiB });
  for (let i = 0; i < 8; i++) await first.put(torrent.piece(i));
  await first.close();
  const second = await PieceStore.open({ ...base, budgetBytes: 3 * 32 * KiB });
  t.teardown(() => second.close());
  t.is(second.haveCount, 3);
  t.is(second.capacity, 3);
  t.true((await pieceBytesOnDisk(second.dir)) <= 3 * 32 * KiB);
  for (const i of second.haveIndices()) t.true((await second.readBlock(i, 0, 32 * KiB)).equals(torrent.data(i)));
  t.is(second.stats.droppedCorrupt, 0);
});

test('random put/read/pin/evict sequences match an LRU model', async (t) => {
  const torrent = makeTorrent({ pieceLength: 4 * KiB, pieceCount: 10, lastPieceLength: 1000 });
  const size = (i: number): number => torrent.layout.pieceSize(idx(i));
  const budget = 5.5 * 4 * KiB; // 5 slots of one piece length; the short last piece takes one too
  const capacity = 5;
  const op = fc.oneof(
    fc.record({ kind: fc.constant('put' as const), i: fc.nat(9) }),
    fc.record({ kind: fc.constant('read' as const), i: fc.nat(9) }),
    fc.record({ kind: fc.constant('pin' as const), i: fc.nat(9) }),
    fc.record({ kind: fc.constant('unpin' as const), i: fc.nat(9) }),
    fc.record({ kind: fc.constant('evict' as const), i: fc.nat(9) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
      const root = await tempDir(t);
      const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: budget });
      try {
        // Model: `order` holds held unpinned pieces, oldest first; `held` all held pieces.
        const held = new Set<number>();
        let order: number[] = [];
        const pins = new Map<number, Array<() => void>>();
        const used = (): number => [...held].reduce((s, i) => s + size(i), 0);
        for (const o of ops) {
          if (o.kind === 'put') {
            if (held.has(o.i)) {
              if (order.includes(o.i)) order = [...order.filter((x) => x !== o.i), o.i];
              t.true(await store.put(torrent.piece(o.i)));
              continue;
            }
            while (held.size >= capacity && order.length > 0) held.delete(order.shift()!);
            const fits = held.size < capacity;
            t.is(await store.put(torrent.piece(o.i)), fits);
            if (fits) {
              held.add(o.i);
              if (!pins.has(o.i)) order.push(o.i);
            }
          } else if (o.kind === 'read') {
            if (held.has(o.i)) {
              const buf = await store.readBlock(idx(o.i), 0, size(o.i));
              t.true(buf.equals(torrent.data(o.i)));
              if (order.includes(o.i)) order = [...order.filter((x) => x !== o.i), o.i];
            } else {
              await t.throwsAsync(store.readBlock(idx(o.i), 0, 1), { name: 'PieceMissingError' });
            }
          } else if (o.kind === 'pin') {
            if (!pins.has(o.i) && pins.size + 1 > capacity) {
              t.throws(() => store.pin(idx(o.i)), { name: 'StoreBudgetError' });
              continue;
            }
            const list = pins.get(o.i) ?? [];
            list.push(store.pin(idx(o.i)));
            pins.set(o.i, list);
            order = order.filter((x) => x !== o.i);
          } else if (o.kind === 'unpin') {
            const list = pins.get(o.i);
            if (!list) continue;
            list.pop()!();
            if (list.length === 0) {
              pins.delete(o.i);
              if (held.has(o.i)) order.push(o.i);
            }
          } else {
            if (pins.has(o.i)) {
              await t.throwsAsync(store.evict(idx(o.i)), { name: 'PiecePinnedError' });
            } else {
              await store.evict(idx(o.i));
              held.delete(o.i);
              order = order.filter((x) => x !== o.i);
            }
          }
          for (let i = 0; i < 10; i++) if (store.has(idx(i)) !== held.has(i)) return false;
          if (store.bytesUsed !== used() || store.bytesUsed > budget) return false;
        }
        return (await pieceBytesOnDisk(store.dir)) <= capacity * 4 * KiB;
      } finally {
        await store.close();
      }
    }),
    { numRuns: 40 },
  );
  t.pass();
});
