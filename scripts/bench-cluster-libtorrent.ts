/**
 * The cluster bench's reference client (issues 11 and 12): the same cluster with python3-libtorrent
 * (libtorrent-rasterbar 2.0, C++) in every role instead of btmount, on the same machine, in the same run.
 *
 * One libtorrent seed on 127.0.0.2 capped at `--rate` upload, N libtorrent downloaders on
 * 127.0.0.(10+i), each capped the same (libtorrent's exemption of local peers from rate limits is
 * switched off: lt_peer.py --upload-limit), all finding each other through a bittorrent-tracker
 * server on 127.0.0.1 (and PEX). Each downloads the whole torrent to disk; nobody reads through a
 * mount and nothing checks the files but libtorrent's own SHA-1 of each piece.
 *
 * Per N: the time until every node has every piece, the swarm bound max(F/u_s, N·F/(u_s+Σu_i)),
 * the origin factor (the seed's own payload upload count / F) and the CPU seconds of the nodes
 * and the seed. It says what a mature client reaches here: where btmount's `full` rows are far
 * from the bound and libtorrent's are too, the machine (2 cores for N + 1 peers) is the limit.
 *
 * Used by scripts/bench-cluster.ts: `--workloads libtorrent`.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startTrackerServer } from '../test/helpers/discovery.js';
import { LT_PEER, startProcess, type Proc } from '../test/helpers/peers.js';
import { cpuTime, loadAverages, type CpuTime } from './bench-kit.js';

const ORIGIN_HOST = '127.0.0.2';
const nodeHost = (i: number): string => `127.0.0.${10 + i}`;
/** A run that takes longer than this is stuck, not slow (the 64 MiB default at 4 MiB/s needs 16 s). */
const RUN_TIMEOUT_MS = 15 * 60_000;

export interface LibtorrentResult {
  n: number;
  seconds: number;
  bound: number;
  originFactor: number;
  cpu: { nodes: CpuTime; origin: CpuTime };
  load: string;
}

/** A libtorrent peer of lt_peer.py: resolves once it listens. */
async function startPeer(mode: 'seed' | 'leech', torrent: string, savePath: string, host: string, rate: number, tracker: string): Promise<Proc> {
  const proc = startProcess('/usr/bin/python3', [
    LT_PEER, mode, '--torrent', torrent, '--save-path', savePath, '--listen', `${host}:0`, '--tracker', tracker, '--upload-limit', String(rate),
    ...(mode === 'leech' ? ['--paused'] : []),
  ]);
  await proc.waitFor(/"event": "listening"/, 20_000);
  return proc;
}

/** The seed's payload bytes sent so far, from its latest status line (one a second). */
function uploadedBy(seed: Proc): number {
  const all = [...seed.output().matchAll(/"uploaded": (\d+)/g)];
  return Number(all.at(-1)?.[1] ?? 0);
}

export async function runLibtorrentCluster(data: { root: string; torrent: string; bytes: number }, n: number, rate: number, base: string): Promise<LibtorrentResult> {
  const tracker = await startTrackerServer();
  const peers: Proc[] = [];
  try {
    // lt_peer.py seeds `<save path>/<torrent name>`: the dataset folder is that name.
    const seed = await startPeer('seed', data.torrent, path.dirname(data.root), ORIGIN_HOST, rate, tracker.httpUrl);
    peers.push(seed);
    // The downloaders start paused and all begin at one moment (SIGUSR1), when the clock starts:
    // unlike the mounts, they find each other only after it (their first announce).
    const nodes = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const save = path.join(base, `lt-node-${i}`);
        await mkdir(save, { recursive: true });
        const node = await startPeer('leech', data.torrent, save, nodeHost(i), rate, tracker.httpUrl);
        peers.push(node);
        return node;
      }),
    );
    const cpu0 = { nodes: await cpuTime(nodes.map((p) => p.pid)), origin: await cpuTime([seed.pid]) };
    const started = performance.now();
    for (const node of nodes) process.kill(node.pid, 'SIGUSR1');
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`libtorrent cluster N=${n}: not complete after ${RUN_TIMEOUT_MS / 1000} s`)), RUN_TIMEOUT_MS).unref());
    await Promise.race([Promise.all(nodes.map((p) => p.waitFor(/"event": "done"/, RUN_TIMEOUT_MS))), timeout]);
    const seconds = (performance.now() - started) / 1000;
    const cpu1 = { nodes: await cpuTime(nodes.map((p) => p.pid)), origin: await cpuTime([seed.pid]) };
    // The seed's count comes with its next status line.
    await seed.waitFor(/"event": "status"/, 5_000);
    await new Promise((r) => setTimeout(r, 1_100));
    const F = data.bytes;
    return {
      n,
      seconds,
      bound: Math.max(F / rate, (n * F) / (rate + n * rate)),
      originFactor: uploadedBy(seed) / F,
      cpu: {
        nodes: { user: cpu1.nodes.user - cpu0.nodes.user, system: cpu1.nodes.system - cpu0.nodes.system },
        origin: { user: cpu1.origin.user - cpu0.origin.user, system: cpu1.origin.system - cpu0.origin.system },
      },
      load: await loadAverages(),
    };
  } finally {
    await Promise.all(peers.map((p) => p.stop()));
    await tracker.close();
  }
}

/** The reference rows, beside btmount's `full` rows of the same N. */
export function printLibtorrentTable(results: readonly LibtorrentResult[]): void {
  if (results.length === 0) return;
  process.stdout.write(
    '\nReference: python3-libtorrent 2.0 in every role (seed and N downloaders, the same caps and tracker; no mount, no readers)\n\n' +
      '| N | time (s) | bound (s) | time / bound | origin factor | CPU s: nodes user + sys, origin | load average |\n|---|---|---|---|---|---|---|\n',
  );
  for (const r of results) {
    process.stdout.write(
      `| ${r.n} | ${r.seconds.toFixed(1)} | ${r.bound.toFixed(1)} | ${(r.seconds / r.bound).toFixed(2)} | ${r.originFactor.toFixed(2)} | ` +
        `${r.cpu.nodes.user.toFixed(1)} + ${r.cpu.nodes.system.toFixed(1)}, ${(r.cpu.origin.user + r.cpu.origin.system).toFixed(1)} | ${r.load} |\n`,
    );
  }
}
