import test from 'ava';
import { pino } from 'pino';
import { LineDecoder, requestProblem } from '../src/control/protocol.js';
import { mountRelativePath, orderedFiles, OutsideMountError } from '../src/control/selection.js';
import { planWarm, warmCapacityPieces, warmWindow } from '../src/control/warm-plan.js';
import { WarmJob, type WarmDeps } from '../src/control/warm-job.js';
import { Metainfo, type TorrentFile } from '../src/metainfo/index.js';
import type { PieceIndex } from '../src/metainfo/piece-layout.js';
import { buildTorrent } from './helpers/torrent-builder.js';

const silent = pino({ level: 'silent' });
const PIECE = 16 * 1024;

/** a/0.bin … a/5.bin: 1.5 pieces each, so neighbours share a piece; then b/big.bin of 4 pieces and an empty file. */
function torrent() {
  const files = [
    ...Array.from({ length: 6 }, (_, i) => ({ path: ['a', `${i}.bin`], length: PIECE + PIECE / 2 })),
    { path: ['b', 'big.bin'], length: 4 * PIECE },
    { path: ['empty.txt'], length: 0 },
  ];
  return Metainfo.fromTorrentFile(buildTorrent({ files, pieceLength: PIECE }));
}

test('LineDecoder joins chunks into lines and refuses an over-long line', (t) => {
  const d = new LineDecoder(10);
  t.deepEqual(d.push(Buffer.from('{"a"')), []);
  t.deepEqual(d.push(Buffer.from(':1}\n{}\n{')), ['{"a":1}', '{}']);
  t.deepEqual(d.push(Buffer.from('}\n')), ['{}']);
  t.throws(() => d.push(Buffer.from('x'.repeat(11))), { message: /longer than 10 bytes/ });
});

test('requestProblem checks the shape of requests', (t) => {
  t.is(requestProblem({ op: 'status' }), undefined);
  t.is(requestProblem({ op: 'check', paths: ['a', ''] }), undefined);
  t.regex(requestProblem({ op: 'check', paths: [1] })!, /paths/);
  t.regex(requestProblem({ op: 'warm', paths: [], background: 'no', stallTimeoutMs: 1, progressIntervalMs: 1 })!, /background/);
  t.regex(requestProblem({ op: 'warm', paths: [], background: false, stallTimeoutMs: -1, progressIntervalMs: 1 })!, /stallTimeoutMs/);
  t.regex(requestProblem({ op: 'rm -rf' })!, /unknown op/);
  t.regex(requestProblem(null)!, /not a JSON object/);
});

test('mountRelativePath: relative to the mount root, to the cwd inside the mount, or absolute under it', (t) => {
  t.is(mountRelativePath('/data', 'train/', '/home/u'), 'train');
  t.is(mountRelativePath('/data', '', '/home/u'), '');
  t.is(mountRelativePath('/data', '/data/train/x.jpg', '/home/u'), 'train/x.jpg');
  t.is(mountRelativePath('/data', '/data', '/'), '');
  t.is(mountRelativePath('/data', 'cat/1.jpg', '/data/train'), 'train/cat/1.jpg');
  t.is(mountRelativePath('/data', '../val', '/data/train'), 'val');
  t.throws(() => mountRelativePath('/data', '/etc/passwd', '/'), { instanceOf: OutsideMountError });
  t.throws(() => mountRelativePath('/data', '../x', '/home/u'), { instanceOf: OutsideMountError });
  t.throws(() => mountRelativePath('/data', '/data2/x', '/'), { instanceOf: OutsideMountError });
});

test('orderedFiles keeps the order given, expands directories and names each file once', (t) => {
  const m = torrent();
  const files = orderedFiles(m.tree, ['a/3.bin', 'b', 'a', '']);
  t.deepEqual(
    files.map((f) => f.path),
    ['a/3.bin', 'b/big.bin', 'a/0.bin', 'a/1.bin', 'a/2.bin', 'a/4.bin', 'a/5.bin', 'empty.txt'],
  );
});

test('planWarm orders pieces by first use, each once, and cuts where the cache is full', (t) => {
  const m = torrent();
  const files = orderedFiles(m.tree, ['a/2.bin', 'a/1.bin', 'b/big.bin']);
  // a/1.bin = bytes [24K, 48K) = pieces 1-2; a/2.bin = [48K, 72K) = pieces 3-4; big = [144K, 208K) = pieces 9-12.
  const all = planWarm(m.byteMap, files, 100);
  t.deepEqual([...all.pieces], [3, 4, 1, 2, 9, 10, 11, 12]);
  t.deepEqual(all.notFitting, { files: 0, bytes: 0, first: null });

  const cut = planWarm(m.byteMap, files, 5);
  t.deepEqual(cut.files.map((f) => f.path), ['a/2.bin', 'a/1.bin']);
  t.deepEqual([...cut.pieces], [3, 4, 1, 2]);
  t.deepEqual(cut.notFitting, { files: 1, bytes: 4 * PIECE, first: 'b/big.bin' });
  t.deepEqual(cut.requested, { files: 3, bytes: 2 * (PIECE + PIECE / 2) + 4 * PIECE });

  // Neighbours share piece 1 (a/0.bin ends inside it): it is planned once.
  const shared = planWarm(m.byteMap, orderedFiles(m.tree, ['a/0.bin', 'a/1.bin']), 100);
  t.deepEqual([...shared.pieces], [0, 1, 2]);
});

