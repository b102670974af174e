/**
 * The native (libfuse3) backend's own promises: reads served in C never return another
 * piece's bytes while JS evicts and reuses slots under them; pieces found on disk are
 * checked by JS before C serves them; the mount ends cleanly however it is stopped; and
 * the backend can be chosen. Every test skips when the addon is not built.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import type { MountStatus } from '../src/control/status-schema.js';
import { loadNativeAddon } from '../src/fs/native/addon.js';
import { isMounted } from '../src/mount-table.js';
import { mountTorrent, mountWithCli, python, seedWithBtmount, sha256Via } from './helpers/mount.js';
import { freePort, makeDataset, startProcess, type Dataset } from './helpers/peers.js';
import { btmount, run, tempDir } from './helpers/run.js';
import { pieceOffset } from './helpers/store-fixtures.js';
import { waitUntil } from './helpers/discovery.js';

const nativeTest = loadNativeAddon() instanceof Error ? test.skip : test;
const NATIVE = { ...process.env, BTMOUNT_FUSE_BACKEND: 'native' };

async function status(mountpoint: string): Promise<MountStatus> {
  const out = await btmount(['status', mountpoint, '--json']);
  if (out.code !== 0) throw new Error(`status failed: ${out.stderr}`);
  return JSON.parse(out.stdout) as MountStatus;
}

async function seeded(t: ExecutionContext, files: Array<{ path: string; length: number }>, pieceSize: number) {
  const dir = await tempDir('btmount-native-');
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'dataset', files, pieceSize);
  const port = await freePort();
  const seeder = await seedWithBtmount(ds, port);
  t.teardown(() => seeder.stop());
  return { dir: dir.path, ds, port, seeder };
}

/**
 * N reader processes doing O_DIRECT preads (the kernel's page cache would answer repeats
 * without asking the daemon) of random ranges, each compared with the source file.
 */
const CHURN_READERS = `
import os, random, sys
mnt, src, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lengths = [int(x) for x in sys.argv[5].split(',')]
files = sys.argv[6:]
rng = random.Random(seed)
fds = {f: (os.open(os.path.join(mnt, f), os.O_RDONLY | os.O_DIRECT), os.open(os.path.join(src, f), os.O_RDONLY)) for f in files}
bad = 0
for i in range(n):
    f = files[0] if rng.random() < 0.7 else rng.choice(files)
    a, b = fds[f]
    size = os.fstat(b).st_size
    off = rng.randrange(0, size)
    length = rng.choice(lengths)
    got, want = os.pread(a, length, off), os.pread(b, length, off)
    if got != want:
        bad += 1
        print('mismatch', f, off, length, len(got), len(want), flush=True)
print('done', n, 'bad', bad, flush=True)
`;

/**
 * A native mount of `files` (pieces of `pieceSize`) with a cache of `cachePieces` pieces, 300 µs
 * of fault injection between C checking a piece and its read or reply (evictions land inside
 * C's reads often enough that a missing guard shows as foreign bytes), then 16 CHURN_READERS
 * of `reads` reads each, `lengths` long. Returns the mount's status after the readers.
 */
async function churn(
  t: ExecutionContext,
  files: Array<{ path: string; length: number }>,
  pieceSize: number,
  cachePieces: number,
  reads: number,
  lengths: number[],
): Promise<MountStatus> {
  const { dir, ds, port } = await seeded(t, files, pieceSize);
  const mountpoint = path.join(dir, 'mnt');
  await mkdir(mountpoint);
  const args = ['mount', ds.torrentPath, mountpoint, '--cache', path.join(dir, 'cache'), '--port', '0', '--no-dht'];
  args.push('--peer', `127.0.0.1:${port}`, '--cache-size', String(cachePieces * pieceSize));
  const m = await mountWithCli(mountpoint, args, { env: { ...NATIVE, BTMOUNT_NATIVE_READ_DELAY_US: '300' } });
  t.teardown(m.unmount);
  t.is((await status(m.mountpoint)).fuse.backend, 'native');

  const names = files.map((f) => f.path);
  const readerArgs = (i: number): string[] => [m.mountpoint, ds.root, String(reads), String(i + 1), lengths.join(','), ...names];
  const results = await Promise.all(Array.from({ length: 16 }, (_, i) => python(CHURN_READERS, readerArgs(i), 200_000)));
  for (const r of results) t.regex(r.stdout, new RegExp(`done ${reads} bad 0`), r.stdout.slice(0, 2000) + r.stderr.slice(0, 2000));
  return status(m.mountpoint);
}

