/**
 * PieceStore benchmark, each figure side by side with a reference measured in the
 * same run on the same disk:
 *   - warm random 4 KiB reads and sequential 1 MiB reads through the store vs the
 *     same reads (same offsets, same pread helper) of one plain file with the same bytes;
 *   - storing pieces vs dd writing the same bytes to the same disk;
 *   - the store's heap with 100,000 pieces held.
 *
 *   npx tsc -p . && node dist/scripts/bench-store.js [--dir DIR]
 *
 * DIR (default: the OS temp dir) must have ~2 GiB free. Prints markdown table rows.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { PieceLayout, pieceIndex, asInfoHash, type PieceIndex } from '../src/metainfo/piece-layout.js';
import { readAt } from '../src/store/file-io.js';
import { PieceStore } from '../src/store/piece-store.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import { benchOptions } from './bench-options.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const KiB = 1024;
const MiB = KiB * KiB;
/** Paired rounds per comparison; each round runs reference, store, store, reference (ABBA). */
const ROUNDS = 7;

const rows: string[] = [];
function row(name: string, store: string, reference: string, ratio: number | undefined, goal: string): void {
  const line = `| ${name} | ${store} | ${reference} | ${ratio === undefined ? '' : ratio.toFixed(2) + '×'} | ${goal} |`;
  rows.push(line);
  console.log(line);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Times `reference` and `store` in ABBA rounds and returns the median seconds of
 * each and the median of the per-round ratios (reference time / store time, so
 * above 1 means the store was faster). Pairing within a round cancels most of the
 * drift a shared machine adds (other processes, writeback, CPU frequency).
 */
async function paired(
  reference: () => Promise<number>,
  store: () => Promise<number>,
  rounds = ROUNDS,
): Promise<{ reference: number; store: number; ratio: number }> {
  const refs: number[] = [];
  const stores: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const r1 = await reference();
    const s1 = await store();
    const s2 = await store();
    const r2 = await reference();
    refs.push(r1, r2);
    stores.push(s1, s2);
    ratios.push((r1 + r2) / (s1 + s2));
  }
  return { reference: median(refs), store: median(stores), ratio: median(ratios) };
}
const now = (): number => Number(process.hrtime.bigint()) / 1e9;
const mibps = (bytes: number, s: number): string => `${(bytes / MiB / s).toFixed(0)} MiB/s`;
const kops = (n: number, s: number): string => `${(n / s / 1000).toFixed(1)} k reads/s`;

function makeLayout(pieceLength: number, pieces: Buffer[]): PieceLayout {
  const hashes = Buffer.alloc(pieces.length * 20);
  pieces.forEach((p, i) => createHash('sha1').update(p).digest().copy(hashes, i * 20));
  return new PieceLayout(pieceLength, pieceLength * pieces.length, hashes);
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
}

