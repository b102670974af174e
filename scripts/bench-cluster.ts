/**
 * Cluster bench (issue 11): does a cluster of mounts cost the origin each byte
 * about once, and finish near the swarm's bound?
 *
 * For N = 1, 2, 4, 8: one origin (`btmount seed --upload-limit R` on 127.0.0.2)
 * and N real `btmount mount` daemons, node i on its own address 127.0.0.(10+i)
 * with the same upload cap R. Everyone finds everyone through a
 * bittorrent-tracker server on 127.0.0.1 (plus PEX); nobody is given a peer list.
 * Each run starts from empty caches. Two workloads:
 *
 * - full:   every node reads every file at the same time, in the same order
 *           (a checkpoint, or a small dataset every rank reads), `--readers` files
 *           at a time (a DataLoader with that many samples in flight; default 16);
 * - shards: DistributedSampler-style: node i reads its shard of epoch 1
 *           (every N-th file of a seeded permutation), then its shard of epoch 2
 *           (another permutation); epoch 2 should cost the origin almost nothing.
 *
 * Per run: time until every node has read its files; the bound (full:
 * max(F/u_s, N·F/(u_s+Σu_i)); shards: per epoch, the bytes each node lacks,
 * spread over every uploader, and for epoch 1 at least F/u_s); the origin factor
 * (bytes the origin sent / F, the origin's own count, read from its --metrics
 * endpoint); the central-server time N·F/u_s; and the CPU seconds (user + system)
 * the mount daemons, the origin and the readers used while the nodes read.
 *
 *   npx tsc -p . && node dist/scripts/bench-cluster.js [--nodes 1,2,4,8] [--mib 64]
 *     [--rate 4M] [--workloads full,shards[,http][,libtorrent]] [--rounds 2] [--share distinct|all] [--readers 16] [--plot cluster.png] [--dir /tmp/btmount-bench-cluster]
 *     [--profile DIR]   (CPU profiles of the daemons and the origin: see scripts/cpu-profile.ts)
 *     [--counters DIR]  (each daemon's wire counters, a JSON line a second: src/swarm/wire-counters.ts)
 *     [--plot-http cluster-http.png]
 *
 * `libtorrent` is the reference client: the same cluster with python3-libtorrent in every role
 * (scripts/bench-cluster-libtorrent.ts), to tell what this machine allows from what btmount does.
 * `http` is the second origin, an HTTP server used as every node's web seed, beside plain HTTP
 * (scripts/bench-cluster-http.ts; `--plot-http FILE` draws it).
 *
 * Prints a markdown table on stdout; progress on stderr. Needs FUSE and (for
 * --plot) python3-matplotlib. Never uses an address outside 127.0.0.0/8.
 */
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTorrentFile } from '../src/cli/create.js';
import { parseRate } from '../src/cli/options.js';
import { loadMetainfo, type Metainfo } from '../src/metainfo/index.js';
import type { MountStatus } from '../src/control/status-schema.js';
import { startTrackerServer } from '../test/helpers/discovery.js';
import { mountWithCli, type MountedTorrent } from '../test/helpers/mount.js';
import { BTMOUNT_BIN, freePort, startProcess, type Proc } from '../test/helpers/peers.js';
import { plotHttp, printHttpTable, runHttpOrigin, type HttpOriginResult } from './bench-cluster-http.js';
import { addCpu, cpuTime, loadAverages, readConcurrently, waitForCluster, type CpuTime } from './bench-kit.js';
import { runLibtorrentCluster, printLibtorrentTable, type LibtorrentResult } from './bench-cluster-libtorrent.js';
import { benchOptions } from './bench-options.js';

const execFileAsync = promisify(execFile);
const ORIGIN_HOST = '127.0.0.2';
const nodeHost = (i: number): string => `127.0.0.${10 + i}`;
const MiB = 1024 * 1024;

