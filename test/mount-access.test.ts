import test, { type ExecutionContext } from 'ava';
import { chmod, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { accessProblem, allowsUserAllowOther, kernelMountOptions } from '../src/fs/fuse-options.js';
import { BTMOUNT_BIN, btmount, run, tempDir, type RunResult } from './helpers/run.js';
import { freePort, makeDataset, type Dataset } from './helpers/peers.js';
import { mountTorrent, seedWithBtmount, sha256Via } from './helpers/mount.js';

// Who may read a mount: allow_other, uid/gid, modes, checked by the kernel (default_permissions).
// A mount made by root is read by another uid (nobody, 65534) in a child process of that uid.

const NOBODY = 65534;
const FILES = [
  { path: 'train/a.bin', length: 300_001 },
  { path: 'labels.csv', length: 777 },
];

/** Runs a command as uid/gid 65534; never throws on a non-zero exit. */
const runAsNobody = (cmd: string, args: string[]): Promise<RunResult> => run(cmd, args, { uid: NOBODY });

/** The /proc/mounts line of a mountpoint. */
async function mountLine(mountpoint: string): Promise<string> {
  const text = await readFile('/proc/mounts', 'utf8');
  return text.split('\n').find((line) => line.split(' ')[1] === mountpoint) ?? '';
}

/** A dataset seeded by btmount seed, in a temp dir other users may traverse (mkdtemp makes it 0700). */
async function seeded(t: ExecutionContext): Promise<{ base: string; ds: Dataset; peer: string }> {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  await chmod(dir.path, 0o755);
  const ds = await makeDataset(dir.path, 'dataset', FILES, 64 * 1024);
  const port = await freePort();
  const seeder = await seedWithBtmount(ds, port);
  t.teardown(() => seeder.stop());
  return { base: dir.path, ds, peer: `127.0.0.1:${port}` };
}

const asRoot = process.getuid?.() === 0 ? test.serial : test.skip;

asRoot('a root mount with --allow-other is read byte-exactly by uid 65534; without it that uid is refused', async (t) => {
  const { base, ds, peer } = await seeded(t);
  const open = await mountTorrent(base, ds.torrentPath, { peers: [peer], name: 'open', extra: ['--allow-other'] });
  t.teardown(open.unmount);
  const closed = await mountTorrent(base, ds.torrentPath, { peers: [peer], name: 'closed', cache: path.join(base, 'cache2') });
  t.teardown(closed.unmount);

  const line = await mountLine(open.mountpoint);
  t.regex(line, /\bfuse\.btmount\b/, line);
  const flags = line.split(' ')[3]!.split(',');
  t.true(flags.includes('ro'), line);
  t.true(flags.includes('default_permissions'), line);
  t.true(flags.includes('allow_other'), line);
  t.false((await mountLine(closed.mountpoint)).split(' ')[3]!.split(',').includes('allow_other'));

  for (const f of ds.files) {
    const res = await runAsNobody('sha256sum', [path.join(open.mountpoint, f.path)]);
    t.is(res.code, 0, res.stderr);
    t.is(res.stdout.split(' ')[0], f.sha256, f.path);
  }
  const refused = await runAsNobody('cat', [path.join(closed.mountpoint, 'labels.csv')]);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /Permission denied/);
  // Root made both mounts and reads both.
  t.is(await sha256Via(path.join(closed.mountpoint, 'labels.csv')), ds.files[1]!.sha256);
  // Writes are refused by the kernel (ro) before the daemon sees them.
  const write = await run('sh', ['-c', `echo x > ${path.join(open.mountpoint, 'labels.csv')}`]);
  t.regex(write.stderr, /Read-only file system/);
});

