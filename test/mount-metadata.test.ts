import test from 'ava';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir, run } from './helpers/run.js';
import { freePort, makeDataset } from './helpers/peers.js';
import { liveStatus, mountTorrent, timedRead, waitForWaitingReads } from './helpers/mount.js';
import { buildTorrent } from './helpers/torrent-builder.js';

test('16 readers blocked on missing pieces do not wedge the mount: getattr and readdir still answer; each read ends with EIO at --read-timeout', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const files = Array.from({ length: 16 }, (_, i) => ({ path: `shard${i}.bin`, length: 20_000 }));
  const ds = await makeDataset(dir.path, 'dataset', files, 16 * 1024);
  const deadPort = await freePort(); // nobody listens: every read must wait
  const readTimeout = 8;
  const m = await mountTorrent(dir.path, ds.torrentPath, { peers: [`127.0.0.1:${deadPort}`], readTimeout });
  t.teardown(m.unmount);

  // O_DIRECT readers, each timed in its own process (the page cache's retry is tested in mount-e2e).
  const reads = files.map((f) => timedRead(path.join(m.mountpoint, f.path), { direct: true }));
  await waitForWaitingReads(m.mountpoint, 16);

  const ls = await run('ls', ['-l', m.mountpoint], { timeoutMs: 5000 });
  t.is(ls.code, 0, ls.stderr);
  t.is(ls.stdout.trim().split('\n').length, 17, 'total line + 16 files');
  const st = await run('stat', ['-c', '%s', path.join(m.mountpoint, 'shard7.bin')], { timeoutMs: 5000 });
  t.is(st.stdout.trim(), '20000');
  t.true((await liveStatus(m.mountpoint)).reads.waiting >= 16, 'the readers were still waiting after metadata answered');

  // And every blocked read ends, with EIO, at the read timeout.
  for (const r of await Promise.all(reads)) {
    t.is(r.outcome, 'error EIO');
    t.true(r.seconds >= readTimeout - 0.1 && r.seconds <= readTimeout + 5, `EIO after ${r.seconds} s, --read-timeout ${readTimeout}`);
  }
  t.is((await liveStatus(m.mountpoint)).reads.waiting, 0);
});

test('a 100,000-file torrent mounts and find lists every entry', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const files = Array.from({ length: 100_000 }, (_, i) => ({ path: ['train', `n${String(i % 100).padStart(4, '0')}`, `${i}.jpg`], length: 1 }));
  const torrent = path.join(dir.path, 'many.torrent');
  await writeFile(torrent, buildTorrent({ name: 'many', files }));
  const m = await mountTorrent(dir.path, torrent, { readTimeout: 5 });
  t.teardown(m.unmount);
  const found = await run('find', [m.mountpoint, '-type', 'f'], { timeoutMs: 120_000 });
  t.is(found.code, 0, found.stderr);
  const lines = found.stdout.trim().split('\n');
  t.is(lines.length, 100_000);
  t.true(lines.includes(path.join(m.mountpoint, 'train/n0042/99942.jpg')));
  const dirs = await run('find', [m.mountpoint, '-mindepth', '1', '-type', 'd'], { timeoutMs: 120_000 });
  t.is(dirs.stdout.trim().split('\n').length, 101);
});

test('fusermount -u from outside stops the daemon cleanly', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'dataset', [{ path: 'a.bin', length: 50_000 }], 16 * 1024);
  const m = await mountTorrent(dir.path, ds.torrentPath, { readTimeout: 5 });
  t.teardown(m.unmount);
  const res = await run('fusermount', ['-u', m.mountpoint]);
  t.is(res.code, 0, res.stderr);
  let alive = true;
  for (let i = 0; i < 100 && alive; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      process.kill(m.pid, 0);
    } catch {
      alive = false;
    }
  }
  t.false(alive, 'the daemon exited');
});
