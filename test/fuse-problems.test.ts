import test from 'ava';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fuseProblem } from '../src/fs/fuse-mount.js';
import { BTMOUNT_BIN } from './helpers/peers.js';
import { run, tempDir } from './helpers/run.js';
import { buildTorrent } from './helpers/torrent-builder.js';

// "cannot mount: fuse failed" names its cause. The checks look at real paths;
// each case points them at a place where the cause is true.

const asRoot = process.getuid?.() === 0;

test('no device: names /dev/fuse, the module and the Docker flags', async (t) => {
  const why = await fuseProblem({ device: '/nonexistent/fuse', uid: 0, fusermountDirs: ['/usr/bin'] });
  t.is(why, '/nonexistent/fuse does not exist: the fuse kernel module is not loaded (modprobe fuse; in Docker: --device /dev/fuse --cap-add SYS_ADMIN)');
});

test('a user other than root without fusermount is told so', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  t.is(
    await fuseProblem({ device: '/dev/fuse', uid: 1000, fusermountDirs: [dir.path] }),
    'fusermount is not installed, and a user other than root needs it to mount (apt-get install fuse)',
  );
  // Only fuse3's fusermount3 (a stand-in executable here).
  await writeFile(path.join(dir.path, 'fusermount3'), '#!/bin/sh\n', { mode: 0o755 });
  t.regex((await fuseProblem({ device: '/dev/fuse', uid: 1000, fusermountDirs: [dir.path] }))!, /^fusermount is not installed, only fuse3's .*fusermount3, and fuse-native \(libfuse 2\) needs fusermount/);
});

test('a fusermount that is not setuid root is named', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const copy = path.join(dir.path, 'fusermount');
  await copyFile('/usr/bin/fusermount', copy);
  await chmod(copy, 0o755);
  t.is(await fuseProblem({ device: '/dev/fuse', uid: 1000, fusermountDirs: [dir.path] }), `${copy} is not setuid root, so only root can mount (chmod u+s ${copy}, or mount as root)`);
});

test('where FUSE works, no problem is reported', async (t) => {
  t.is(await fuseProblem(), undefined);
});

(asRoot ? test : test.skip)('a mount without /dev/fuse fails with the cause in one line, not "fuse failed"', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const torrent = path.join(dir.path, 'x.torrent');
  await writeFile(torrent, buildTorrent({ name: 'x.bin', length: 1000 }));
  const mnt = path.join(dir.path, 'mnt');
  await mkdir(mnt);
  // A private mount namespace whose /dev has no fuse (as a container started without --device /dev/fuse).
  const script = `mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 && exec "$0" "$@"`;
  const res = await run('unshare', ['-m', 'sh', '-c', script, process.execPath, BTMOUNT_BIN, 'mount', torrent, mnt, '--cache', path.join(dir.path, 'cache'), '--port', '0', '--no-dht']);
  t.is(res.code, 1);
  t.deepEqual(res.stderr.trim().split('\n'), [
    'btmount: cannot mount: /dev/fuse does not exist: the fuse kernel module is not loaded (modprobe fuse; in Docker: --device /dev/fuse --cap-add SYS_ADMIN)',
  ]);
});
