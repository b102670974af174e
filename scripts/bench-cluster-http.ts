/**
 * The cluster bench's second origin (issue 12): an HTTP server instead of a `btmount seed`.
 *
 * The origin is a node HTTP server on 127.0.0.2 honouring Range, capped like the seed
 * (one token bucket for all its connections, `--rate`), counting the bytes it sends.
 * N `btmount mount` daemons on 127.0.0.(10+i), each capped at `--rate` upload, use it as
 * `--web-seed` and find each other through a bittorrent-tracker server on 127.0.0.1
 * (there is no seed); every node reads every file at the same time, in the same order.
 * Beside it, the plain-HTTP baseline: N clients each download the whole dataset from the
 * same capped server (what a cluster does without BitTorrent).
 *
 * Per N: the time until every node has read every file; the swarm bound
 * max(F/u_s, N·F/(u_s+Σu_i)); the origin factor (the server's own byte count / F); the
 * nodes' own count of web-seed bytes / F; the plain-HTTP time and its bound N·F/u_s.
 *
 * Used by scripts/bench-cluster.ts: `--workloads http` (or `full,shards,http`).
 */
import { createReadStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import type { MountStatus } from '../src/control/status-schema.js';
import type { Metainfo } from '../src/metainfo/index.js';
import { TokenBucket } from '../src/swarm/rate-limiter.js';
import { startTrackerServer } from '../test/helpers/discovery.js';
import { liveStatus, mountWithCli, type MountedTorrent } from '../test/helpers/mount.js';
import { freePort } from '../test/helpers/peers.js';
import { loadAverages, readConcurrently, waitForCluster } from './bench-kit.js';

const ORIGIN_HOST = '127.0.0.2';
const nodeHost = (i: number): string => `127.0.0.${10 + i}`;

/** The dataset as bench-cluster.ts makes it. */
export interface HttpBenchData {
  root: string;
  torrent: string;
  metainfo: Metainfo;
  /** With each file's SHA-1: the reader checks every byte it reads. */
  files: ReadonlyArray<{ path: string; length: number; sha1: string }>;
}

export interface HttpOriginResult {
  n: number;
  seconds: number;
  bound: number;
  /** Bytes the HTTP server sent / F, by its own count. */
  originFactor: number;
  /** The nodes' own count of bytes received from the web seed / F. */
  webSeedFactor: number;
  /** Plain HTTP: every node downloads the whole dataset from the capped server. */
  plainSeconds: number;
  plainBound: number;
  load: string;
}

interface CappedServer {
  /** The web-seed URL: the dataset's parent folder, so BEP 19's name/path lands on the files. */
  url: string;
  bytesSent(): number;
  close(): Promise<void>;
}

/** A node HTTP server serving `dir` at /data/, Range honoured, every byte it sends paced by one bucket of `rate` B/s. */
async function startCappedServer(dir: string, rate: number): Promise<CappedServer> {
  const bucket = new TokenBucket(rate);
  let sent = 0;
  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const rel = decodeURIComponent(url.pathname.replace(/^\/data\//, ''));
      const file = path.join(dir, rel);
      if (!url.pathname.startsWith('/data/') || !file.startsWith(dir + path.sep)) return void res.writeHead(404).end();
      const size = (await stat(file).catch(() => undefined))?.size;
      if (size === undefined) return void res.writeHead(404).end();
      const m = /^bytes=(\d+)-(\d+)?$/.exec(req.headers.range ?? '');
      const first = m ? Number(m[1]) : 0;
      const last = m ? Math.min(m[2] === undefined ? size - 1 : Number(m[2]), size - 1) : size - 1;
      if (first > last) return void res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
      res.writeHead(m ? 206 : 200, { 'Content-Length': last - first + 1, ...(m ? { 'Content-Range': `bytes ${first}-${last}/${size}` } : {}) });
      for await (const chunk of createReadStream(file, { start: first, end: last, highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>) {
        const wait = bucket.take(chunk.length);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (res.destroyed) return;
        sent += chunk.length;
        if (!res.write(chunk)) await new Promise<void>((r) => (res.once('drain', r), res.once('close', r)));
      }
      res.end();
    })().catch(() => res.destroy());
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => (sockets.add(s), s.on('close', () => sockets.delete(s))));
  const port = await freePort(ORIGIN_HOST);
  await new Promise<void>((resolve) => server.listen(port, ORIGIN_HOST, resolve));
  return {
    url: `http://${ORIGIN_HOST}:${port}/data/`,
    bytesSent: () => sent,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** N plain HTTP clients, each GETting every file of the dataset (`concurrency` at a time); seconds until the last is done. */
async function plainHttp(server: CappedServer, data: HttpBenchData, n: number, concurrency: number): Promise<number> {
  const name = path.basename(data.root);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: n }, async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < data.files.length) {
          const f = data.files[next++]!;
          const url = `${server.url}${[name, ...f.path.split('/')].map(encodeURIComponent).join('/')}`;
          const bytes = await new Promise<number>((resolve, reject) => {
            http.get(url, { agent }, (res) => {
              let got = 0;
              res.on('data', (c: Buffer) => (got += c.length));
              res.on('end', () => resolve(got));
              res.on('error', reject);
            }).on('error', reject);
          });
          if (bytes !== f.length) throw new Error(`plain HTTP: ${f.path}: ${bytes} of ${f.length} bytes`);
        }
      };
      try {
        await Promise.all(Array.from({ length: concurrency }, worker));
      } finally {
        agent.destroy();
      }
    }),
  );
  return (performance.now() - started) / 1000;
}

