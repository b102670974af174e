import test from 'ava';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mountEntry } from '../src/mount-table.js';
import { Metainfo } from '../src/metainfo/index.js';
import { mountTorrent } from './helpers/mount.js';
import { tempDir } from './helpers/run.js';
import { buildTorrent } from './helpers/torrent-builder.js';

test('the kernel lists a mount as read-only fuse.btmount named after the infohash', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const raw = buildTorrent({ name: 'x.bin', length: 1000 });
  const torrent = path.join(dir.path, 'x.torrent');
  await writeFile(torrent, raw);
  const m = await mountTorrent(dir.path, torrent);
  t.teardown(m.unmount);
  const entry = await mountEntry(m.mountpoint);
  t.truthy(entry);
  t.is(entry!.fstype, 'fuse.btmount');
  t.is(entry!.source, `btmount:${Metainfo.fromTorrentFile(raw).infoHash}`);
  t.true(entry!.options.includes('ro'), entry!.options.join(','));
  t.false(entry!.options.includes('rw'), entry!.options.join(','));
});
