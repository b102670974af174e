import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { btmount, run, tempDir } from './helpers/run.js';

test('inspect prints the tree of a real multi-file torrent made by mktorrent', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const data = join(dir.path, 'dataset');
  await mkdir(join(data, 'train', 'cat'), { recursive: true });
  await writeFile(join(data, 'train', 'cat', '1.jpg'), Buffer.alloc(70_000, 1));
  await writeFile(join(data, 'train', 'cat', '2.jpg'), Buffer.alloc(10, 2));
  await writeFile(join(data, 'labels.csv'), 'a,b\n');
  await writeFile(join(data, 'empty'), '');
  const torrent = join(dir.path, 'dataset.torrent');
  const made = await run('mktorrent', ['-l', '15', '-o', torrent, data]);
  t.is(made.code, 0, made.stderr);

  const res = await btmount(['inspect', torrent, '--json', '--files']);
  t.is(res.code, 0, res.stderr);
  const info = JSON.parse(res.stdout) as { infoHash: string; name: string; pieceLength: number; pieceCount: number; totalLength: number; fileCount: number; files: Array<{ path: string; length: number }> };
  t.is(info.name, 'dataset');
  t.is(info.pieceLength, 32768);
  t.is(info.totalLength, 70_000 + 10 + 4);
  t.is(info.pieceCount, Math.ceil(70_014 / 32768));
  t.is(info.fileCount, 4);
  t.deepEqual(
    info.files.map((f) => `${f.path}:${f.length}`).sort(),
    ['empty:0', 'labels.csv:4', 'train/cat/1.jpg:70000', 'train/cat/2.jpg:10'],
  );

  // The infohash as aria2c, a client nobody here wrote, computes it.
  const aria = await run('aria2c', ['-S', torrent]);
  t.regex(aria.stdout, new RegExp(`Info Hash: ${info.infoHash}`, 'i'));

  const text = await btmount(['inspect', torrent, '--files']);
  t.regex(text.stdout, /^name: +dataset$/m);
  t.regex(text.stdout, /70000 +train\/cat\/1\.jpg$/m);
});

test('inspect of a broken torrent is one clear line and a non-zero exit', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const bad = join(dir.path, 'bad.torrent');
  await writeFile(bad, 'd4:infod4:name1:xee');
  const res = await btmount(['inspect', bad]);
  t.is(res.code, 1);
  t.is(res.stderr.trim().split('\n').length, 1, res.stderr);
  t.regex(res.stderr, /^btmount: cannot read torrent .*bad\.torrent: /);
  t.notRegex(res.stderr, /\n\s+at /, 'no stack trace without --debug');
});

test('inspect of a missing file says so', async (t) => {
  const res = await btmount(['inspect', '/nonexistent/x.torrent']);
  t.is(res.code, 1);
  t.regex(res.stderr, /no such file/);
});

test('inspect of a magnet URI shows its hash, name and peers', async (t) => {
  const hash = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a';
  const res = await btmount(['inspect', `magnet:?xt=urn:btih:${hash}&dn=imagenet&x.pe=127.0.0.1:6881`, '--json']);
  t.is(res.code, 0, res.stderr);
  t.like(JSON.parse(res.stdout), { infoHash: hash, name: 'imagenet', complete: false, peers: ['127.0.0.1:6881'] });
});

test('--help lists the commands and --version prints the version', async (t) => {
  const help = await btmount(['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /inspect/);
  const version = await btmount(['--version']);
  t.regex(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
});