async function main(): Promise<void> {
  const options = benchOptions('The PieceStore vs a plain local file, the same bytes through each.', { dir: os.tmpdir() });
  const base = await mkdtemp(path.join(options.dir, 'btmount-bench-'));
  const fsType = spawnSync('stat', ['-f', '-c', '%T', base], { encoding: 'utf8' }).stdout.trim();
  console.log(
    `PieceStore bench — node ${process.version}, ${os.cpus().length} CPUs, ${fsType} at ${base}, ` +
      `${new Date().toISOString().slice(0, 10)}, load average ${os.loadavg()[0]!.toFixed(1)}; ` +
      `ratios are medians of per-round ratios, reference and store alternated ABBA in each round\n`,
  );
  console.log('| measure | store | reference | store / reference | goal |');
  console.log('|---|---|---|---|---|');
  try {
    await readsAndWrites(base);
    await heap(base);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

async function readsAndWrites(base: string): Promise<void> {
  const pieceLength = MiB;
  const count = 256;
  const total = pieceLength * count;
  const data = Buffer.allocUnsafe(total);
  randomFillSync(data);
  const pieces = Array.from({ length: count }, (_, i) => data.subarray(i * pieceLength, (i + 1) * pieceLength));
  const layout = makeLayout(pieceLength, pieces);
  const verified: VerifiedPiece[] = pieces.map((p, i) => VerifiedPiece.check(layout, pieceIndex(i), p)!);
  const infoHash = asInfoHash('ab'.repeat(20));
  const refPath = path.join(base, 'reference.bin');
  await writeFile(refPath, data);

  // ---- writes: store.put of 256 × 1 MiB (4 in flight) vs dd of the same 256 MiB.
  let unit = 0;
  const storeWrite = (durable: boolean) => async (): Promise<number> => {
    const root = path.join(base, `w${unit++}`);
    sh('sync', []);
    const t0 = now();
    const store = await PieceStore.open({ cacheRoot: root, infoHash, layout, budgetBytes: 2 * total });
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < count) if (!(await store.put(verified[next++]!))) throw new Error('put failed');
      }),
    );
    if (durable) sh('sync', ['-f', root]);
    const seconds = now() - t0;
    await store.close();
    await rm(root, { recursive: true });
    return seconds;
  };
  const ddWrite = (durable: boolean) => async (): Promise<number> => {
    const out = path.join(base, 'dd.out');
    sh('sync', []);
    const t0 = now();
    sh('dd', [`if=${refPath}`, `of=${out}`, `bs=${pieceLength}`, `count=${count}`, 'status=none', ...(durable ? ['conv=fsync'] : [])]);
    const seconds = now() - t0;
    await rm(out);
    return seconds;
  };
  const w = await paired(ddWrite(false), storeWrite(false), 5);
  row('store 256 × 1 MiB pieces (no fsync) vs `dd bs=1M` of the same bytes', mibps(total, w.store), mibps(total, w.reference), w.ratio, '≥ 0.8×');
  const d = await paired(ddWrite(true), storeWrite(true), 3);
  row('same, then flushed to disk (`sync -f` vs `dd conv=fsync`)', mibps(total, d.store), mibps(total, d.reference), d.ratio, '');

  // ---- reads: one populated store (pieces verified: written in this process) and the plain file.
  const root = path.join(base, 'cache');
  const store = await PieceStore.open({ cacheRoot: root, infoHash, layout, budgetBytes: 2 * total });
  for (const p of verified) await store.put(p);
  const refFd = fs.openSync(refPath, 'r');
  const readRef = async (pos: number, len: number): Promise<Buffer> => {
    const buf = Buffer.allocUnsafe(len);
    if ((await readAt(refFd, buf, 0, len, pos)) !== len) throw new Error('short read');
    return buf;
  };
  const readStore = (pos: number, len: number): Promise<Buffer> =>
    store.readBlock(Math.floor(pos / pieceLength) as PieceIndex, pos % pieceLength, len);

  // Same random 4 KiB-aligned offsets for both.
  const n = 10_000;
  const offsets = new Float64Array(n);
  for (let i = 0; i < n; i++) offsets[i] = Math.floor(Math.random() * (total / 4096)) * 4096;
  // Warm the page cache and check both return the same bytes.
  for (let pos = 0; pos < total; pos += MiB) {
    if (!(await readStore(pos, MiB)).equals(await readRef(pos, MiB))) throw new Error(`mismatch at ${pos}`);
  }

  const randomReads = async (read: (pos: number, len: number) => Promise<Buffer>, depth: number): Promise<number> => {
    let next = 0;
    const t0 = now();
    await Promise.all(
      Array.from({ length: depth }, async () => {
        while (next < n) await read(offsets[next++]!, 4096);
      }),
    );
    return now() - t0;
  };
  const sequentialReads = async (read: (pos: number, len: number) => Promise<Buffer>): Promise<number> => {
    const t0 = now();
    for (let pos = 0; pos < total; pos += MiB) await read(pos, MiB);
    return now() - t0;
  };
  for (const depth of [1, 16]) {
    const r = await paired(() => randomReads(readRef, depth), () => randomReads(readStore, depth));
    row(`warm random 4 KiB reads, ${depth} in flight`, kops(n, r.store), kops(n, r.reference), r.ratio, '≥ 0.9×');
  }
  const q = await paired(() => sequentialReads(readRef), () => sequentialReads(readStore));
  row('warm sequential 1 MiB reads', mibps(total, q.store), mibps(total, q.reference), q.ratio, '≥ 0.9×');
  fs.closeSync(refFd);
  await store.close();

  // ---- first read of each piece after a reopen: the once-per-open SHA-1 check (informational).
  const reopened = await PieceStore.open({ cacheRoot: root, infoHash, layout, budgetBytes: 2 * total });
  let t0 = now();
  for (let i = 0; i < count; i++) await reopened.readBlock(pieceIndex(i), 0, 4096);
  const first = now() - t0;
  t0 = now();
  for (let i = 0; i < count; i++) await reopened.readBlock(pieceIndex(i), 0, 4096);
  const second = now() - t0;
  row(
    'first 4 KiB read per 1 MiB piece after reopen (checks the piece) vs the next read',
    `${((first / count) * 1e6).toFixed(0)} µs`,
    `${((second / count) * 1e6).toFixed(0)} µs`,
    undefined,
    'once per piece per open',
  );
  await reopened.close();
}

