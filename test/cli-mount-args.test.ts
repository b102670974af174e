import test from 'ava';
import path from 'node:path';
import { writeFile, mkdir } from 'node:fs/promises';
import { btmount, run, tempDir } from './helpers/run.js';
import { buildTorrent } from './helpers/torrent-builder.js';

async function fixture(t: import('ava').ExecutionContext) {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const torrent = path.join(dir.path, 'x.torrent');
  await writeFile(torrent, buildTorrent({ name: 'x.bin', length: 1000 }));
  const mnt = path.join(dir.path, 'mnt');
  await mkdir(mnt);
  return { dir: dir.path, torrent, mnt };
}

test('btmount <torrent> <mountpoint> is mount, and umount undoes it', async (t) => {
  const { dir, torrent, mnt } = await fixture(t);
  const res = await btmount([torrent, mnt, '--cache', path.join(dir, 'cache'), '--port', '0', '--no-dht']);
  t.is(res.code, 0, res.stderr);
  t.regex(res.stdout, /^mounted x\.bin at .*mnt \(daemon pid \d+, log .*\.log\)$/m);
  t.teardown(() => run('fusermount', ['-uz', mnt]));
  t.is((await run('stat', ['-c', '%s %a', path.join(mnt, 'x.bin')])).stdout.trim(), '1000 444');
  const un = await btmount(['umount', mnt]);
  t.is(un.code, 0, un.stderr);
  t.is((await run('mountpoint', ['-q', mnt])).code, 32);
  const again = await btmount(['umount', mnt]);
  t.is(again.code, 1);
  t.regex(again.stderr, /^btmount: cannot unmount .*: not a btmount mount point$/m);
});

test('bad option values are one clear line naming the flag', async (t) => {
  const { dir, torrent, mnt } = await fixture(t);
  const cases: Array<[string[], RegExp]> = [
    [['--cache-size', 'lots'], /^btmount: invalid --cache-size: invalid size "lots"/],
    [['--peer', 'nohost'], /^btmount: invalid --peer: expected host:port, got nohost/],
    [['--port', '70000'], /^btmount: invalid --port: not a port number: 70000/],
    [['--read-timeout', '-1'], /^btmount: invalid --read-timeout/],
  ];
  for (const [args, message] of cases) {
    const res = await btmount(['mount', torrent, mnt, '--cache', path.join(dir, 'cache'), '--no-dht', ...args]);
    t.is(res.code, 1, args.join(' '));
    t.regex(res.stderr, message);
    t.is(res.stderr.trim().split('\n').length, 1, res.stderr);
  }
});

test('a cache budget smaller than one piece is refused at mount time', async (t) => {
  const { dir, mnt } = await fixture(t);
  const torrent = path.join(dir, 'big.torrent');
  await writeFile(torrent, buildTorrent({ name: 'big.bin', length: 4 << 20, pieceLength: 1 << 20 }));
  const res = await btmount(['mount', torrent, mnt, '--cache', path.join(dir, 'cache'), '--cache-size', '100K', '--port', '0', '--no-dht']);
  t.teardown(() => run('fusermount', ['-uz', mnt]));
  t.is(res.code, 1);
  t.regex(res.stderr, /^btmount: cannot mount: .*cache/m);
  t.is(res.stderr.trim().split('\n').length, 1, res.stderr);
});