/** The N mounts, with the HTTP server as their web seed and a tracker to find each other by. */
async function startHttpCluster(data: HttpBenchData, server: CappedServer, n: number, rate: number, base: string): Promise<{ nodes: MountedTorrent[]; stop(): Promise<void> }> {
  const tracker = await startTrackerServer();
  const nodes: MountedTorrent[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((m) => m.unmount()));
    await tracker.close();
  };
  try {
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const mnt = path.join(base, `mnt${i}`);
        await mkdir(mnt, { recursive: true });
        const port = await freePort(nodeHost(i));
        const args = ['mount', data.torrent, mnt, '--cache', path.join(base, `cache${i}`), '--cache-size', `${2 * data.metainfo.layout.totalLength}`];
        args.push('--host', nodeHost(i), '--port', String(port), '--read-timeout', '60', '--no-dht', '--tracker', tracker.httpUrl, '--upload-limit', String(rate));
        args.push('--web-seed', server.url);
        nodes[i] = await mountWithCli(mnt, args, { timeoutMs: 120_000 });
      }),
    );
    // Formed when every node is connected to every other (there is no seed to connect to).
    await waitForCluster(nodes.map((m) => async () => (await liveStatus(m.mountpoint)).peers.length), n - 1);
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, stop };
}

/** Every node reads every file, `readers` at a time (bench-kit's readConcurrently: readers started before the clock, each file's SHA-1 checked); seconds until the last is done. */
async function readEverything(base: string, nodes: readonly MountedTorrent[], data: HttpBenchData, readers: string): Promise<number> {
  const lists = nodes.map((m) => data.files.map((f) => ({ sha1: f.sha1, length: f.length, path: path.join(m.mountpoint, f.path) })));
  return (await readConcurrently(base, 'http', lists, Number(readers))).seconds;
}

