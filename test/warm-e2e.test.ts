import test, { type ExecutionContext } from 'ava';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cachedPercent, mountFixture, waitForStatus } from './control-helpers.js';
import { sha256Via } from './helpers/mount.js';
import { run } from './helpers/run.js';
import { fullStorage, startFakePeer, type Dataset } from './helpers/peers.js';
import type { PieceIndex } from '../src/metainfo/piece-layout.js';

const KiB = 1024;

/** Sizes not aligned to the 64 KiB pieces: neighbouring files share pieces. */
const TRAIN = Array.from({ length: 10 }, (_, i) => ({ path: `train/${String(i).padStart(2, '0')}.jpg`, length: 90_000 + i * 13_001 }));
const VAL = [
  { path: 'val/a.jpg', length: 150_000 },
  { path: 'val/b.jpg', length: 70_000 },
];

test('warm a directory, stop every seeder, then every file of it reads back from the cache', async (t) => {
  const f = await mountFixture(t, { files: [...TRAIN, ...VAL, { path: 'zz-not-warmed.bin', length: 300_000 }], readTimeout: 3 });
  const out = await f.bt(['warm', f.mountpoint, 'train']);
  t.is(out.code, 0, out.stderr);
  t.regex(out.stdout, /^warmed 10 files \(/);

  await f.seeder!.stop();
  for (const file of f.ds.files.filter((x) => x.path.startsWith('train/'))) {
    t.is(await sha256Via(path.join(f.mountpoint, file.path)), file.sha256, file.path);
  }
  // The seeder is really gone: a file that was not warmed cannot be read.
  const cold = await run('cat', [path.join(f.mountpoint, 'zz-not-warmed.bin')]);
  t.false(cold.timedOut, 'the cold read ended by itself');
  t.is(cold.code, 1, cold.stderr);
  t.regex(cold.stderr, /Input\/output error/);
  const s = await f.status();
  t.is(s.peers.length, 0);
  t.true(s.reads.failed > 0, 'the cold read failed');
  t.true(s.cache.hits > 0);
});

test('--check before and after warm (with --json progress); --evict then --check shows 0 %', async (t) => {
  // Piece-aligned files, so no piece of train/ holds bytes of other.bin.
  const files = [
    { path: 'other.bin', length: 128 * KiB },
    { path: 'train/a.bin', length: 192 * KiB },
    { path: 'train/b.bin', length: 64 * KiB },
  ];
  const f = await mountFixture(t, { files });
  const before = await f.bt(['warm', f.mountpoint, '--check', '--json', 'train', 'other.bin']);
  t.is(before.code, 0, before.stderr);
  t.like(JSON.parse(before.stdout), {
    paths: [
      { path: 'train', kind: 'dir', files: 2, filesCached: 0, bytes: 256 * KiB, cachedBytes: 0, percent: 0 },
      { path: 'other.bin', kind: 'file', files: 1, bytes: 128 * KiB, cachedBytes: 0, percent: 0 },
    ],
    total: { files: 3, bytes: 384 * KiB, cachedBytes: 0, percent: 0 },
  });

  const out = await f.bt(['warm', f.mountpoint, 'train/', '--json']);
  t.is(out.code, 0, out.stderr);
  const events = out.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; state: string; files: { done: number; total: number } });
  t.is(events[0]!.event, 'start');
  t.is(events.at(-1)!.event, 'end');
  t.is(events.at(-1)!.state, 'complete');
  t.deepEqual(events.at(-1)!.files, { done: 2, total: 2 });
  t.deepEqual(await cachedPercent(f, ['train', 'other.bin', 'train/b.bin']), [100, 0, 100]);

  const text = await f.bt(['warm', f.mountpoint, '--check', 'train']);
  t.regex(text.stdout, /100\.0%\s+256 KiB of 256 KiB\s+2\/2 files\s+train/);

  const evicted = await f.bt(['warm', f.mountpoint, '--evict', 'train']);
  t.is(evicted.code, 0, evicted.stderr);
  t.regex(evicted.stdout, /evicted 4 pieces \(256 KiB\) of 2 files/);
  t.deepEqual(await cachedPercent(f, ['train', 'other.bin']), [0, 0]);
  t.is((await f.status()).pieces.have, 0);
});

/** A fixed shuffle of 0..n-1 (stride through the indices), far from torrent order. */
function shuffled(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 29 + 7) % n);
}

/**
 * The only seeder: our wire code with every piece, serving real blocks and noting
 * the order in which pieces are first requested (what the mount asked for, in order).
 */
async function startRecordingSeeder(t: ExecutionContext, ds: Dataset): Promise<{ args: string[]; firstRequests: number[] }> {
  const storage = await fullStorage(ds);
  const firstRequests: number[] = [];
  const peer = await startFakePeer('127.0.0.1', ds.metainfo, ({ wire, index, offset, length }) => {
    if (!firstRequests.includes(index)) firstRequests.push(index);
    void storage.readBlock(index as PieceIndex, offset, length).then((block) => wire.piece(index, offset, block));
  });
  t.teardown(peer.close);
  return { args: ['--peer', `127.0.0.1:${peer.port}`], firstRequests };
}

