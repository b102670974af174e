import test, { type ExecutionContext } from 'ava';
import { chmod, readFile, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { BTMOUNT_BIN, btmount, run, tempDir, type RunResult } from './helpers/run.js';
import { freePort, makeDataset, type Dataset } from './helpers/peers.js';
import { seedWithBtmount } from './helpers/mount.js';
import { buildTorrent } from './helpers/torrent-builder.js';
import { buildProgram } from '../src/cli/main.js';
import { applyMountOptions, splitMountOptions } from '../src/cli/mount-options.js';
import { UserError } from '../src/user-error.js';

// mount(8) and /etc/fstab: `mount -t fuse.btmount <source> <dir> -o …` runs Debian's mount.fuse,
// which runs `btmount <source> <dir> -o <options>` through /bin/sh with PATH cleared, so btmount
// must be on the shell's default PATH (/usr/local/sbin:/usr/local/bin:…). The test gives it one
// without touching the machine: in a private mount namespace (unshare -m) a temp dir holding a
// `btmount` launcher is bind-mounted over /usr/local/sbin, and a temp fstab over /etc/fstab.

const FILES = [
  { path: 'train/a.bin', length: 200_003 },
  { path: 'labels.csv', length: 999 },
];

const canMount = process.getuid?.() === 0 && existsSync('/usr/bin/unshare') && existsSync('/sbin/mount.fuse');
const asRoot = canMount ? test.serial : test.skip;

/** Kills daemons a failed run left behind (inside the namespace, they would keep their mounts there). */
function killLeftovers(t: ExecutionContext, output: () => string): void {
  t.teardown(() => {
    for (const m of output().matchAll(/daemon pid (\d+)/g)) {
      try {
        process.kill(Number(m[1]), 'SIGTERM');
      } catch {
        // gone, as it should be
      }
    }
  });
}

async function seeded(t: ExecutionContext): Promise<{ base: string; ds: Dataset; peer: string; bin: string }> {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'dataset', FILES, 64 * 1024);
  const port = await freePort();
  const seeder = await seedWithBtmount(ds, port);
  t.teardown(() => seeder.stop());
  const bin = path.join(dir.path, 'bin');
  await mkdir(bin);
  // What `npm install -g` puts on PATH, with this node: mount(8) clears PATH, so `env node` may not find it.
  await writeFile(path.join(bin, 'btmount'), `#!/bin/sh\nexec '${process.execPath}' '${BTMOUNT_BIN}' "$@"\n`);
  await chmod(path.join(bin, 'btmount'), 0o755);
  return { base: dir.path, ds, peer: `127.0.0.1:${port}`, bin };
}

/**
 * A shell script run in the namespace: mount, read every file (sha256), note the daemon's pid,
 * `umount` with the system's tool, and wait for the daemon to leave.
 */
function mountReadUmount(mountCommand: string, mnt: string, ds: Dataset): string {
  const files = ds.files.map((f) => `'${path.join(mnt, f.path)}'`).join(' ');
  return `
set -e
out=$(${mountCommand})
echo "$out"
grep " ${mnt} " /proc/mounts
sha256sum ${files}
pid=$(echo "$out" | sed -n 's/.*daemon pid \\([0-9]*\\).*/\\1/p')
umount '${mnt}'
for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || { echo "daemon $pid ended"; break; }; sleep 0.2; done
grep -q " ${mnt} " /proc/mounts && echo "still mounted" || echo "unmounted"
`;
}

