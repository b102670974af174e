import test from 'ava';
import { execFile } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from '../src/process-alive.js';
import { mountTorrent } from './helpers/mount.js';
import { BTMOUNT_BIN, startProcess } from './helpers/peers.js';
import { btmount, run, tempDir, type RunResult } from './helpers/run.js';
import { buildTorrent } from './helpers/torrent-builder.js';

// `btmount umount` touches btmount's own mounts only, never a busy one by surprise.

const asRoot = process.getuid?.() === 0;
/** `nobody` stands for another user. */
const OTHER_UID = 65534;

const isMountpoint = async (dir: string): Promise<boolean> => (await run('mountpoint', ['-q', dir])).code === 0;
/** Running, and not a zombie (a daemon killed with kill -9 whose parent has not reaped it). */
const alive = isAlive;

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

async function mountedFixture(t: import('ava').ExecutionContext) {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const torrent = path.join(dir.path, 'x.torrent');
  await writeFile(torrent, buildTorrent({ name: 'ds', files: [{ path: ['a.bin'], length: 1000 }, { path: ['sub', 'b.bin'], length: 10 }] }));
  const m = await mountTorrent(dir.path, torrent, { readTimeout: 5 });
  t.teardown(m.unmount);
  return { dir: dir.path, m };
}

(asRoot ? test : test.skip)('umount refuses a mount that is not btmount\'s (tmpfs) and leaves it mounted', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const mnt = path.join(dir.path, 'tmpfsmnt');
  await mkdir(mnt);
  const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=1M', 't', mnt]);
  t.is(mounted.code, 0, mounted.stderr);
  t.teardown(() => run('umount', ['-l', mnt]));
  const res = await btmount(['umount', mnt]);
  t.is(res.code, 1);
  t.deepEqual(res.stderr.trim().split('\n'), [`btmount: cannot unmount ${mnt}: it is a tmpfs mount (t), not a btmount one; nothing was done`]);
  t.true(await isMountpoint(mnt), 'the tmpfs is still mounted');
  const lazy = await btmount(['umount', '--lazy', mnt]);
  t.is(lazy.code, 1, '--lazy does not change whose mount it is');
  t.true(await isMountpoint(mnt));
});

test('a busy mount is not detached: umount names who holds it and leaves it served; --lazy detaches it', async (t) => {
  const { m } = await mountedFixture(t);
  // A shell whose working directory is inside the mount holds it.
  const holder = startProcess('sleep', ['120'], { cwd: path.join(m.mountpoint, 'sub') });
  t.teardown(() => holder.stop('SIGKILL'));
  await new Promise((r) => setTimeout(r, 300));

  const res = await btmount(['umount', m.mountpoint]);
  t.is(res.code, 1);
  const lines = res.stderr.trim().split('\n');
  t.is(lines.length, 1, res.stderr);
  t.regex(lines[0]!, new RegExp(`^btmount: cannot unmount ${m.mountpoint}: it is busy \\(in use by .*sleep \\(pid ${holder.pid}\\).*\\); .*btmount umount --lazy`));
  t.true(await isMountpoint(m.mountpoint), 'still mounted');
  t.true(alive(m.pid), 'the daemon still serves it');
  const status = await btmount(['status', m.mountpoint]);
  t.is(status.code, 0, status.stderr);

  const lazy = await btmount(['umount', '--lazy', m.mountpoint]);
  t.is(lazy.code, 0, lazy.stderr);
  t.false(await isMountpoint(m.mountpoint));
  t.true(await waitUntil(() => !alive(m.pid), 15_000), 'the daemon exited');
});

(asRoot ? test : test.skip)("another user's umount of a btmount mount is refused before anything is done", async (t) => {
  const { dir, m } = await mountedFixture(t);
  await chmod(dir, 0o755);
  const res = await new Promise<RunResult>((resolve) => {
    execFile(process.execPath, [BTMOUNT_BIN, 'umount', m.mountpoint], { uid: OTHER_UID, gid: OTHER_UID, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }, timeout: 60_000, encoding: 'utf8' }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
  t.is(res.code, 1);
  t.deepEqual(res.stderr.trim().split('\n'), [`btmount: cannot unmount ${m.mountpoint}: it was mounted by uid 0; only that user or root can unmount it`]);
  t.true(await isMountpoint(m.mountpoint));
  t.true(alive(m.pid));
});

test('after kill -9 of the daemon, status says it is gone and umount cleans up', async (t) => {
  const { m } = await mountedFixture(t);
  process.kill(m.pid, 'SIGKILL');
  t.true(await waitUntil(() => !alive(m.pid), 10_000));
  const status = await btmount(['status', m.mountpoint]);
  t.is(status.code, 1);
  t.deepEqual(status.stderr.trim().split('\n'), [`btmount: cannot get status: the daemon of ${m.mountpoint} (pid ${m.pid}) is gone: run btmount umount ${m.mountpoint}`]);
  const un = await btmount(['umount', m.mountpoint]);
  t.is(un.code, 0, un.stderr);
  t.regex(un.stderr, /removed a mount whose daemon was gone/);
  t.false(await isMountpoint(m.mountpoint));
});

test('umount of a directory that is not mounted, and of a path that does not exist, is refused with one line', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  for (const target of [dir.path, path.join(dir.path, 'nope')]) {
    const res = await btmount(['umount', target]);
    t.is(res.code, 1);
    t.deepEqual(res.stderr.trim().split('\n'), [`btmount: cannot unmount ${target}: not a btmount mount point`]);
  }
});
