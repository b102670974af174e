import test from 'ava';
import Fuse, { type Operations, type Stat, type StatFs } from 'fuse-native';
import { constants } from 'node:fs';
import { buildFuseOps } from '../src/fs/fuse-ops.js';
import { silentLogger } from '../src/log.js';
import { Metainfo, type PieceIndex } from '../src/metainfo/index.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import { Reader, type PieceFetcher } from '../src/reader/reader.js';
import { PieceStore } from '../src/store/piece-store.js';
import { tempDir } from './helpers/store-fixtures.js';
import { buildTorrent, type BuilderFile } from './helpers/torrent-builder.js';

// The fs layer without FUSE: buildFuseOps over a real Reader and a real PieceStore
// in a temp dir, its callbacks called directly as fuse-native would call them.

const PIECE = 16384;
const MTIME = new Date('2026-01-02T03:04:05Z');
const UID = 4242;
const GID = 4343;

/**
 * Brings pieces into the store from the dataset's bytes, as the swarm would from
 * peers, except those in `withheld` (no peer has them: a read of them times out).
 */
class LocalOrigin implements PieceFetcher {
  readonly withheld = new Set<number>();
  constructor(
    private readonly metainfo: Metainfo,
    private readonly data: Buffer,
    private readonly store: PieceStore,
  ) {}
  async fetch(index: PieceIndex, _priority: unknown, signal?: AbortSignal): Promise<void> {
    if (this.withheld.has(index)) {
      return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }));
    }
    const { layout } = this.metainfo;
    const start = layout.pieceOffset(index);
    const piece = VerifiedPiece.check(layout, index, Buffer.from(this.data.subarray(start, start + layout.pieceSize(index))));
    if (!piece) throw new Error(`piece ${index} does not match its hash`);
    await this.store.put(piece);
  }
  waitingReason(): string {
    return 'no peer has the piece';
  }
  sourcesOf(index: PieceIndex): number {
    return this.withheld.has(index) ? 0 : 1;
  }
}