test('--from-list warms in exactly the order of the list: the one seeder sees the pieces requested in list order', async (t) => {
  const N = 48;
  // One piece per file, so the list order is a piece order.
  const files = Array.from({ length: N }, (_, i) => ({ path: `s/${String(i).padStart(3, '0')}.bin`, length: 64 * KiB }));
  let seeder: { firstRequests: number[] } | undefined;
  const f = await mountFixture(t, {
    files,
    seed: false,
    beforeMount: async (_dir, _env, ds) => {
      const s = await startRecordingSeeder(t, ds);
      seeder = s;
      return s.args;
    },
  });
  const order = shuffled(N);
  t.notDeepEqual(order, [...order].sort((a, b) => a - b), 'the list is not torrent order');
  // Absolute paths, as a sampler over the mount writes them; read from stdin.
  const list = order.map((i) => path.join(f.mountpoint, files[i]!.path)).join('\n') + '\n';
  const out = await f.bt(['warm', f.mountpoint, '--from-list', '-'], { input: list });
  t.is(out.code, 0, out.stderr);
  t.deepEqual(await cachedPercent(f, files.map((x) => x.path)), files.map(() => 100));
  const pieceOf = (i: number): number => f.ds.metainfo.files.find((x) => x.path === files[i]!.path)!.offset / (64 * KiB);
  t.deepEqual(seeder!.firstRequests, order.map(pieceOf));
});