nativeTest('eviction churn under 16 readers: no read served by the native backend returns another piece\'s bytes', async (t) => {
  t.timeout(240_000);
  // 16 KiB pieces, a cache of 128 of them (2 MiB) for 9 MiB of data: reads keep evicting
  // and reusing slots while other threads read them.
  const files = [{ path: 'big.bin', length: 8 * 1024 * 1024 + 777 }];
  for (let i = 0; i < 40; i++) files.push({ path: `small/${String(i).padStart(3, '0')}.bin`, length: 3000 + i * 997 });
  const s = await churn(t, files, 16 * 1024, 128, 400, [1, 511, 4096, 16384, 20000, 40000]);
  t.true(s.cache.evictions > 500, `evictions: ${s.cache.evictions}`);
  t.true(s.fuse.nativeReads!.servedInC > 100, `served in C: ${s.fuse.nativeReads!.servedInC}`);
  t.true(s.fuse.nativeReads!.sentToReader > 100, `sent to the reader: ${s.fuse.nativeReads!.sentToReader}`);
  // The race the generations guard against did happen (and those reads went to JS).
  t.true(s.fuse.nativeReads!.slotReusedDuringRead > 0, JSON.stringify(s.fuse));
  t.is(s.reads.failed, 0);
});

nativeTest('eviction churn under 16 readers of 64-512 KiB: replies spliced from the slot file never carry another piece\'s bytes', async (t) => {
  t.timeout(240_000);
  // 64 KiB pieces, a cache of 48 of them (3 MiB) for 12 MiB of data. Reads of 64 KiB and more
  // are spliced from the slot file (the kernel copies the pages when the reply is written, so
  // no check after the copy is possible): the slot stays pinned until then, and the fault
  // injection sits inside that window, while other readers keep evicting.
  const files = [{ path: 'big.bin', length: 12 * 1024 * 1024 + 4321 }];
  for (let i = 0; i < 8; i++) files.push({ path: `mid/${i}.bin`, length: 300_000 + i * 7777 });
  const s = await churn(t, files, 64 * 1024, 48, 150, [65536, 100000, 131072, 262144, 524288]);
  t.true(s.cache.evictions > 300, `evictions: ${s.cache.evictions}`);
  t.true(s.fuse.nativeReads!.splicedFromCache > 100, `spliced: ${JSON.stringify(s.fuse)}`);
  t.is(s.reads.failed, 0);
});

nativeTest('pieces found on disk go to JS for their SHA-1 first: a damaged one is never served, the others are', async (t) => {
  t.timeout(120_000);
  const files = [
    { path: 'a.bin', length: 300_000 },
    { path: 'b.bin', length: 200_000 },
  ];
  const { dir, ds, port, seeder } = await seeded(t, files, 64 * 1024);
  const cache = path.join(dir, 'cache');
  const first = await mountTorrent(dir, ds.torrentPath, { peers: [`127.0.0.1:${port}`], cache });
  for (const f of ds.files) t.is(await sha256Via(path.join(first.mountpoint, f.path)), f.sha256);
  t.is((await first.unmount()).code, 0);
  await seeder.stop();

  // Damage piece 1 (bytes 65536..131071 of a.bin) in the cache's data file.
  const storeDir = path.join(cache, ds.metainfo.infoHash);
  const fh = await open(path.join(storeDir, 'data'), 'r+');
  await fh.write(Buffer.alloc(100, 0xee), 0, 100, (await pieceOffset(storeDir, 1)) + 5000);
  await fh.close();

  const again = await mountTorrent(dir, ds.torrentPath, { cache, readTimeout: 2, name: 'mnt2' });
  t.teardown(again.unmount);
  const direct = `
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
for off in (0, 70000, 200000):
    try:
        print(off, len(os.pread(fd, 1000, off)))
    except OSError as e:
        print(off, 'errno', e.errno)
`;
  const res = await python(direct, [path.join(again.mountpoint, 'a.bin')]);
  // Piece 0 and 3 are checked and served; piece 1 fails its check, and with no peer the read ends in EIO.
  t.is(res.stdout, '0 1000\n70000 errno 5\n200000 1000\n', res.stderr);
  t.is(await sha256Via(path.join(again.mountpoint, 'b.bin')), ds.files[1]!.sha256);
  const s = await status(again.mountpoint);
  t.true(s.fuse.nativeReads!.sentToReader >= 3, JSON.stringify(s.fuse));
  t.is(s.cache.droppedCorrupt, 1);
});

/** Threads of a process (its libfuse workers among them), or 0 once it is gone. */
async function threadCount(pid: number): Promise<number> {
  const res = await run('ls', [`/proc/${pid}/task`]);
  return res.code === 0 ? res.stdout.trim().split('\n').length : 0;
}

async function gone(pid: number): Promise<boolean> {
  return (await threadCount(pid)) === 0;
}