async function fixture(t: Parameters<typeof tempDir>[0], files: BuilderFile[], readTimeoutMs = 5000) {
  const total = files.reduce((s, f) => s + f.length, 0);
  const data = Buffer.alloc(total);
  for (let i = 0; i < total; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
  const metainfo = Metainfo.fromTorrentFile(buildTorrent({ name: 'ds', files, pieceLength: PIECE, data }));
  const store = await PieceStore.open({
    cacheRoot: await tempDir(t, 'btmount-fsops-'),
    infoHash: metainfo.infoHash,
    layout: metainfo.layout,
    budgetBytes: Math.max(PIECE, metainfo.layout.pieceCount * PIECE),
    log: silentLogger,
  });
  t.teardown(() => store.close());
  const origin = new LocalOrigin(metainfo, data, store);
  const reader = new Reader({
    byteMap: metainfo.byteMap,
    cache: store,
    fetcher: origin,
    readTimeoutMs,
    readAhead: { initialBytes: PIECE, maxBytes: PIECE, backwardToleranceBytes: 0 },
    log: silentLogger,
  });
  const ops = buildFuseOps({ tree: metainfo.tree, reader, mtime: MTIME, uid: UID, gid: GID, log: silentLogger });
  return { ops, data, metainfo, origin };
}

const getattr = (ops: Operations, path: string) =>
  new Promise<{ err: number; stat?: Stat }>((resolve) => ops.getattr!(path, (err, stat) => resolve({ err, ...(stat ? { stat } : {}) })));
const readdir = (ops: Operations, path: string) =>
  new Promise<{ err: number; names?: string[]; stats?: Stat[] }>((resolve) =>
    ops.readdir!(path, (err, names, stats) => resolve({ err, ...(names ? { names } : {}), ...(stats ? { stats } : {}) })),
  );
const open = (ops: Operations, path: string, flags: number) =>
  new Promise<{ err: number; fd?: number }>((resolve) => ops.open!(path, flags, (err, fd) => resolve({ err, ...(fd === undefined ? {} : { fd }) })));
const release = (ops: Operations, path: string, fd: number) => new Promise<number>((resolve) => ops.release!(path, fd, resolve));
const read = (ops: Operations, path: string, fd: number, buf: Buffer, pos: number) =>
  new Promise<number>((resolve) => ops.read!(path, fd, buf, buf.length, pos, resolve));
const access = (ops: Operations, path: string, mode: number) => new Promise<number>((resolve) => ops.access!(path, mode, resolve));
const statfs = (ops: Operations) =>
  new Promise<{ err: number; stat?: StatFs }>((resolve) => ops.statfs!('/', (err, stat) => resolve({ err, ...(stat ? { stat } : {}) })));

const SMALL: BuilderFile[] = [
  { path: ['a.bin'], length: 40_000 },
  { path: ['sub', 'b.bin'], length: 20_000 },
  { path: ['sub', 'deeper', 'c.bin'], length: 1 },
  { path: ['empty.txt'], length: 0 },
];

test('getattr: directories 0555, files 0444 with their size, owner and the torrent date; unknown paths ENOENT', async (t) => {
  const { ops } = await fixture(t, SMALL);
  const root = await getattr(ops, '/');
  t.is(root.err, 0);
  t.is(root.stat!.mode, constants.S_IFDIR | 0o555);
  const file = await getattr(ops, '/sub/b.bin');
  t.is(file.err, 0);
  t.is(file.stat!.mode, constants.S_IFREG | 0o444);
  t.is(file.stat!.size, 20_000);
  t.is(file.stat!.uid, UID);
  t.is(file.stat!.gid, GID);
  t.deepEqual(file.stat!.mtime, MTIME);
  t.is((await getattr(ops, '/empty.txt')).stat!.size, 0);
  t.is((await getattr(ops, '/nope')).err, Fuse.ENOENT);
  t.is((await getattr(ops, '/a.bin/inside')).err, Fuse.ENOENT, 'a path through a file');
  t.is((await getattr(ops, '/sub/B.bin')).err, Fuse.ENOENT, 'names are case-sensitive');
});

test('readdir: . and .. first, then the entries with their stats; a file is ENOTDIR, an unknown path ENOENT', async (t) => {
  const { ops } = await fixture(t, SMALL);
  const root = await readdir(ops, '/');
  t.is(root.err, 0);
  t.deepEqual(root.names!.slice(0, 2), ['.', '..']);
  t.deepEqual([...root.names!.slice(2)].sort(), ['a.bin', 'empty.txt', 'sub']);
  t.is(root.stats!.length, root.names!.length);
  t.is(root.stats![root.names!.indexOf('a.bin')]!.size, 40_000);
  t.is(root.stats![root.names!.indexOf('sub')]!.mode, constants.S_IFDIR | 0o555);
  const sub = await readdir(ops, '/sub');
  t.deepEqual([...sub.names!].sort(), ['.', '..', 'b.bin', 'deeper']);
  t.is((await readdir(ops, '/a.bin')).err, Fuse.ENOTDIR);
  t.is((await readdir(ops, '/missing')).err, Fuse.ENOENT);
});

test('readdir of a folder of 20,000 files lists every one with its own size', async (t) => {
  const files: BuilderFile[] = Array.from({ length: 20_000 }, (_, i) => ({ path: ['big', `f${String(i).padStart(5, '0')}.jpg`], length: (i % 97) + 1 }));
  const { ops } = await fixture(t, files);
  const listing = await readdir(ops, '/big');
  t.is(listing.err, 0);
  t.is(listing.names!.length, 20_002);
  t.is(listing.stats!.length, 20_002);
  const seen = new Set(listing.names!.slice(2));
  t.is(seen.size, 20_000);
  for (let i = 0; i < 20_000; i += 997) {
    const name = `f${String(i).padStart(5, '0')}.jpg`;
    const at = listing.names!.indexOf(name);
    t.true(at >= 2, name);
    t.is(listing.stats![at]!.size, (i % 97) + 1, name);
  }
});

test('open: read-only opens get a handle; write access, O_TRUNC, directories and unknown paths are refused with their errno', async (t) => {
  const { ops } = await fixture(t, SMALL);
  const ok = await open(ops, '/a.bin', constants.O_RDONLY);
  t.is(ok.err, 0);
  t.true(ok.fd! > 0);
  t.is((await open(ops, '/a.bin', constants.O_WRONLY)).err, Fuse.EROFS);
  t.is((await open(ops, '/a.bin', constants.O_RDWR)).err, Fuse.EROFS);
  t.is((await open(ops, '/a.bin', constants.O_RDONLY | constants.O_TRUNC)).err, Fuse.EROFS);
  t.is((await open(ops, '/sub', constants.O_RDONLY)).err, Fuse.EISDIR);
  t.is((await open(ops, '/nope', constants.O_RDONLY)).err, Fuse.ENOENT);
  t.is(await release(ops, '/a.bin', ok.fd!), 0);
});

test('read: the file bytes across piece boundaries, 0 at the end, EBADF for an unknown or released handle', async (t) => {
  const { ops, data } = await fixture(t, SMALL);
  const { fd } = await open(ops, '/a.bin', constants.O_RDONLY);
  const buf = Buffer.alloc(20_000);
  // 10,000..30,000 of a.bin spans pieces 0 and 1.
  t.is(await read(ops, '/a.bin', fd!, buf, 10_000), 20_000);
  t.true(buf.equals(data.subarray(10_000, 30_000)));
  const tail = Buffer.alloc(4096);
  t.is(await read(ops, '/a.bin', fd!, tail, 39_000), 1000, 'short at the end of the file');
  t.true(tail.subarray(0, 1000).equals(data.subarray(39_000, 40_000)));
  t.is(await read(ops, '/a.bin', fd!, tail, 40_000), 0);
  // b.bin starts at stream offset 40,000: inside piece 2.
  const b = await open(ops, '/sub/b.bin', constants.O_RDONLY);
  const whole = Buffer.alloc(20_000);
  t.is(await read(ops, '/sub/b.bin', b.fd!, whole, 0), 20_000);
  t.true(whole.equals(data.subarray(40_000, 60_000)));
  t.is(await read(ops, '/a.bin', 9999, buf, 0), Fuse.EBADF);
  await release(ops, '/a.bin', fd!);
  t.is(await read(ops, '/a.bin', fd!, buf, 0), Fuse.EBADF);
});

test('read: a piece no source delivers fails with EIO after the read timeout, and other pieces still read', async (t) => {
  const { ops, data, origin } = await fixture(t, SMALL, 300);
  origin.withheld.add(1);
  const { fd } = await open(ops, '/a.bin', constants.O_RDONLY);
  const buf = Buffer.alloc(4096);
  const started = Date.now();
  // The Reader's deadline timer does not hold the event loop open (in a daemon, FUSE does).
  const keepAlive = setInterval(() => undefined, 1000);
  t.teardown(() => clearInterval(keepAlive));
  t.is(await read(ops, '/a.bin', fd!, buf, PIECE + 10), Fuse.EIO);
  t.true(Date.now() - started < 10_000, 'ends by the read timeout, not hangs');
  t.is(await read(ops, '/a.bin', fd!, buf, 0), 4096);
  t.true(buf.equals(data.subarray(0, 4096)));
});

test('access: reading is allowed, W_OK is EROFS, an unknown path ENOENT; statfs says read-only', async (t) => {
  const { ops, metainfo } = await fixture(t, SMALL);
  t.is(await access(ops, '/a.bin', constants.R_OK), 0);
  t.is(await access(ops, '/sub', constants.R_OK | constants.X_OK), 0);
  t.is(await access(ops, '/a.bin', constants.W_OK), Fuse.EROFS);
  t.is(await access(ops, '/sub', constants.R_OK | constants.W_OK), Fuse.EROFS);
  t.is(await access(ops, '/nope', constants.R_OK), Fuse.ENOENT);
  const fs = await statfs(ops);
  t.is(fs.err, 0);
  t.is(fs.stat!.flag & 1, 1, 'ST_RDONLY');
  t.is(fs.stat!.bfree, 0);
  t.is(fs.stat!.files, metainfo.tree.fileCount + metainfo.tree.dirCount + 1);
});

test('every write-like operation answers EROFS, on files, folders and unknown paths alike', async (t) => {
  const { ops } = await fixture(t, SMALL);
  // Arguments as fuse-native passes them; the callback is always last.
  const writes: Record<string, unknown[]> = {
    create: ['/new', 0o644],
    mknod: ['/new', 0o644, 0],
    write: ['/a.bin', 1, Buffer.alloc(10), 10, 0],
    truncate: ['/a.bin', 0],
    ftruncate: ['/a.bin', 1, 0],
    unlink: ['/a.bin'],
    rmdir: ['/sub'],
    mkdir: ['/newdir', 0o755],
    rename: ['/a.bin', '/z.bin'],
    link: ['/a.bin', '/hard'],
    symlink: ['/a.bin', '/soft'],
    chmod: ['/a.bin', 0o777],
    chown: ['/sub', 0, 0],
    utimens: ['/a.bin', new Date(), new Date()],
    setxattr: ['/a.bin', 'user.x', Buffer.from('v'), 1, 0, 0],
    removexattr: ['/nope', 'user.x'],
  };
  for (const [name, args] of Object.entries(writes)) {
    const op = ops[name];
    t.is(typeof op, 'function', `${name} is defined (an undefined op would be ENOSYS, not EROFS)`);
    const err = await new Promise<number>((resolve) => (op as (...a: unknown[]) => void)(...args, resolve));
    t.is(err, Fuse.EROFS, name);
  }
  // Nothing changed.
  t.is((await getattr(ops, '/a.bin')).stat!.size, 40_000);
  t.is((await getattr(ops, '/new')).err, Fuse.ENOENT);
});