test('--from-list takes CRLF line ends and blank lines', async (t) => {
  const files = Array.from({ length: 6 }, (_, i) => ({ path: `l/${i}.bin`, length: 64 * KiB }));
  const f = await mountFixture(t, { files });
  const listFile = path.join(f.dir, 'dos.txt');
  // As a list saved on Windows: CRLF, blank lines (empty and CR only), a relative and an absolute path.
  await writeFile(listFile, `l/3.bin\r\n\r\n${path.join(f.mountpoint, 'l/1.bin')}\r\n\n\r\nl/4.bin\r\n`);
  const out = await f.bt(['warm', f.mountpoint, '--from-list', listFile]);
  t.is(out.code, 0, out.stderr);
  t.regex(out.stdout, /^warmed 3 files \(/);
  t.deepEqual(await cachedPercent(f, files.map((x) => x.path)), [0, 100, 0, 100, 100, 0]);
});

test('warming more than the cache holds warns, warms a prefix of the list in order and names the rest', async (t) => {
  // 12 files of 2 pieces; 1 MiB of cache = 16 slots, 4 of them kept for live reads' read-ahead: 6 files fit.
  const files = Array.from({ length: 12 }, (_, i) => ({ path: `d/${String(i).padStart(2, '0')}.bin`, length: 128 * KiB }));
  const f = await mountFixture(t, { files, mount: ['--cache-size', '1M'] });
  const order = shuffled(12).map((i) => files[i]!.path);
  const listFile = path.join(f.dir, 'epoch.txt');
  await writeFile(listFile, order.join('\n') + '\n');
  const out = await f.bt(['warm', f.mountpoint, '--from-list', listFile]);
  t.is(out.code, 2, out.stdout + out.stderr);
  t.regex(out.stderr, new RegExp(`warning: the cache cannot hold all 12 files .* warming the first 6 .* 6 files \\(768 KiB\\) from ${order[6]} on will not fit`));
  t.regex(out.stderr, /not everything was warmed: 6 files \(768 KiB\) from .* on did not fit in the cache; 6 of 12 files/);
  t.deepEqual(await cachedPercent(f, order), [100, 100, 100, 100, 100, 100, 0, 0, 0, 0, 0, 0]);
  const s = await f.status();
  t.is(s.warm[0]!.state, 'partial');
  t.deepEqual(s.warm[0]!.notFitting, { files: 6, bytes: 6 * 128 * KiB, first: order[6]! });
});

test('a warm job running while a reader reads other files: both finish, with the right bytes', async (t) => {
  const files = [...Array.from({ length: 8 }, (_, i) => ({ path: `big/${i}.bin`, length: 512 * KiB })), ...TRAIN];
  // Slow enough that the reads happen while the job runs.
  const f = await mountFixture(t, { files, mount: ['--download-limit', '2M'] });
  const warm = f.spawn(['warm', f.mountpoint, 'big']);
  await warm.waitFor(/warm: 8 files/);
  for (const file of f.ds.files.filter((x) => x.path.startsWith('train/'))) {
    t.is(await sha256Via(path.join(f.mountpoint, file.path)), file.sha256, file.path);
  }
  t.is(await warm.exited, 0, warm.output());
  t.deepEqual(await cachedPercent(f, ['big']), [100]);
  for (const file of f.ds.files.filter((x) => x.path.startsWith('big/')).slice(0, 2)) {
    t.is(await sha256Via(path.join(f.mountpoint, file.path)), file.sha256, file.path);
  }
});

test('Ctrl-C stops the warm job, not the mount', async (t) => {
  const files = [...Array.from({ length: 8 }, (_, i) => ({ path: `big/${i}.bin`, length: 512 * KiB })), ...VAL];
  // So slow that the job cannot end by itself before the test interrupts it, however loaded the machine.
  const f = await mountFixture(t, { files, mount: ['--download-limit', '32K'] });
  const warm = f.spawn(['warm', f.mountpoint, 'big']);
  await warm.waitFor(/warm: 8 files/);
  await waitForStatus(f, (s) => (s.warm[0]?.bytes.done ?? 0) > 0);
  process.kill(warm.pid, 'SIGINT');
  t.is(await warm.exited, 130, warm.output());
  t.regex(warm.output(), /btmount: warm interrupted: \d+ of 8 files/);
  const s = await f.status();
  t.is(s.warm[0]!.state, 'cancelled');
  t.true(s.warm[0]!.bytes.done < s.warm[0]!.bytes.total);
  // The mount still serves reads.
  const val = f.ds.files.find((x) => x.path === 'val/b.jpg')!;
  t.is(await sha256Via(path.join(f.mountpoint, val.path)), val.sha256);
});

test('--background returns at once, status shows the job, --cancel stops it', async (t) => {
  const files = [...Array.from({ length: 8 }, (_, i) => ({ path: `big/${i}.bin`, length: 512 * KiB })), { path: 'labels.csv', length: 1000 }];
  // So slow that job 1 cannot end by itself before the test cancels it, however loaded the machine.
  const f = await mountFixture(t, { files, mount: ['--download-limit', '32K'] });
  const out = await f.bt(['warm', f.mountpoint, 'big', '--background']);
  t.is(out.code, 0, out.stderr);
  t.regex(out.stdout, /warm job 1 started in the background: 8 files, 4 MiB/);
  const running = await f.status();
  t.like(running.warm[0], { id: 1, state: 'running', background: true, files: { total: 8 } });
  t.true(running.warm[0]!.files.done < 8, 'not finished: there is a job to cancel');
  const text = await f.bt(['status', f.mountpoint]);
  t.regex(text.stdout, /warm +job 1 running \(background\): \d+\/8 files/);

  const cancel = await f.bt(['warm', f.mountpoint, '--cancel']);
  t.is(cancel.stdout, 'cancelled warm job 1\n', JSON.stringify((await f.status()).warm));
  t.is((await f.status()).warm[0]!.state, 'cancelled');

  t.is((await f.bt(['warm', f.mountpoint, 'labels.csv', '--background'])).code, 0);
  const done = await waitForStatus(f, (s) => s.warm.find((j) => j.id === 2)?.state !== 'running');
  t.like(done.warm.find((j) => j.id === 2), { state: 'complete', files: { done: 1, total: 1 } });
});

test('bad paths and unreachable data are clear errors with a non-zero exit code', async (t) => {
  const f = await mountFixture(t, { files: [...VAL, { path: 'labels.csv', length: 1000 }], seed: false });
  const missing = await f.bt(['warm', f.mountpoint, 'val', 'nope.jpg', 'val/c.jpg']);
  t.is(missing.code, 1);
  t.is(missing.stderr, 'btmount: cannot warm: not in the torrent: nope.jpg, val/c.jpg\n');

  const outside = await f.bt(['warm', f.mountpoint, '/etc/passwd']);
  t.is(outside.code, 1);
  t.is(outside.stderr, `btmount: cannot warm: /etc/passwd is outside the mount ${f.mountpoint}\n`);

  const listFile = path.join(f.dir, 'list.txt');
  await writeFile(listFile, 'val/a.jpg\n../../etc/shadow\n');
  const badList = await f.bt(['warm', f.mountpoint, '--from-list', listFile]);
  t.is(badList.code, 1);
  t.regex(badList.stderr, /is outside the mount .* \(line 2 of .*list\.txt\)/);

  const checkMissing = await f.bt(['warm', f.mountpoint, '--check', 'nope']);
  t.is(checkMissing.stderr, 'btmount: cannot check: not in the torrent: nope\n');

  const notMount = await f.bt(['warm', f.dir, 'val']);
  t.is(notMount.code, 1);
  t.is(notMount.stderr, `btmount: cannot warm: ${f.dir} is not a btmount mount point\n`);

  // No peers at all: the job gives up after the stall timeout and says why.
  const stalled = await f.bt(['warm', f.mountpoint, 'labels.csv', '--stall-timeout', '1']);
  t.is(stalled.code, 2);
  t.regex(stalled.stderr, /btmount: warm stopped: no data for \d+ s \(no peers\); 0 of 1 files/);

  const s = await f.status();
  t.is(s.pieces.have, 0);
  t.deepEqual(s.warm.map((j) => j.state), ['failed'], 'only the stalled job ran');
});
