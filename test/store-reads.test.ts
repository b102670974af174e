import test from 'ava';
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { PieceStore } from '../src/store/piece-store.js';
import { idx, makeTorrent, tempDir } from './helpers/store-fixtures.js';

const KiB = 1024;
const MiB = 1024 * KiB;

async function openFdCount(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

test('readBlock returns exactly the requested bytes, and rejects ranges outside the piece', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 64 * KiB, pieceCount: 3, lastPieceLength: 3000 });
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: MiB });
  t.teardown(() => store.close());
  await store.put(torrent.piece(0));
  await store.put(torrent.piece(2));
  const data = torrent.data(0);
  for (const [off, len] of [[0, 1], [0, 64 * KiB], [65535, 1], [12345, 4096], [100, 0]] as const) {
    t.true((await store.readBlock(idx(0), off, len)).equals(data.subarray(off, off + len)), `${off}+${len}`);
  }
  t.true((await store.readBlock(idx(2), 2000, 1000)).equals(torrent.data(2).subarray(2000)));
  for (const [i, off, len] of [[0, 64 * KiB, 1], [0, -1, 10], [0, 0, 64 * KiB + 1], [2, 2999, 2], [0, 1.5, 1], [3, 0, 1], [-1, 0, 1]] as const) {
    await t.throwsAsync(store.readBlock(idx(i), off, len), { instanceOf: RangeError }, `${i}:${off}+${len}`);
  }
  await t.throwsAsync(store.readBlock(idx(1), 0, 1), { name: 'PieceMissingError', message: 'piece 1 is not in the cache' });
});

test('without piece memory, a 4 KiB read does not copy the whole piece', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 4 * MiB, pieceCount: 2 });
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 16 * MiB, recentPieceBytes: 0 });
  t.teardown(() => store.close());
  await store.put(torrent.piece(1));
  const block = await store.readBlock(idx(1), MiB, 4096);
  t.true(block.equals(torrent.data(1).subarray(MiB, MiB + 4096)));
  t.true(block.buffer.byteLength < 64 * KiB, `backing store is ${block.buffer.byteLength} bytes`);
});

/** Overwrites the store's data file with zeros behind its back: what it serves afterwards came from memory. */
async function zeroDataFile(store: PieceStore): Promise<void> {
  const file = await open(path.join(store.dir, 'data'), 'r+');
  const { size } = await file.stat();
  await file.write(Buffer.alloc(size), 0, size, 0);
  await file.close();
}

test('blocks of pieces just stored are served from memory, a copy the caller may reuse; the memory is bounded', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 64 * KiB, pieceCount: 8 });
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: MiB, recentPieceBytes: 4 * 64 * KiB });
  t.teardown(() => store.close());
  for (let i = 0; i < 8; i++) {
    const piece = torrent.piece(i);
    await store.put(piece);
    piece.data.fill(0xee); // the swarm reuses its buffer once put settles
  }
  await zeroDataFile(store);
  // The last four stored are in memory: right bytes, from readBlock (views) and readInto alike.
  for (let i = 4; i < 8; i++) {
    t.true((await store.readBlock(idx(i), 16 * KiB, 16 * KiB)).equals(torrent.data(i).subarray(16 * KiB, 32 * KiB)), `piece ${i}`);
    const into = Buffer.alloc(100);
    await store.readInto(idx(i), 1000, 100, into, 0);
    t.true(into.equals(torrent.data(i).subarray(1000, 1100)), `piece ${i} readInto`);
  }
  // The first four are not (4 pieces' worth of memory): they come from the (zeroed) disk.
  for (let i = 0; i < 4; i++) t.true((await store.readBlock(idx(i), 0, 16)).equals(Buffer.alloc(16)), `piece ${i}`);
});