const DEFAULTS = {
  nodes: '1,2,4,8',
  // Caps the 2-core machine can carry at N = 8 (the bound assumes the caps are the limit):
  // at 20M and 256 MiB the daemons need more CPU than the machine has (README, Clusters).
  mib: '64',
  rate: '4M',
  workloads: 'full,shards',
  rounds: '2',
  share: 'distinct',
  readers: '16',
  dir: '/tmp/btmount-bench-cluster',
  plot: '',
  'plot-http': '',
  profile: '',
  counters: '',
};
const options = benchOptions('Cluster bench (issue 11): N mounts and one upload-capped origin, beside the swarm bound.', DEFAULTS);

// ── the dataset ──────────────────────────────────────────────────────────────

interface Data {
  root: string;
  torrent: string;
  metainfo: Metainfo;
  /** Files in torrent order (no pad files), with the SHA-1 of their bytes (the readers check it). */
  files: DataFile[];
}

interface DataFile {
  path: string;
  offset: number;
  length: number;
  sha1: string;
}

/** Image-like files: 40–200 KB each, random bytes (incompressible, like JPEGs), 256 KiB pieces. */
async function makeData(dir: string, mib: number): Promise<Data> {
  const root = path.join(dir, `dataset-${mib}`);
  const torrent = path.join(dir, `dataset-${mib}.torrent`);
  const marker = `${torrent}.ok`;
  if (!existsSync(marker)) {
    await rm(root, { recursive: true, force: true });
    let left = mib * MiB;
    for (let i = 0; left > 0; i++) {
      const cls = path.join(root, `class${i % 16}`);
      if (i < 16) await mkdir(cls, { recursive: true });
      const size = Math.min(left, 40_000 + ((i * 7919) % 160_000));
      await writeFile(path.join(cls, `${String(i).padStart(6, '0')}.jpg`), randomFillSync(Buffer.allocUnsafe(size)));
      left -= size;
    }
    await createTorrentFile(root, { output: torrent, pieceSize: 256 * 1024, tracker: [], webSeed: [] });
    await writeFile(marker, '');
  }
  const metainfo = await loadMetainfo(torrent);
  const files: DataFile[] = [];
  for (const f of metainfo.files) {
    if (f.pad) continue;
    const sha1 = createHash('sha1').update(await readFile(path.join(root, ...f.path.split('/')))).digest('hex');
    files.push({ path: f.path, offset: f.offset, length: f.length, sha1 });
  }
  return { root, torrent, metainfo, files };
}

/** The pieces holding a set of files. */
function piecesOf(data: Data, files: ReadonlyArray<{ offset: number; length: number }>): Set<number> {
  const pieceLength = data.metainfo.layout.pieceLength;
  const pieces = new Set<number>();
  for (const f of files) {
    if (f.length === 0) continue;
    for (let p = Math.floor(f.offset / pieceLength); p <= Math.floor((f.offset + f.length - 1) / pieceLength); p++) pieces.add(p);
  }
  return pieces;
}

function bytesOfPieces(data: Data, pieces: Iterable<number>): number {
  let bytes = 0;
  for (const p of pieces) bytes += data.metainfo.layout.pieceSize(p as never);
  return bytes;
}

/** A seeded permutation (mulberry32 + Fisher–Yates), the same on every node, as DistributedSampler's. */
function permutation(n: number, seed: number): number[] {
  let a = seed >>> 0;
  const random = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// ── one cluster ──────────────────────────────────────────────────────────────

interface Cluster {
  origin: Proc;
  /** The origin's Prometheus endpoint (its own upload count). */
  originMetrics: string;
  nodes: MountedTorrent[];
  stop(): Promise<void>;
}

async function startCluster(data: Data, n: number, rate: number, base: string): Promise<Cluster> {
  const tracker = await startTrackerServer();
  const originPort = await freePort(ORIGIN_HOST);
  const metricsPort = await freePort(ORIGIN_HOST);
  const common = ['--no-dht', '--tracker', tracker.httpUrl, '--upload-limit', String(rate)];
  const env = daemonEnv();
  const origin = startProcess(
    process.execPath,
    [
      BTMOUNT_BIN, 'seed', data.torrent, data.root, '--host', ORIGIN_HOST, '--port', String(originPort), '--share', options.share,
      '--metrics', `${ORIGIN_HOST}:${metricsPort}`, ...common,
    ],
    { env },
  );
  const nodes: MountedTorrent[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((m) => m.unmount()));
    await origin.stop();
    await tracker.close();
  };
  try {
    await origin.waitFor(/seeding .* on port/, 120_000);
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const mnt = path.join(base, `mnt${i}`);
        await mkdir(mnt, { recursive: true });
        const port = await freePort(nodeHost(i));
        const args = ['mount', data.torrent, mnt, '--cache', path.join(base, `cache${i}`), '--cache-size', `${2 * data.metainfo.layout.totalLength}`];
        args.push('--host', nodeHost(i), '--port', String(port), '--read-timeout', '60', ...common);
        nodes[i] = await mountWithCli(mnt, args, { timeoutMs: 120_000, env });
      }),
    );
    // The cluster is formed when every node is connected to the origin and to every other node.
    await waitForCluster(nodes.map((m) => async () => (await status(m)).peers.length), n);
  } catch (err) {
    await stop();
    throw err;
  }
  return { origin, originMetrics: `http://${ORIGIN_HOST}:${metricsPort}/metrics`, nodes, stop };
}

