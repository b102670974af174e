import test from 'ava';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir, run } from './helpers/run.js';
import { freePort, makeDataset, startProcess } from './helpers/peers.js';
import { mountTorrent } from './helpers/mount.js';
import { buildTorrent } from './helpers/torrent-builder.js';

test('16 readers blocked on missing pieces do not wedge the mount: getattr and readdir still answer', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const files = Array.from({ length: 16 }, (_, i) => ({ path: `shard${i}.bin`, length: 20_000 }));
  const ds = await makeDataset(dir.path, 'dataset', files, 16 * 1024);
  const deadPort = await freePort(); // nobody listens: every read must wait
  const m = await mountTorrent(dir.path, ds.torrentPath, { peers: [`127.0.0.1:${deadPort}`], readTimeout: 6 });
  t.teardown(m.unmount);

  const readers = files.map((f) => startProcess('/usr/bin/python3', ['-c', 'import sys; open(sys.argv[1], "rb").read()', path.join(m.mountpoint, f.path)]));
  t.teardown(() => Promise.all(readers.map((r) => r.stop('SIGKILL'))));
  await new Promise((r) => setTimeout(r, 1000));

  const ls = await run('ls', ['-l', m.mountpoint], { timeoutMs: 5000 });
  t.is(ls.code, 0, ls.stderr);
  t.is(ls.stdout.trim().split('\n').length, 17, 'total line + 16 files');
  const st = await run('stat', ['-c', '%s', path.join(m.mountpoint, 'shard7.bin')], { timeoutMs: 5000 });
  t.is(st.stdout.trim(), '20000');
  const stillBlocked = await Promise.race([Promise.any(readers.map((r) => r.exited)).then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 100))]);
  t.true(stillBlocked, 'the readers were still waiting while metadata answered');

  // And every blocked read ends, with an error, by the read timeout.
  const codes = await Promise.all(readers.map((r) => r.exited));
  t.true(codes.every((c) => c !== 0));
  t.regex(readers[0]!.output(), /Input\/output error/);
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