async function mountedForLifecycle(t: ExecutionContext): Promise<{ ds: Dataset; mountpoint: string; pid: number; unmount: () => Promise<unknown> }> {
  const { dir, ds, port } = await seeded(t, [{ path: 'x.bin', length: 100_000 }], 64 * 1024);
  const m = await mountTorrent(dir, ds.torrentPath, { peers: [`127.0.0.1:${port}`] });
  t.teardown(m.unmount);
  t.is(await sha256Via(path.join(m.mountpoint, 'x.bin')), ds.files[0]!.sha256);
  t.true((await threadCount(m.pid)) > 1);
  return { ds, mountpoint: m.mountpoint, pid: m.pid, unmount: m.unmount };
}

nativeTest('lifecycle: btmount umount --lazy while a file is held open ends the daemon and its FUSE threads (plain umount refuses, busy)', async (t) => {
  t.timeout(90_000);
  const m = await mountedForLifecycle(t);
  const holder = startProcess('/usr/bin/python3', ['-c', 'import sys,time; f=open(sys.argv[1],"rb"); print("open", flush=True); time.sleep(120)', path.join(m.mountpoint, 'x.bin')]);
  t.teardown(() => holder.stop('SIGKILL'));
  await holder.waitFor(/open/);
  const refused = await btmount(['umount', m.mountpoint], { timeoutMs: 60_000 });
  t.is(refused.code, 1);
  t.regex(refused.stderr, /busy/);
  t.true(await isMounted(m.mountpoint), 'a busy mount stays mounted without --lazy');
  const res = await btmount(['umount', '--lazy', m.mountpoint], { timeoutMs: 60_000 });
  t.is(res.code, 0, res.stderr);
  await waitUntil('the daemon to exit', async () => gone(m.pid), 30_000);
  t.false(await isMounted(m.mountpoint));
});

nativeTest('lifecycle: fusermount -u from outside, or SIGTERM, ends the daemon', async (t) => {
  t.timeout(120_000);
  const a = await mountedForLifecycle(t);
  const res = await run('fusermount', ['-u', a.mountpoint]);
  t.is(res.code, 0, res.stderr);
  await waitUntil('the daemon to exit after fusermount -u', async () => gone(a.pid), 30_000);

  const b = await mountedForLifecycle(t);
  process.kill(b.pid, 'SIGTERM');
  await waitUntil('the daemon to exit after SIGTERM', async () => gone(b.pid), 30_000);
  t.false(await isMounted(b.mountpoint));
});

nativeTest('BTMOUNT_FUSE_BACKEND picks the backend, and status says which one serves', async (t) => {
  t.timeout(120_000);
  const { dir, ds, port } = await seeded(t, [{ path: 'x.bin', length: 70_000 }], 64 * 1024);
  const peers = [`127.0.0.1:${port}`];
  const native = await mountTorrent(dir, ds.torrentPath, { peers, name: 'native' });
  t.teardown(native.unmount);
  const s = await status(native.mountpoint);
  t.is(s.fuse.backend, 'native');
  const text = await btmount(['status', native.mountpoint]);
  t.regex(text.stdout, /\n {2}fuse {7}native \(libfuse 3\)/);

  const fallbackDir = path.join(dir, 'fallback');
  await run('mkdir', ['-p', fallbackDir]);
  const args = ['mount', ds.torrentPath, fallbackDir, '--cache', path.join(dir, 'cache2'), '--port', '0', '--no-dht', '--peer', peers[0]!];
  const mounted = await btmount(args, { env: { ...process.env, BTMOUNT_FUSE_BACKEND: 'fuse-native' }, timeoutMs: 60_000 });
  t.is(mounted.code, 0, mounted.stderr);
  t.teardown(() => btmount(['umount', fallbackDir]));
  t.is((await status(fallbackDir)).fuse.backend, 'fuse-native');
  t.is(await sha256Via(path.join(fallbackDir, 'x.bin')), ds.files[0]!.sha256);
  t.regex((await btmount(['status', fallbackDir])).stdout, /\n {2}fuse {7}fuse-native/);

  await run('mkdir', ['-p', path.join(dir, 'badenv')]);
  const bad = await btmount(['mount', ds.torrentPath, path.join(dir, 'badenv'), '--cache', path.join(dir, 'cache3'), '--port', '0', '--no-dht'], {
    env: { ...NATIVE, BTMOUNT_FUSE_BACKEND: 'libfuse9' },
    timeoutMs: 60_000,
  });
  t.not(bad.code, 0);
  t.regex(bad.stderr, /BTMOUNT_FUSE_BACKEND must be native or fuse-native/);
});