/** The environment of the origin and the mount daemons: with --profile, each writes a CPU profile there on exit; with --counters, its wire counters. */
function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // --counters DIR: every daemon writes its wire counters there, a line a second (src/swarm/wire-counters.ts).
  if (options.counters) {
    mkdirSync(path.resolve(options.counters), { recursive: true });
    env['BTMOUNT_WIRE_COUNTERS_DIR'] = path.resolve(options.counters);
  }
  const dir = options.profile;
  if (!dir) return env;
  mkdirSync(path.resolve(dir), { recursive: true });
  const preload = new URL('./cpu-profile.js', import.meta.url).href;
  return { ...env, BTMOUNT_CPU_PROFILE_DIR: path.resolve(dir), NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import ${preload}`.trim() };
}

async function status(m: MountedTorrent): Promise<MountStatus> {
  const { stdout } = await execFileAsync(process.execPath, [BTMOUNT_BIN, 'status', m.mountpoint, '--json'], { maxBuffer: 16 * MiB });
  return JSON.parse(stdout) as MountStatus;
}

/**
 * Bytes the origin has sent so far, by its own count (btmount_uploaded_bytes_total, summed over
 * peer sources). Not the nodes' Σ downloaded − Σ uploaded: nodes used to count a block as uploaded
 * when they had read it for a peer, also when the request was cancelled before it went out, which
 * made that difference dip below zero (epoch 2 showed an origin factor of −0.01); the origin's own
 * count is the direct measure either way.
 */
async function originBytes(cluster: Cluster): Promise<number> {
  const res = await fetch(cluster.originMetrics);
  if (!res.ok) throw new Error(`origin metrics: HTTP ${res.status}`);
  let bytes = 0;
  for (const line of (await res.text()).split('\n')) {
    const m = /^btmount_uploaded_bytes_total(?:\{[^}]*\})? ([\d.e+]+)$/.exec(line);
    if (m) bytes += Number(m[1]);
  }
  return bytes;
}

/**
 * Every node reads its list at the same moment (one reader process per node, started before
 * the clock: bench-kit's readConcurrently); resolves with the seconds until the last one is
 * done and the CPU seconds the readers used.
 */
function readAll(
  base: string,
  nodes: readonly MountedTorrent[],
  lists: ReadonlyArray<readonly DataFile[]>,
  tag: string,
): Promise<{ seconds: number; readerCpu: CpuTime }> {
  const entries = nodes.map((m, i) => lists[i]!.map((f) => ({ sha1: f.sha1, length: f.length, path: path.join(m.mountpoint, f.path) })));
  return readConcurrently(base, tag, entries, Number(options.readers));
}

// ── the runs ─────────────────────────────────────────────────────────────────


/** The CPU the cluster's processes use from now until `done()`: the mount daemons and the origin apart. */
async function cpuMeter(c: Cluster): Promise<() => Promise<{ nodes: CpuTime; origin: CpuTime }>> {
  const nodePids = c.nodes.map((m) => m.pid);
  const [nodes0, origin0] = [await cpuTime(nodePids), await cpuTime([c.origin.pid])];
  return async () => {
    const [nodes1, origin1] = [await cpuTime(nodePids), await cpuTime([c.origin.pid])];
    const diff = (a: CpuTime, b: CpuTime): CpuTime => ({ user: b.user - a.user, system: b.system - a.system });
    return { nodes: diff(nodes0, nodes1), origin: diff(origin0, origin1) };
  };
}

interface Result {
  workload: 'full' | 'shards';
  n: number;
  seconds: number;
  /** CPU seconds while the nodes read (the machine has `nproc` cores): the mount daemons, the origin, the reader processes. */
  cpu: { nodes: CpuTime; origin: CpuTime; readers: CpuTime };
  bound: number;
  originFactor: number;
  centralSeconds: number;
  /** shards only: the epochs apart. */
  epochs?: Array<{ seconds: number; bound: number; originFactor: number }>;
  load: string;
}


async function runFull(data: Data, n: number, rate: number, base: string): Promise<Result> {
  const F = data.metainfo.layout.totalLength;
  const cluster = await startCluster(data, n, rate, base);
  try {
    const order = data.files;
    const origin0 = await originBytes(cluster);
    const meter = await cpuMeter(cluster);
    const { seconds, readerCpu } = await readAll(base, cluster.nodes, cluster.nodes.map(() => order), 'full');
    const cpu = { ...(await meter()), readers: readerCpu };
    const origin = (await originBytes(cluster)) - origin0;
    const bound = Math.max(F / rate, (n * F) / (rate + n * rate));
    const load = await loadAverages();
    await cluster.stop();
    return { workload: 'full', n, seconds, cpu, bound, originFactor: origin / F, centralSeconds: (n * F) / rate, load };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

async function runShards(data: Data, n: number, rate: number, base: string): Promise<Result> {
  const F = data.metainfo.layout.totalLength;
  const shard = (epoch: number, i: number): Data['files'] => permutation(data.files.length, 1000 + epoch).filter((_, k) => k % n === i).map((k) => data.files[k]!);
  const epoch1 = Array.from({ length: n }, (_, i) => shard(1, i));
  const epoch2 = Array.from({ length: n }, (_, i) => shard(2, i));
  // What each node must download per epoch (whole pieces; epoch 2: what its epoch-1 pieces do not already hold).
  const had = epoch1.map((files) => piecesOf(data, files));
  const need1 = had.map((pieces) => bytesOfPieces(data, pieces));
  const need2 = epoch2.map((files, i) => bytesOfPieces(data, [...piecesOf(data, files)].filter((p) => !had[i]!.has(p))));
  const capacity = rate + n * rate;
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  // Epoch 1: every byte leaves the origin at least once. Epoch 2: everything is in the cluster; a node receives from the others.
  const bound1 = Math.max(F / rate, sum(need1) / capacity);
  const bound2 = Math.max(sum(need2) / capacity, Math.max(...need2) / (capacity - rate));

  const cluster = await startCluster(data, n, rate, base);
  try {
    const o0 = await originBytes(cluster);
    const meter = await cpuMeter(cluster);
    const r1 = await readAll(base, cluster.nodes, epoch1, 'epoch1');
    const o1 = (await originBytes(cluster)) - o0;
    const r2 = await readAll(base, cluster.nodes, epoch2, 'epoch2');
    const o2 = (await originBytes(cluster)) - o0;
    const cpu = { ...(await meter()), readers: addCpu(r1.readerCpu, r2.readerCpu) };
    const [s1, s2] = [r1.seconds, r2.seconds];
    const load = await loadAverages();
    await cluster.stop();
    return {
      workload: 'shards',
      n,
      seconds: s1 + s2,
      cpu,
      bound: bound1 + bound2,
      originFactor: o2 / F,
      centralSeconds: (sum(need1) + sum(need2)) / rate,
      epochs: [
        { seconds: s1, bound: bound1, originFactor: o1 / F },
        { seconds: s2, bound: bound2, originFactor: (o2 - o1) / F },
      ],
      load,
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

const cpuText = (c: Result['cpu']): string =>
  `${c.nodes.user.toFixed(1)} + ${c.nodes.system.toFixed(1)}, ${(c.origin.user + c.origin.system).toFixed(1)}, ${c.readers.user.toFixed(1)} + ${c.readers.system.toFixed(1)}`;

function printTable(results: readonly Result[], mib: number, rate: number): void {
  const out: string[] = [];
  out.push(`F = ${mib} MiB, u_s = u_i = ${(rate / MiB).toFixed(1)} MiB/s; bound = swarm lower bound; central = N·F/u_s (full) or Σ bytes needed / u_s (shards)`);
  out.push('');
  out.push(
    '| workload | N | time (s) | bound (s) | time / bound | origin factor | central server (s) | epochs: time / bound, origin factor | CPU s: nodes user + sys, origin, readers user + sys | load average |',
  );
  out.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const epochs = r.epochs
      ? r.epochs.map((e, k) => `e${k + 1} ${e.seconds.toFixed(1)} s / ${e.bound.toFixed(1)} s, ${e.originFactor.toFixed(2)}`).join('; ')
      : '';
    out.push(
      `| ${r.workload} | ${r.n} | ${r.seconds.toFixed(1)} | ${r.bound.toFixed(1)} | ${(r.seconds / r.bound).toFixed(2)} | ${r.originFactor.toFixed(2)} | ${r.centralSeconds.toFixed(1)} | ${epochs} | ${cpuText(r.cpu)} | ${r.load} |`,
    );
  }
  // Run to run: the spread of each (workload, N) measured more than once.
  const groups = new Map<string, Result[]>();
  for (const r of results) groups.set(`${r.workload} N=${r.n}`, [...(groups.get(`${r.workload} N=${r.n}`) ?? []), r]);
  const spread = [...groups].filter(([, rs]) => rs.length > 1);
  if (spread.length > 0) {
    const range = (xs: number[]): string => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
    out.push('');
    out.push(`Spread over rounds (time / bound; origin factor): ${spread.map(([k, rs]) => `${k} ${range(rs.map((r) => r.seconds / r.bound))}; ${range(rs.map((r) => r.originFactor))}`).join('. ')}.`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

async function plot(results: readonly Result[], file: string): Promise<void> {
  const script = `
import json, sys
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
rows = json.loads(sys.argv[1])
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
for workload, marker in (('full', 'o'), ('shards', 's')):
    rs = [r for r in rows if r['workload'] == workload]
    if not rs: continue
    ns = sorted(set(r['n'] for r in rs))
    per = lambda key: [[r[key] for r in rs if r['n'] == n] for n in ns]
    mean = lambda xss: [sum(xs) / len(xs) for xs in xss]
    # the mean of the rounds, the bars from the fastest to the slowest round
    secs = per('seconds')
    a.errorbar(ns, mean(secs), yerr=[[m - min(xs) for m, xs in zip(mean(secs), secs)], [max(xs) - m for m, xs in zip(mean(secs), secs)]], marker=marker, capsize=3, label=workload + ': btmount')
    a.plot(ns, mean(per('bound')), marker=marker, linestyle=':', label=workload + ': swarm bound')
    a.plot(ns, mean(per('centralSeconds')), marker=marker, linestyle='--', label=workload + ': central server')
    b.plot(ns, mean(per('originFactor')), marker=marker, label=workload)
a.set_xlabel('nodes'); a.set_ylabel('seconds until every node has read its data'); a.set_xscale('log', base=2); a.legend(fontsize=7)
b.axhline(1.0, color='grey', linestyle=':'); b.axhline(1.2, color='red', linestyle=':', label='goal 1.2')
b.set_xlabel('nodes'); b.set_ylabel('origin bytes sent / dataset size'); b.set_xscale('log', base=2); b.legend(fontsize=7)
fig.tight_layout(); fig.savefig(sys.argv[2], dpi=100)
`;
  await execFileAsync('/usr/bin/python3', ['-c', script, JSON.stringify(results), file]);
  process.stderr.write(`plot: ${file}\n`);
}

async function main(): Promise<void> {
  const nodes = options.nodes.split(',').map(Number);
  const mib = Number(options.mib);
  const rate = parseRate(options.rate, '--rate');
  const workloads = options.workloads.split(',');
  const unknown = workloads.filter((w) => !['full', 'shards', 'http', 'libtorrent'].includes(w));
  if (unknown.length > 0 || nodes.some((n) => !Number.isInteger(n) || n < 1 || n > 200) || !(Number(options.mib) > 0)) {
    process.stderr.write(`bench-cluster: --workloads takes full, shards, http, libtorrent; --nodes whole numbers 1–200; --mib a size (got ${options.workloads} / ${options.nodes} / ${options.mib})\n`);
    process.exit(2);
  }
  const rounds = Number(options.rounds);
  const dir = options.dir;
  const plotFile = options.plot;
  await mkdir(dir, { recursive: true });
  const data = await makeData(dir, mib);
  const results: Result[] = [];
  const httpResults: HttpOriginResult[] = [];
  const libtorrentResults: LibtorrentResult[] = [];
  for (const workload of workloads) {
    for (const n of nodes) {
      for (let round = 0; round < rounds; round++) {
        const base = path.join(dir, `run-${workload}-${n}-${round}`);
        await rm(base, { recursive: true, force: true });
        await mkdir(base, { recursive: true });
        if (workload === 'libtorrent') {
          // The reference client (scripts/bench-cluster-libtorrent.ts): its own table.
          const l = await runLibtorrentCluster({ root: data.root, torrent: data.torrent, bytes: data.metainfo.layout.totalLength }, n, rate, base);
          libtorrentResults.push(l);
          process.stderr.write(`libtorrent N=${n}: ${l.seconds.toFixed(1)} s (bound ${l.bound.toFixed(1)} s, ×${(l.seconds / l.bound).toFixed(2)}), origin factor ${l.originFactor.toFixed(2)}; load ${l.load}\n`);
          await rm(base, { recursive: true, force: true });
          continue;
        }
        if (workload === 'http') {
          // The HTTP origin (scripts/bench-cluster-http.ts): its own table and plot.
          const h = await runHttpOrigin(data, n, rate, base, { readers: options.readers });
          httpResults.push(h);
          process.stderr.write(`http N=${n}: ${h.seconds.toFixed(1)} s (bound ${h.bound.toFixed(1)} s, ×${(h.seconds / h.bound).toFixed(2)}), origin factor ${h.originFactor.toFixed(2)}; plain HTTP ${h.plainSeconds.toFixed(1)} s; load ${h.load}\n`);
          await rm(base, { recursive: true, force: true });
          continue;
        }
        const r = workload === 'full' ? await runFull(data, n, rate, base) : await runShards(data, n, rate, base);
        results.push(r);
        process.stderr.write(
          `${workload} N=${n}: ${r.seconds.toFixed(1)} s (bound ${r.bound.toFixed(1)} s, ×${(r.seconds / r.bound).toFixed(2)}), origin factor ${r.originFactor.toFixed(2)}${
            r.epochs ? ` (epoch 1 ${r.epochs[0]!.originFactor.toFixed(2)}, epoch 2 ${r.epochs[1]!.originFactor.toFixed(2)})` : ''
          }, CPU s: nodes ${r.cpu.nodes.user.toFixed(1)} user + ${r.cpu.nodes.system.toFixed(1)} sys, origin ${(r.cpu.origin.user + r.cpu.origin.system).toFixed(1)}, readers ${r.cpu.readers.user.toFixed(1)} user + ${r.cpu.readers.system.toFixed(1)} sys; load ${r.load}\n`,
        );
        await rm(base, { recursive: true, force: true });
      }
    }
  }
  if (results.length > 0) printTable(results, mib, rate);
  if (plotFile && results.length > 0) await plot(results, path.resolve(plotFile));
  printLibtorrentTable(libtorrentResults);
  printHttpTable(httpResults, mib, rate);
  const httpPlot = options['plot-http'];
  if (httpPlot) await plotHttp(httpResults, path.resolve(httpPlot));
}

await main();