function inNamespace(bin: string, fstab: string | undefined, script: string) {
  const binds = [`mount --bind '${bin}' /usr/local/sbin`];
  if (fstab) binds.push(`mount --bind '${fstab}' /etc/fstab`);
  return run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `${binds.join(' && ')} && sh -c '${script.replace(/'/g, `'\\''`)}'`], { timeoutMs: 110_000 });
}

function checkRun(t: ExecutionContext, res: RunResult, ds: Dataset, mnt: string): void {
  const out = res.stdout + res.stderr;
  t.is(res.code, 0, out);
  t.regex(res.stdout, new RegExp(`^btmount:[0-9a-f]{40} ${mnt} fuse\\.btmount ro,`, 'm'), out);
  t.regex(res.stdout, /mounted dataset at /, out);
  for (const f of ds.files) t.true(res.stdout.includes(`${f.sha256}  ${path.join(mnt, f.path)}`), `${f.path}\n${out}`);
  t.regex(res.stdout, /daemon \d+ ended/, out);
  t.regex(res.stdout, /^unmounted$/m, out);
}

asRoot('mount -t fuse.btmount mounts a torrent seeded on 127.0.0.1, and the system umount ends the daemon cleanly', async (t) => {
  const { base, ds, peer, bin } = await seeded(t);
  const mnt = path.join(base, 'data');
  await mkdir(mnt);
  const cache = path.join(base, 'cache');
  const opts = `cache=${cache},cache_size=20M,peer=${peer},port=0,no_dht,allow_other,_netdev,nofail,defaults`;
  const res = await inNamespace(bin, undefined, mountReadUmount(`mount -t fuse.btmount '${ds.torrentPath}' '${mnt}' -o ${opts}`, mnt, ds));
  killLeftovers(t, () => res.stdout);
  checkRun(t, res, ds, mnt);
  const log = await readFile(path.join(cache, 'logs', `${ds.metainfo.infoHash}.log`), 'utf8');
  t.regex(log, /stopping: unmounted from outside/);
  t.regex(log, /"msg":"stopped"/);
});

asRoot('an /etc/fstab line with noauto,nofail,_netdev mounts by its mount point', async (t) => {
  const { base, ds, peer, bin } = await seeded(t);
  const mnt = path.join(base, 'data');
  await mkdir(mnt);
  const fstab = path.join(base, 'fstab');
  const line = `${ds.torrentPath} ${mnt} fuse.btmount noauto,nofail,_netdev,cache=${path.join(base, 'cache')},peer=${peer},port=0,no_dht,allow_other,x-systemd.mount-timeout=5min 0 0`;
  await writeFile(fstab, `# test fstab\n${line}\n`);
  const res = await inNamespace(bin, fstab, mountReadUmount(`mount '${mnt}'`, mnt, ds));
  killLeftovers(t, () => res.stdout);
  checkRun(t, res, ds, mnt);
});

test('-o entries go through the long options’ own parsers; mount(8) options are accepted; unknown ones are a clear error', (t) => {
  const parse = (list: string): Record<string, unknown> => {
    const mount = buildProgram().commands.find((c) => c.name() === 'mount')!;
    applyMountOptions(mount, [list], 'cannot mount');
    return mount.opts();
  };
  const opts = parse('cache=/c,cache_size=20G,peer=10.0.0.1:6881,peer=[::1]:7,no_dht,allow_other,read_timeout=5,ro,rw,dev,suid,defaults,nofail,_netdev,noauto,user,x-systemd.automount,comment=x');
  t.is(opts['cache'], '/c');
  t.is(opts['cacheSize'], 20 * 1024 ** 3);
  t.deepEqual(opts['peer'], [{ host: '10.0.0.1', port: 6881 }, { host: '::1', port: 7 }]);
  t.is(opts['dht'], false);
  t.is(opts['allowOther'], true);
  t.is(opts['readTimeout'], 5);
  t.deepEqual(splitMountOptions(['a=1,,b', 'c=x=y']), [{ key: 'a', value: '1' }, { key: 'b', value: undefined }, { key: 'c', value: 'x=y' }]);

  const refused: Array<[string, RegExp]> = [
    ['frobnicate', /^cannot mount: unknown mount option "frobnicate" in -o/],
    ['cache', /^cannot mount: mount option "cache" needs a value: cache=…/],
    ['allow_other=yes', /^cannot mount: mount option "allow_other" takes no value/],
    ['options=x', /unknown mount option "options"/],
  ];
  for (const [list, message] of refused) {
    const err = t.throws(() => parse(list), { instanceOf: UserError });
    t.regex(err!.message, message);
  }
  t.throws(() => parse('cache_size=lots'), { message: /^invalid --cache-size: invalid size "lots"/ });
});

test('btmount <source> <dir> -o with a bad entry fails with one line and mounts nothing', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const mnt = path.join(dir.path, 'mnt');
  await mkdir(mnt);
  const torrent = path.join(dir.path, 'x.torrent');
  await writeFile(torrent, buildTorrent({ name: 'x.bin', length: 1000 }));
  const res = await btmount([torrent, mnt, '-o', `cache=${path.join(dir.path, 'cache')},no_dht,colour=blue`]);
  t.is(res.code, 1);
  t.regex(res.stderr, /^btmount: cannot mount: unknown mount option "colour" in -o/);
  t.is(res.stderr.trim().split('\n').length, 1, res.stderr);
  t.is((await run('mountpoint', ['-q', mnt])).code, 32);
});