/** One N: the plain-HTTP baseline, then the cluster of mounts with the server as web seed, each against a fresh server. */
export async function runHttpOrigin(data: HttpBenchData, n: number, rate: number, base: string, opts: { readers: string }): Promise<HttpOriginResult> {
  const F = data.metainfo.layout.totalLength;
  const dir = path.dirname(data.root);
  const plainServer = await startCappedServer(dir, rate);
  let plainSeconds: number;
  try {
    plainSeconds = await plainHttp(plainServer, data, n, Number(opts.readers));
  } finally {
    await plainServer.close();
  }
  const server = await startCappedServer(dir, rate);
  try {
    const cluster = await startHttpCluster(data, server, n, rate, base);
    try {
      const seconds = await readEverything(base, cluster.nodes, data, opts.readers);
      const statuses: MountStatus[] = await Promise.all(cluster.nodes.map((m) => liveStatus(m.mountpoint)));
      const webSeedBytes = statuses.reduce((sum, s) => sum + (s.webSeeds ?? []).reduce((a, w) => a + w.bytesFetched, 0), 0);
      const load = await loadAverages();
      return {
        n,
        seconds,
        bound: Math.max(F / rate, (n * F) / (rate + n * rate)),
        originFactor: server.bytesSent() / F,
        webSeedFactor: webSeedBytes / F,
        plainSeconds,
        plainBound: (n * F) / rate,
        load,
      };
    } finally {
      await cluster.stop();
    }
  } finally {
    await server.close();
  }
}

export function printHttpTable(results: readonly HttpOriginResult[], mib: number, rate: number): void {
  if (results.length === 0) return;
  const MiB = 1024 * 1024;
  const out: string[] = [''];
  out.push(`HTTP origin (web seed), F = ${mib} MiB, u_s = u_i = ${(rate / MiB).toFixed(1)} MiB/s; every node reads every file; plain HTTP = every node downloads the whole dataset from the same capped server`);
  out.push('');
  out.push('| origin | N | time (s) | bound (s) | time / bound | origin factor (server count) | web-seed bytes / F (nodes count) | plain HTTP (s) | plain HTTP bound N·F/u_s (s) | load average |');
  out.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    out.push(
      `| HTTP web seed | ${r.n} | ${r.seconds.toFixed(1)} | ${r.bound.toFixed(1)} | ${(r.seconds / r.bound).toFixed(2)} | ${r.originFactor.toFixed(2)} | ${r.webSeedFactor.toFixed(2)} | ${r.plainSeconds.toFixed(1)} | ${r.plainBound.toFixed(1)} | ${r.load} |`,
    );
  }
  process.stdout.write(out.join('\n') + '\n');
}

/** Time against the bound and the origin factor per N, web seed beside plain HTTP (python3-matplotlib). */
export async function plotHttp(results: readonly HttpOriginResult[], file: string): Promise<void> {
  if (results.length === 0) return;
  const script = `
import json, sys
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
rs = sorted(json.loads(sys.argv[1]), key=lambda r: r['n'])
ns = [r['n'] for r in rs]
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
a.plot(ns, [r['seconds'] for r in rs], marker='o', label='btmount, HTTP web seed')
a.plot(ns, [r['bound'] for r in rs], marker='o', linestyle=':', label='swarm bound')
a.plot(ns, [r['plainSeconds'] for r in rs], marker='s', label='plain HTTP, every node the whole dataset')
a.plot(ns, [r['plainBound'] for r in rs], marker='s', linestyle='--', label='N*F/u_s')
a.set_xlabel('nodes'); a.set_ylabel('seconds until every node has read the dataset'); a.set_xscale('log', base=2); a.legend(fontsize=7)
b.plot(ns, [r['originFactor'] for r in rs], marker='o', label='HTTP origin: bytes sent / F')
b.axhline(1.0, color='grey', linestyle=':'); b.axhline(1.2, color='red', linestyle=':', label='goal 1.2')
b.set_xlabel('nodes'); b.set_ylabel('origin bytes sent / dataset size'); b.set_xscale('log', base=2); b.legend(fontsize=7)
fig.tight_layout(); fig.savefig(sys.argv[2], dpi=100)
`;
  await promisify(execFile)('/usr/bin/python3', ['-c', script, JSON.stringify(results), file]);
  process.stderr.write(`plot: ${file}\n`);
}
