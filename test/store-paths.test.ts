import test from 'ava';
import { access, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { InfoHash } from '../src/metainfo/piece-layout.js';
import { PieceStore, storeDirectory } from '../src/store/piece-store.js';
import { idx, listFiles, makeTorrent, tempDir } from './helpers/store-fixtures.js';

const KiB = 1024;

const hostile = [
  '../../../../tmp/evil',
  '..',
  '.',
  '',
  '/etc',
  'a'.repeat(40) + '/..',
  '../' + 'a'.repeat(37),
  'A'.repeat(40), // upper case is not the canonical form: callers must use asInfoHash
  'g'.repeat(40),
  'a'.repeat(39),
  'a'.repeat(41),
  'a'.repeat(39) + '\0',
  'a'.repeat(20) + '/' + 'a'.repeat(19),
  'a'.repeat(20) + '\\' + 'a'.repeat(19),
  ' ' + 'a'.repeat(39),
  'a'.repeat(40) + '\n',
];

test('hostile infohash strings are refused and create nothing anywhere', async (t) => {
  const sandbox = await tempDir(t);
  const root = path.join(sandbox, 'deep', 'cache');
  await mkdir(root, { recursive: true });
  const torrent = makeTorrent({ pieceLength: 16 * KiB, pieceCount: 2 });
  // Where each string would land if it were joined to the cache root, for those that leave it (e.g. /tmp/evil).
  const escapes = hostile.map((h) => path.resolve(root, h)).filter((p) => p !== root && !p.startsWith(root + path.sep));
  t.true(escapes.includes(path.resolve('/tmp/evil')));
  const existedBefore = new Map(await Promise.all(escapes.map(async (p) => [p, await exists(p)] as const)));
  t.false(existedBefore.get('/tmp/evil'), '/tmp/evil is absent before, so its absence after means something');
  for (const text of hostile) {
    await t.throwsAsync(
      PieceStore.open({ cacheRoot: root, infoHash: text as InfoHash, layout: torrent.layout, budgetBytes: 64 * KiB }),
      { message: /not a 40-hex-digit infohash/ },
      JSON.stringify(text),
    );
    t.throws(() => storeDirectory(root, text));
  }
  t.deepEqual(await readdir(root), []);
  t.deepEqual(await readdir(sandbox), ['deep']);
  t.deepEqual(await readdir(path.join(sandbox, 'deep')), ['cache']);
  for (const p of escapes) if (!existedBefore.get(p)) t.false(await exists(p), `nothing created at ${p}`);
});

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

test('a whole store lifecycle writes only inside <cacheRoot>/<infohash>', async (t) => {
  const sandbox = await tempDir(t);
  const root = path.join(sandbox, 'cache');
  const torrent = makeTorrent({ pieceLength: 16 * KiB, pieceCount: 10 });
  const store = await PieceStore.open({ cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 64 * KiB });
  t.is(store.dir, path.join(root, torrent.infoHash));
  for (let i = 0; i < 10; i++) await store.put(torrent.piece(i));
  await store.readBlock(idx(9), 0, 100);
  await store.close();
  const files = [...(await listFiles(sandbox)).keys()];
  t.true(files.length > 0);
  for (const f of files) t.true(f.startsWith(path.join('cache', torrent.infoHash) + path.sep), f);
});

test('two torrents in one cache root keep their own pieces', async (t) => {
  const root = await tempDir(t);
  const a = makeTorrent({ pieceLength: 16 * KiB, pieceCount: 4, seed: 1 });
  const b = makeTorrent({ pieceLength: 16 * KiB, pieceCount: 4, seed: 2 });
  const sa = await PieceStore.open({ cacheRoot: root, infoHash: a.infoHash, layout: a.layout, budgetBytes: 64 * KiB });
  const sb = await PieceStore.open({ cacheRoot: root, infoHash: b.infoHash, layout: b.layout, budgetBytes: 64 * KiB });
  t.teardown(() => Promise.all([sa.close(), sb.close()]).then(() => undefined));
  for (let i = 0; i < 4; i++) {
    await sa.put(a.piece(i));
    await sb.put(b.piece(i));
  }
  for (let i = 0; i < 4; i++) {
    t.true((await sa.readBlock(idx(i), 0, 16 * KiB)).equals(a.data(i)));
    t.true((await sb.readBlock(idx(i), 0, 16 * KiB)).equals(b.data(i)));
  }
  t.notDeepEqual(a.data(0), b.data(0));
});

test('a cache written for another piece layout under the same infohash is discarded, not served', async (t) => {
  const root = await tempDir(t);
  const a = makeTorrent({ pieceLength: 16 * KiB, pieceCount: 4, seed: 1 });
  const b = makeTorrent({ pieceLength: 32 * KiB, pieceCount: 2, seed: 1 });
  const first = await PieceStore.open({ cacheRoot: root, infoHash: a.infoHash, layout: a.layout, budgetBytes: 64 * KiB });
  await first.put(a.piece(0));
  await first.put(a.piece(1));
  await first.close();
  const second = await PieceStore.open({ cacheRoot: root, infoHash: a.infoHash, layout: b.layout, budgetBytes: 64 * KiB });
  t.teardown(() => second.close());
  t.is(second.haveCount, 0);
});