test('a piece read for a peer is read from disk once, whole, for all its blocks; eviction drops it from memory', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 256 * KiB, pieceCount: 4 });
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: MiB, recentPieceBytes: 256 * KiB });
  t.teardown(() => store.close());
  await store.put(torrent.piece(0));
  await store.put(torrent.piece(1)); // pushes piece 0 out of memory
  // Sixteen concurrent block requests for piece 0: one whole-piece read, then every block from it.
  const blocks = await Promise.all(Array.from({ length: 16 }, (_, k) => store.readBlock(idx(0), k * 16 * KiB, 16 * KiB)));
  t.true(Buffer.concat(blocks).equals(torrent.data(0)));
  t.true(blocks.every((b) => b.buffer === blocks[0]!.buffer), 'all blocks are views of one read');
  await zeroDataFile(store);
  t.true((await store.readBlock(idx(0), 0, 16 * KiB)).equals(torrent.data(0).subarray(0, 16 * KiB)), 'now from memory');
  // Blocks handed out stay valid after eviction; the piece itself is gone, from memory too.
  await store.evict(idx(0));
  t.true(blocks[3]!.equals(torrent.data(0).subarray(3 * 16 * KiB, 4 * 16 * KiB)));
  await t.throwsAsync(store.readBlock(idx(0), 0, 1), { name: 'PieceMissingError' });
  await t.throwsAsync(store.readInto(idx(0), 0, 1, Buffer.alloc(1), 0), { name: 'PieceMissingError' });
  t.true(await store.put(torrent.piece(0)));
  t.true((await store.readBlock(idx(0), 0, 256 * KiB)).equals(torrent.data(0)));
});

// Serial: it counts the process's fds, which the other tests of this file would change.
test.serial('concurrent reads and writes of many pieces use three file descriptors, however many pieces', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 16 * KiB, pieceCount: 300 });
  const store = await PieceStore.open({
    cacheRoot: root,
    infoHash: torrent.infoHash,
    layout: torrent.layout,
    budgetBytes: 300 * 16 * KiB,
  });
  t.teardown(() => store.close());
  await store.close();
  // Measure from before open: the store's own fds count.
  const baseline = await openFdCount();
  const reopened = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 300 * 16 * KiB });
  t.teardown(() => reopened.close());
  let peak = 0;
  // One count at a time: each readdir of /proc/self/fd holds an fd of its own while it runs,
  // so two overlapping counts would see each other (the baseline was taken by one alone).
  let counting = Promise.resolve();
  const sample = (): Promise<void> =>
    (counting = counting.then(async () => {
      peak = Math.max(peak, await openFdCount());
    }));
  await Promise.all(Array.from({ length: 300 }, async (_, i) => {
    await reopened.put(torrent.piece(i));
    if (i % 10 === 0) await sample();
  }));
  const reads = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 300; i++) {
      reads.push(reopened.readBlock(idx(i), 1024, 512).then((b) => b.equals(torrent.data(i).subarray(1024, 1536))));
      if (i % 25 === 0) reads.push(sample().then(() => true));
    }
  }
  const ok = await Promise.all(reads);
  await sample();
  t.true(ok.every(Boolean));
  t.is(reopened.openFileCount, 3);
  t.log(`open fds: baseline ${baseline}, peak ${peak}`);
  t.is(peak - baseline, 3, `peak ${peak} fds with baseline ${baseline}: the data file, the slot table, the lock`);
});

test('concurrent puts of the same piece write it once', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 64 * KiB, pieceCount: 2 });
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: MiB });
  t.teardown(() => store.close());
  let added = 0;
  store.on('added', () => added++);
  const results = await Promise.all([store.put(torrent.piece(0)), store.put(torrent.piece(0)), store.put(torrent.piece(0))]);
  t.deepEqual(results, [true, true, true]);
  t.is(added, 1);
  t.is(store.bytesUsed, 64 * KiB);
});

test('a piece evicted while a read is in flight: the read returns its bytes, the slot is reused only after', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent({ pieceLength: 4 * MiB, pieceCount: 8 });
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 4 * 4 * MiB });
  t.teardown(() => store.close());
  for (let i = 0; i < 4; i++) await store.put(torrent.piece(i));
  for (let round = 0; round < 5; round++) {
    const victim = [...store.haveIndices()][0]!;
    const reading = Promise.all([0, 1, 2, 3].map((k) => store.readBlock(victim, k * MiB, MiB)));
    await store.evict(victim);
    // The store is at capacity minus one: this put takes a slot, and must not take the one being read.
    const next = 4 + round;
    const putting = store.put(torrent.piece(next % 8 === victim ? (next + 1) % 8 : next % 8));
    t.true(Buffer.concat(await reading).equals(torrent.data(victim)), `round ${round}`);
    t.true(await putting);
  }
  for (const i of store.haveIndices()) t.true((await store.readBlock(i, 0, 4 * MiB)).equals(torrent.data(i)));
});