asRoot('--uid, --gid, --file-mode and --dir-mode set what stat shows, and the kernel enforces the modes', async (t) => {
  const { base, ds, peer } = await seeded(t);
  const m = await mountTorrent(base, ds.torrentPath, {
    peers: [peer],
    extra: ['--allow-other', '--uid', '1234', '--gid', '4321', '--file-mode', '0440', '--dir-mode', '0750'],
  });
  t.teardown(m.unmount);
  const st = await run('stat', ['-c', '%u %g %a %F', path.join(m.mountpoint, 'train'), path.join(m.mountpoint, 'train/a.bin')]);
  t.deepEqual(st.stdout.trim().split('\n'), ['1234 4321 750 directory', '1234 4321 440 regular file']);
  // 65534 is neither owner nor group and "other" has no bits: default_permissions refuses it, allow_other or not.
  const refused = await runAsNobody('ls', [path.join(m.mountpoint, 'train')]);
  t.not(refused.code, 0);
  t.regex(refused.stderr, /Permission denied/);
  // Owned by 65534, it may read.
  const mine = await mountTorrent(base, ds.torrentPath, {
    peers: [peer], name: 'mine', cache: path.join(base, 'cache2'),
    extra: ['--allow-other', '--uid', String(NOBODY), '--file-mode', '400', '--dir-mode', '500'],
  });
  t.teardown(mine.unmount);
  const ok = await runAsNobody('sha256sum', [path.join(mine.mountpoint, 'train/a.bin')]);
  t.is(ok.stdout.split(' ')[0], ds.files[0]!.sha256, ok.stderr);
});

test('a non-root --allow-other without user_allow_other says what to put in /etc/fuse.conf', (t) => {
  const conf = '# comment\n#user_allow_other\nmount_max = 10\n';
  t.false(allowsUserAllowOther(conf));
  t.true(allowsUserAllowOther(conf + 'user_allow_other  # for btmount\n'));
  t.regex(accessProblem({ allowOther: true, allowRoot: false }, 1000, conf)!, /--allow-other needs the line "user_allow_other" in \/etc\/fuse\.conf/);
  t.regex(accessProblem({ allowOther: false, allowRoot: true }, 1000, undefined)!, /--allow-root needs the line "user_allow_other"/);
  t.is(accessProblem({ allowOther: true, allowRoot: false }, 1000, 'user_allow_other\n'), undefined);
  t.is(accessProblem({ allowOther: true, allowRoot: false }, 0, conf), undefined);
  t.is(accessProblem({ allowOther: false, allowRoot: false }, 1000, conf), undefined);
  t.regex(accessProblem({ allowOther: true, allowRoot: true }, 0, conf)!, /exclude each other/);
  const list = kernelMountOptions({ fsname: 'btmount:ab', allowOther: true, allowRoot: false, uid: 1, gid: 1, fileMode: 0o444, dirMode: 0o555, debug: false });
  t.deepEqual(list, ['ro', 'default_permissions', 'fsname=btmount:ab', 'subtype=btmount', 'allow_other']);
});

// Needs root (to run btmount as uid 65534) and a fuse.conf without user_allow_other: declared skipped otherwise.
const fuseConfAllowsOther = allowsUserAllowOther(readFileSyncOr('/etc/fuse.conf'));
(fuseConfAllowsOther ? test.skip : asRoot)('btmount mount --allow-other run by uid 65534 fails with that message when /etc/fuse.conf lacks user_allow_other', async (t) => {
  const { base, ds } = await seeded(t);
  const mnt = path.join(base, 'mnt');
  await run('install', ['-d', '-o', String(NOBODY), mnt]);
  const res = await runAsNobody(process.execPath, [BTMOUNT_BIN, 'mount', ds.torrentPath, mnt, '--allow-other', '--no-dht', '--port', '0', '--cache', path.join(base, 'nobody-cache')]);
  t.is(res.code, 1, res.stdout);
  t.regex(res.stderr, /^btmount: cannot mount: --allow-other needs the line "user_allow_other" in \/etc\/fuse\.conf/m);
  t.is(res.stderr.trim().split('\n').length, 1, res.stderr);
  t.is((await btmount(['umount', mnt])).code, 1); // nothing was mounted
});

function readFileSyncOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