async function heap(base: string): Promise<void> {
  const pieceLength = 16 * KiB;
  const count = 100_000;
  const seedBytes = Buffer.allocUnsafe(pieceLength);
  randomFillSync(seedBytes);
  const pieceData = (i: number): Buffer => {
    const b = Buffer.from(seedBytes);
    b.writeUInt32LE(i, 0);
    return b;
  };
  const hashes = Buffer.alloc(count * 20);
  for (let i = 0; i < count; i++) createHash('sha1').update(pieceData(i)).digest().copy(hashes, i * 20);
  const layout = new PieceLayout(pieceLength, pieceLength * count, hashes);
  const infoHash = asInfoHash('cd'.repeat(20));
  const root = path.join(base, 'heap');
  const opts = { cacheRoot: root, infoHash, layout, budgetBytes: 2 * pieceLength * count };
  const measure = (): { heap: number; external: number } => {
    gc();
    gc();
    const m = process.memoryUsage();
    return { heap: m.heapUsed, external: m.arrayBuffers };
  };
  const signed = (bytes: number): string => `${bytes < 0 ? '−' : '+'}${Math.abs(bytes / MiB).toFixed(1)} MiB`;
  const fmt = (x: { heap: number; external: number }, base0: { heap: number; external: number }): string =>
    `JS heap ${signed(x.heap - base0.heap)}, typed arrays ${signed(x.external - base0.external)}`;

  const before = measure();
  let store = await PieceStore.open(opts);
  const empty = measure();
  let next = 0;
  const t0 = now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < count) {
        const i = next++;
        if (!(await store.put(VerifiedPiece.check(layout, pieceIndex(i), pieceData(i))!))) throw new Error('put failed');
      }
    }),
  );
  const putSeconds = now() - t0;
  const full = measure();
  await store.close();
  const t1 = now();
  store = await PieceStore.open(opts);
  const openSeconds = now() - t1;
  const reopened = measure();
  for (let i = 0; i < count; i++) await store.readBlock(pieceIndex(i), 0, 4096);
  const afterReads = measure();
  if (store.haveCount !== count) throw new Error(`expected ${count} pieces, have ${store.haveCount}`);
  await store.close();
  row('store heap: open, 0 of 100,000 × 16 KiB pieces held', fmt(empty, before), '', undefined, '');
  row(
    `store heap: 100,000 pieces stored (${(count / putSeconds / 1000).toFixed(1)} k puts/s)`,
    fmt(full, before),
    '',
    undefined,
    'flat',
  );
  row(`store heap: reopened with 100,000 pieces on disk (open took ${openSeconds.toFixed(1)} s)`, fmt(reopened, before), '', undefined, 'flat');
  row('store heap: after one read of each of the 100,000 pieces', fmt(afterReads, before), '', undefined, 'flat');
}

await main();
