import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mountTorrent } from './helpers/mount.js';
import { btmount, run, tempDir } from './helpers/run.js';
import { buildTorrent, type BuilderFile } from './helpers/torrent-builder.js';

// Hand-built torrents with hostile names, mounted for real (no peers: only names and attributes are read).

const CREATED = 1_700_000_000; // the torrent's creation date: every entry's mtime

const longName = 'a'.repeat(300) + '.jpg';
const deep = [...Array.from({ length: 255 }, () => 'd'), 'bottom.bin']; // 256 levels: the limit
// 11 × 255-byte folders + "y" + a 253-byte name: 11·256 + 2 + 254 = 3072 bytes, the limit.
const longPath = [...Array.from({ length: 11 }, (_, i) => String(i % 10).repeat(255)), 'y', 'z'.repeat(253)];
const pathBytes = (parts: string[]): number => parts.reduce((n, p) => n + Buffer.byteLength(p) + 1, 0);

test('hostile names through a real mount: each shown as the README says, at the exact depth and length limits', async (t) => {
  t.is(deep.length, 256);
  t.is(pathBytes(longPath), 3072);
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const files: BuilderFile[] = [
    { path: [longName], length: 1 },
    { path: [Buffer.from([0x66, 0xff, 0x6f])], length: 1 },
    { path: ['..', 'up.txt'], length: 1 },
    { path: ['a/b'], length: 1 },
    { path: ['nul\0x'], length: 1 },
    { path: ['back\\slash'], length: 1 },
    { path: ['dup.txt'], length: 1 },
    { path: ['dup.txt'], length: 1 },
    { path: deep, length: 1 },
    { path: longPath, length: 1 },
  ];
  const torrent = path.join(dir.path, 'hostile.torrent');
  await writeFile(torrent, buildTorrent({ name: 'hostile', files, topExtra: { 'creation date': CREATED } }));
  const m = await mountTorrent(dir.path, torrent, { readTimeout: 5 });
  t.teardown(m.unmount);

  const found = await run('find', [m.mountpoint, '-mindepth', '1', '-type', 'f', '-printf', '%P\\n'], { timeoutMs: 60_000 });
  t.is(found.code, 0, found.stderr);
  const shortened = 'a'.repeat(255 - 13) + '~' + createHash('sha1').update(longName).digest('hex').slice(0, 8) + '.jpg';
  t.is(Buffer.byteLength(shortened), 255);
  t.deepEqual(found.stdout.trim().split('\n').sort(), [
    shortened,
    'f%FFo',
    '%2E%2E/up.txt',
    'a%2Fb',
    'nul%00x',
    'back\\slash',
    'dup.txt',
    'dup~2.txt',
    deep.join('/'),
    longPath.join('/'),
  ].sort());
  // Every name opens by the path shown (stat goes through lookup, component by component).
  const st = await run('stat', ['-c', '%s', path.join(m.mountpoint, shortened), path.join(m.mountpoint, ...deep), path.join(m.mountpoint, ...longPath)]);
  t.is(st.stdout, '1\n1\n1\n', st.stderr);
});

for (const [what, parts, message] of [
  ['257 levels', ['d', ...deep], /nested 257 levels deep \(limit 256\)/],
  ['3073 bytes', [...longPath.slice(0, -1), 'z'.repeat(254)], /a path of 3073 bytes \(limit 3072\)/],
] as const) {
  test(`a torrent with a path one past the limit (${what}) is refused with one line, and nothing is mounted`, async (t) => {
    const dir = await tempDir();
    t.teardown(dir.cleanup);
    const torrent = path.join(dir.path, 'over.torrent');
    await writeFile(torrent, buildTorrent({ name: 'over', files: [{ path: [...parts], length: 1 }] }));
    const mnt = path.join(dir.path, 'mnt');
    await mkdir(mnt);
    const res = await btmount(['mount', torrent, mnt, '--cache', path.join(dir.path, 'cache'), '--port', '0', '--no-dht']);
    t.is(res.code, 1);
    t.regex(res.stderr, message);
    t.is(res.stderr.trim().split('\n').length, 1, res.stderr);
    t.is((await run('mountpoint', ['-q', mnt])).code, 32, 'not a mount point');
  });
}

test('entries are owned by the user who mounted and carry the torrent creation date as mtime', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const torrent = path.join(dir.path, 'dated.torrent');
  await writeFile(torrent, buildTorrent({ name: 'dated', files: [{ path: ['sub', 'f.bin'], length: 10 }, { path: ['g.bin'], length: 5 }], topExtra: { 'creation date': CREATED } }));
  const m = await mountTorrent(dir.path, torrent, { readTimeout: 5 });
  t.teardown(m.unmount);
  const st = await run('stat', ['-c', '%n %u %g %Y %a', m.mountpoint, path.join(m.mountpoint, 'sub'), path.join(m.mountpoint, 'sub/f.bin'), path.join(m.mountpoint, 'g.bin')]);
  t.is(st.code, 0, st.stderr);
  const [uid, gid] = [process.getuid!(), process.getgid!()];
  t.deepEqual(st.stdout.trim().split('\n'), [
    `${m.mountpoint} ${uid} ${gid} ${CREATED} 555`,
    `${path.join(m.mountpoint, 'sub')} ${uid} ${gid} ${CREATED} 555`,
    `${path.join(m.mountpoint, 'sub/f.bin')} ${uid} ${gid} ${CREATED} 444`,
    `${path.join(m.mountpoint, 'g.bin')} ${uid} ${gid} ${CREATED} 444`,
  ]);
});
