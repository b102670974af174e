import test from 'ava';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PieceStore } from '../src/store/piece-store.js';
import { makeTorrent, StoreChild, tempDir } from './helpers/store-fixtures.js';

const KiB = 1024;
const spec = { pieceLength: 16 * KiB, pieceCount: 8, seed: 3 };

test('a second process is refused with a clear error while the first holds the cache, and admitted after it dies', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent(spec);
  const opts = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 1024 * KiB };

  const holder = new StoreChild({ mode: 'hold', cacheRoot: root, ...spec, budgetBytes: opts.budgetBytes });
  t.teardown(() => holder.kill());
  await holder.waitFor((lines) => lines.some((l) => l.startsWith('ready')));
  t.regex(await readFile(path.join(root, torrent.infoHash, 'lock'), 'utf8'), new RegExp(`^pid ${holder.proc.pid} `));

  const err = await t.throwsAsync(PieceStore.open(opts), { name: 'StoreLockedError' });
  t.regex(err!.message, new RegExp(`is in use by another btmount process \\(pid ${holder.proc.pid} on `));
  t.regex(err!.message, /different --cache directory/);

  // A third process is refused as well.
  const third = new StoreChild({ mode: 'hold', cacheRoot: root, ...spec, budgetBytes: opts.budgetBytes });
  await third.exited;
  t.regex(third.lines.join('\n'), /^error StoreLockedError /);

  // kill -9 leaves no stale lock behind.
  await holder.kill('SIGKILL');
  const store = await PieceStore.open(opts);
  t.teardown(() => store.close());
  t.pass();
});

test('the same process cannot open one cache twice; close releases the lock', async (t) => {
  const root = await tempDir(t);
  const torrent = makeTorrent(spec);
  const opts = { cacheRoot: root, infoHash: torrent.infoHash, layout: torrent.layout, budgetBytes: 1024 * KiB };
  const first = await PieceStore.open(opts);
  await t.throwsAsync(PieceStore.open(opts), { name: 'StoreLockedError' });
  // A different torrent in the same cache root has its own lock.
  const other = makeTorrent({ ...spec, seed: 4 });
  const second = await PieceStore.open({ ...opts, infoHash: other.infoHash, layout: other.layout });
  await second.close();
  await first.close();
  const again = await PieceStore.open(opts);
  await again.close();
  t.pass();
});