test('warm capacity: the whole torrent when it fits, else the budget less pinned pieces and a read reserve', (t) => {
  const base = { pieceCount: 100, pieceLength: PIECE, pinnedBytes: 0, reserveBytes: 4 * PIECE };
  t.is(warmCapacityPieces({ ...base, effectiveBudgetBytes: 100 * PIECE }), 100);
  t.is(warmCapacityPieces({ ...base, effectiveBudgetBytes: 50 * PIECE }), 46);
  t.is(warmCapacityPieces({ ...base, effectiveBudgetBytes: 50 * PIECE, pinnedBytes: 3 * PIECE }), 43);
  t.is(warmCapacityPieces({ ...base, effectiveBudgetBytes: 2 * PIECE }), 0);
  t.is(warmWindow(1024 * 1024), 64);
  t.is(warmWindow(16 * 1024), 256);
  t.is(warmWindow(64 * 1024 * 1024), 4);
});

/** A reader stand-in: records prefetch calls; the test delivers pieces by hand. */
function fakeDeps(m: ReturnType<typeof torrent>) {
  const held = new Set<number>();
  const pending = new Map<number, { resolve: () => void; reject: (e: unknown) => void }>();
  const asked: number[] = [];
  let maxInflight = 0;
  const deps: WarmDeps = {
    byteMap: m.byteMap,
    has: (i) => held.has(i),
    waitingReason: () => 'no peers',
    log: silent,
    prefetch(file: TorrentFile, offset: number, length: number, _priority, signal) {
      const [span] = m.byteMap.spansOfFileRange(file, offset, length);
      const piece = span!.piece;
      asked.push(piece);
      if (held.has(piece)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        pending.set(piece, { resolve, reject });
        maxInflight = Math.max(maxInflight, pending.size);
        signal.addEventListener('abort', () => {
          pending.delete(piece);
          reject(signal.reason);
        });
      });
    },
  };
  const deliver = (piece: number): void => {
    held.add(piece);
    const p = pending.get(piece);
    pending.delete(piece);
    p?.resolve();
  };
  return { deps, held, asked, pending, deliver, maxInflight: () => maxInflight };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a warm job asks for pieces in plan order, never more than its window at once, and completes', async (t) => {
  const m = torrent();
  const fake = fakeDeps(m);
  fake.held.add(12); // cached before the job: counted as done, not fetched
  const plan = planWarm(m.byteMap, orderedFiles(m.tree, ['b/big.bin', 'a/5.bin', 'a/0.bin', 'empty.txt']), 100);
  const job = new WarmJob(plan, fake.deps, { id: 1, background: false, window: 2, stallTimeoutMs: 60_000 });
  job.start();
  await tick();
  t.deepEqual(fake.asked, [9, 10]);
  t.deepEqual(job.status().files, { done: 1, total: 4 }); // the empty file
  // Deliver out of order: the window refills in plan order.
  fake.deliver(10);
  await tick();
  await tick();
  t.deepEqual(fake.asked, [9, 10, 11]);
  for (const p of [9, 11, 7, 8, 0, 1]) {
    fake.deliver(p);
    await tick();
    await tick();
  }
  const end = await job.finished;
  t.deepEqual(fake.asked, [9, 10, 11, 12, 7, 8, 0, 1]);
  t.true(fake.maxInflight() <= 2);
  t.is(end.state, 'complete');
  t.deepEqual(end.files, { done: 4, total: 4 });
  t.deepEqual(end.bytes, { done: 4 * PIECE + 2 * (PIECE + PIECE / 2), total: 4 * PIECE + 2 * (PIECE + PIECE / 2) });
  t.is(end.alreadyCachedBytes, PIECE);
  t.is(end.message, null);
});

test('a warm job that gets no data fails after the stall timeout, naming why', async (t) => {
  const m = torrent();
  const fake = fakeDeps(m);
  const plan = planWarm(m.byteMap, orderedFiles(m.tree, ['a/0.bin']), 100);
  const job = new WarmJob(plan, fake.deps, { id: 1, background: false, window: 8, stallTimeoutMs: 50 });
  job.start();
  const end = await job.finished;
  t.is(end.state, 'failed');
  t.regex(end.message!, /no data for \d+ s \(no peers\)/);
  t.deepEqual(end.missing, { files: 1, bytes: PIECE + PIECE / 2, first: 'a/0.bin' });
  t.is(fake.pending.size, 0, 'its fetches were withdrawn');
});

test('a cancelled warm job withdraws its fetches; one whose pieces vanish again ends partial', async (t) => {
  const m = torrent();
  const fake = fakeDeps(m);
  const job = new WarmJob(planWarm(m.byteMap, orderedFiles(m.tree, ['a']), 100), fake.deps, { id: 1, background: true, window: 4, stallTimeoutMs: 60_000 });
  job.start();
  await tick();
  job.stop('cancelled', 'interrupted');
  const end = await job.finished;
  t.is(end.state, 'cancelled');
  t.is(fake.pending.size, 0);

  const fake2 = fakeDeps(m);
  const job2 = new WarmJob(planWarm(m.byteMap, orderedFiles(m.tree, ['a/0.bin', 'a/1.bin']), 100), fake2.deps, { id: 2, background: false, window: 4, stallTimeoutMs: 60_000 });
  job2.start();
  await tick();
  for (const p of [0, 1, 2]) fake2.deliver(p);
  fake2.held.delete(0 as PieceIndex); // evicted again before the end
  const end2 = await job2.finished;
  t.is(end2.state, 'partial');
  t.deepEqual(end2.missing, { files: 1, bytes: PIECE + PIECE / 2, first: 'a/0.bin' });
  t.regex(end2.message!, /evicted again/);
});
