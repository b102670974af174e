/**
 * The tree snapshot the native backend is handed at mount (flat arrays, children contiguous),
 * and the addon's refusal of arrays that do not describe a tree (before anything is mounted).
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadNativeAddon } from '../src/fs/native/addon.js';
import { snapshotTree, type TreeSnapshot } from '../src/fs/native/tree-snapshot.js';
import { Metainfo } from '../src/metainfo/index.js';
import { buildTorrent } from './helpers/torrent-builder.js';

const metainfo = Metainfo.fromTorrentFile(
  buildTorrent({
    files: [
      { path: ['train', 'cat', '001.jpg'], length: 40_000 },
      { path: ['train', 'dog', 'ünïcödé.jpg'], length: 7 },
      { path: ['labels.csv'], length: 1234 },
      { path: ['train', 'cat', '002.jpg'], length: 0 },
    ],
  }),
);

function nameOf(s: TreeSnapshot, node: number): string {
  const { names, nameOffsets } = s.arrays;
  return Buffer.from(names.subarray(nameOffsets[node]!, nameOffsets[node + 1]!)).toString('utf8');
}

/** The path of a node, walking parents up to the root (node 0). */
function pathOf(s: TreeSnapshot, node: number): string {
  const parts: string[] = [];
  for (let n = node; n !== 0; n = s.arrays.parents[n]!) parts.unshift(nameOf(s, n));
  return parts.join('/');
}

test('every node of the tree is in the snapshot once, with its name, parent, size and stream offset; children are contiguous', (t) => {
  const s = snapshotTree(metainfo.tree);
  const { tree } = metainfo;
  t.is(s.nodeCount, 1 + tree.fileCount + tree.dirCount);
  t.is(s.totalBytes, 40_000 + 7 + 1234 + 0);
  const { isDir, sizes, streamOffsets, fileIndex, firstChild, childCount, parents } = s.arrays;
  const paths = new Set<string>();
  for (let node = 1; node < s.nodeCount; node++) {
    const p = pathOf(s, node);
    paths.add(p);
    const found = tree.lookup(p)!;
    t.truthy(found, p);
    t.is(isDir[node] === 1, found.kind === 'dir', p);
    if (found.kind === 'file') {
      t.is(sizes[node], found.length);
      t.is(streamOffsets[node], found.offset);
      t.is(tree.files[fileIndex[node]!], found);
    } else {
      t.is(fileIndex[node], -1);
    }
    // The node lies in its parent's child range.
    const parent = parents[node]!;
    t.true(node >= firstChild[parent]! && node < firstChild[parent]! + childCount[parent]!, p);
  }
  t.deepEqual([...paths].sort(), ['labels.csv', 'train', 'train/cat', 'train/cat/001.jpg', 'train/cat/002.jpg', 'train/dog', 'train/dog/ünïcödé.jpg']);
  // Child counts add up to every node but the root.
  t.is(childCount.reduce((a, b) => a + b, 0), s.nodeCount - 1);
});

const addon = loadNativeAddon();
(addon instanceof Error ? test.skip : test)('the addon refuses arrays that do not describe a tree, with one clear error and no mount', async (t) => {
  const native = addon as Exclude<typeof addon, Error>;
  const dir = await mkdtemp(path.join(tmpdir(), 'btmount-snapshot-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const good = snapshotTree(metainfo.tree).arrays;
  const options = (tree: TreeSnapshot['arrays']) => ({
    mountpoint: dir,
    mountOptions: 'ro,fsname=btmount:test,subtype=btmount',
    uid: 0,
    gid: 0,
    fileMode: 0o444,
    dirMode: 0o555,
    mtime: 0,
    totalBytes: 0,
    debug: 0,
    tree,
    cache: {
      dataFd: 0,
      slotSize: 16384,
      pieceLength: 16384,
      pieceState: new Uint8Array(new SharedArrayBuffer(4)),
      pieceSlot: new Int32Array(new SharedArrayBuffer(16)),
      slotGeneration: new Uint32Array(new SharedArrayBuffer(16)),
      slotPins: new Int32Array(new SharedArrayBuffer(16)),
      verifiedValue: 3,
    },
    onMiss: () => undefined,
    onHits: () => undefined,
  });
  t.throws(() => native.mount(options({ ...good, sizes: new Float64Array(2) })), { message: 'btmount native: tree arrays of different lengths' });
  const badParent = new Uint32Array(good.parents);
  badParent[1] = 999;
  t.throws(() => native.mount(options({ ...good, parents: badParent })), { message: 'btmount native: the tree arrays are inconsistent' });
  t.throws(() => native.mount(options({ ...good, names: good.names.subarray(0, 3) })), { message: 'btmount native: name offsets do not match the names' });
  t.throws(() => native.mount({ ...options(good), mountOptions: undefined as unknown as string }), { message: 'btmount native: mount options incomplete' });
});
