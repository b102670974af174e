/**
 * What the mount benches share: a swarm of python3-libtorrent seeders with a
 * tracker, aria2c's full download as the reference, mounting and unmounting,
 * timing a command, dropping the page cache, DataLoader epochs, and the
 * markdown table. Needs root (drop_caches), aria2c, python3-libtorrent, python3-torch.
 */
import { execFile, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createTorrentFile } from '../src/cli/create.js';
import { freePort, startLibtorrent, startTracker, type Proc } from '../test/helpers/peers.js';

export const execFileAsync = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = path.join(REPO, 'bin', 'btmount.js');
export const EPOCH = path.join(REPO, 'scripts', 'dataloader_epoch.py');
const CLUSTER_READER = fileURLToPath(new URL('./cluster-reader.js', import.meta.url));

/** A markdown table printed row by row to stderr as it is measured, and whole at the end. */
export class Table {
  readonly rows: string[] = [];
  row(...cells: Array<string | number>): void {
    const line = `| ${cells.join(' | ')} |`;
    this.rows.push(line);
    process.stderr.write(line + '\n');
  }
  toString(): string {
    return this.rows.join('\n');
  }
}

/** The 1-minute load average now (others share the machine: every figure says what it ran beside). */
export async function loadAverage(): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ')[0]!;
}

/** The 1-, 5- and 15-minute load averages, as one string. */
export async function loadAverages(): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
}

export interface CpuTime {
  user: number;
  system: number;
}

export const addCpu = (a: CpuTime, b: CpuTime): CpuTime => ({ user: a.user + b.user, system: a.system + b.system });

/** CPU seconds the processes have used, user and system apart: /proc/<pid>/stat fields 14 and 15, in clock ticks of 10 ms. */
export async function cpuTime(pids: readonly number[]): Promise<CpuTime> {
  const t = { user: 0, system: 0 };
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    t.user += Number(fields[11] ?? 0) / 100;
    t.system += Number(fields[12] ?? 0) / 100;
  }
  return t;
}

export async function dropCaches(): Promise<void> {
  await execFileAsync('sync');
  await writeFile('/proc/sys/vm/drop_caches', '3');
}

/** Wall seconds of a command. */
export async function timeCommand(cmd: string, args: string[]): Promise<number> {
  const started = performance.now();
  await execFileAsync(cmd, args, { maxBuffer: 256 << 20 });
  return (performance.now() - started) / 1000;
}

/** Mounts with the CLI (daemon mode, no DHT); resolves with the daemon's pid. */
export async function mount(torrent: string, mnt: string, cache: string, peers: string[], extra: string[] = []): Promise<number> {
  await mkdir(mnt, { recursive: true });
  const { stdout } = await execFileAsync(process.execPath, [
    BIN, 'mount', torrent, mnt, '--cache', cache, '--port', '0', '--no-dht', ...peers.flatMap((p) => ['--peer', p]), ...extra,
  ]);
  return Number(/daemon pid (\d+)/.exec(stdout)![1]);
}

export async function umount(mnt: string): Promise<void> {
  await execFileAsync(process.execPath, [BIN, 'umount', mnt]).catch(() => execFileAsync('fusermount', ['-uz', mnt]));
}

export async function python(code: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('/usr/bin/python3', ['-c', code, ...args], { maxBuffer: 64 << 20 });
  return stdout.trim();
}

/** Reads every file under argv[1] once, in sorted os.walk order (a folder walk); prints `files bytes seconds`. */
export const READ_TREE_IN_ORDER = `
import os, sys, time
root = sys.argv[1]
files = sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names)
t = time.monotonic()
n = 0
for p in files:
    with open(p, 'rb') as f:
        n += len(f.read())
s = time.monotonic() - t
print(len(files), n, s)
`;

/** Seconds of each DataLoader epoch (4 workers, shuffled) over `root`. */
export async function epochs(root: string, count = 2): Promise<number[]> {
  const { stdout } = await execFileAsync('/usr/bin/python3', [EPOCH, root, '--workers', '4', '--epochs', String(count), '--json'], { maxBuffer: 64 << 20 });
  return stdout.trim().split('\n').map((l) => (JSON.parse(l) as { seconds: number }).seconds);
}

/** Two python3-libtorrent seeders of one torrent (127.0.0.2, 127.0.0.3) and a tracker listing them. */
export interface SeedSwarm {
  /** host:port of each seeder, for `--peer`. */
  peers: string[];
  trackerUrl: string;
  stop(): Promise<void>;
}

export async function startSeedSwarm(torrent: string, savePath: string): Promise<SeedSwarm> {
  const seeders: Array<Proc & { port: number }> = [];
  try {
    for (const host of ['127.0.0.2', '127.0.0.3']) seeders.push(await startLibtorrent('seed', { torrentPath: torrent, savePath, listen: `${host}:0` }));
  } catch (err) {
    for (const s of seeders) await s.stop();
    throw err;
  }
  const tracker = await startTracker(seeders.map((s, i) => ({ host: `127.0.0.${i + 2}`, port: s.port })));
  return {
    peers: seeders.map((s, i) => `127.0.0.${i + 2}:${s.port}`),
    trackerUrl: tracker.url,
    async stop() {
      await tracker.close();
      for (const s of seeders) await s.stop();
    },
  };
}

/** Seconds for aria2c to download the whole torrent from the swarm into `out` (emptied first; kept for the caller). */
export async function aria2Download(torrent: string, trackerUrl: string, out: string): Promise<number> {
  await rm(out, { recursive: true, force: true });
  return timeCommand('aria2c', [
    '--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
    '--file-allocation=none', '--summary-interval=0', '--console-log-level=warn', '--no-conf=true', '--disable-ipv6=true',
    '--seed-time=0', '--bt-tracker-interval=1', '--bt-stop-timeout=300', `--listen-port=${await freePort()}`,
    `--bt-tracker=${trackerUrl}`, `--dir=${out}`, torrent,
  ]);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The mount benches' dataset (one big file of `bigMiB` MiB, `smallCount` image-sized files), its torrent, and a byte-identical copy for the local-disk
 * reference: the seeders keep the dataset's own files open, so their pages
 * could not be dropped and "local disk" would really be memory.
 */
export async function makeMountDataset(dir: string, bigMiB: number, smallCount: number): Promise<{ root: string; reference: string; torrent: string }> {
  const root = path.join(dir, 'dataset');
  const reference = path.join(dir, 'reference');
  const torrent = path.join(dir, `dataset-${bigMiB}-${smallCount}.torrent`);
  const marker = `${torrent}.ok`;
  if (existsSync(marker)) return { root, reference, torrent };
  await rm(root, { recursive: true, force: true });
  await mkdir(path.join(root, 'small'), { recursive: true });
  const chunk = Buffer.allocUnsafe(16 << 20);
  const fh = await open(path.join(root, 'big.bin'), 'w');
  for (let left = bigMiB << 20; left > 0; left -= chunk.length) {
    const n = Math.min(left, chunk.length);
    randomFillSync(chunk, 0, n);
    await fh.write(chunk, 0, n);
  }
  await fh.close();
  for (let i = 0; i < smallCount; i++) {
    const cls = path.join(root, 'small', `class${i % 10}`);
    if (i < 10) await mkdir(cls, { recursive: true });
    const size = 10_000 + ((i * 7919) % 40_000); // 10–50 KB, like small JPEGs
    await writeFile(path.join(cls, `${String(i).padStart(5, '0')}.jpg`), randomFillSync(Buffer.allocUnsafe(size)));
  }
  await createTorrentFile(root, { output: torrent, pieceSize: 1 << 20, tracker: [], webSeed: [] });
  await rm(reference, { recursive: true, force: true });
  await execFileAsync('cp', ['-a', root, reference]);
  await writeFile(marker, 'ok');
  return { root, reference, torrent };
}

/** Resident memory of a process, in MiB. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/**
 * Waits (up to 30 s) until every node sees at least `want` peers: the cluster is formed. Past that,
 * says how far it got and lets the bench measure anyway.
 */
export async function waitForCluster(peersOf: ReadonlyArray<() => Promise<number>>, want: number): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    const counts = await Promise.all(peersOf.map((count) => count()));
    if (counts.every((c) => c >= want)) return;
    if (Date.now() > until) {
      process.stderr.write(`  cluster not fully connected after 30 s (peers per node: ${counts.join(' ')}); measuring anyway\n`);
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** One line of a cluster reader's list (scripts/cluster-reader.ts): a file to read through a mount and what it must hold. */
export interface ReaderListEntry {
  sha1: string;
  length: number;
  path: string;
}

/**
 * Every node's reader (scripts/cluster-reader.ts), started and loaded before the clock: the
 * timed window is from the go every reader is given at once until the last is done. Resolves
 * the seconds and the readers' CPU from the go; throws naming the node whose reads failed.
 */
export async function readConcurrently(base: string, tag: string, lists: ReadonlyArray<readonly ReaderListEntry[]>, concurrency: number): Promise<{ seconds: number; readerCpu: CpuTime }> {
  const readers = await Promise.all(
    lists.map(async (list, i) => {
      const listFile = path.join(base, `${tag}-${i}.list`);
      await writeFile(listFile, list.map((f) => `${f.sha1} ${f.length} ${f.path}`).join('\n') + '\n');
      const child = spawn(process.execPath, [CLUSTER_READER, listFile, String(concurrency)], { stdio: ['pipe', 'pipe', 'pipe'] });
      let output = '';
      const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      const ready = new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          output += d.toString();
          if (output.includes('ready\n')) resolve();
        });
        void exited.then((code) => reject(new Error(`node ${i} (${tag}): its reader exited (${code}) before it was ready: ${output.slice(-500)}`)));
      });
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      return { child, exited, ready, output: () => output, node: i };
    }),
  );
  try {
    await Promise.all(readers.map((r) => r.ready));
  } catch (err) {
    for (const r of readers) r.child.kill();
    throw err;
  }
  const started = performance.now();
  for (const r of readers) r.child.stdin.end('go\n');
  const cpu = await Promise.all(
    readers.map(async (r) => {
      const code = await r.exited;
      if (code !== 0) throw new Error(`node ${r.node} (${tag}) failed to read its files: ${r.output().slice(-500)}`);
      const said = / cpu (\d+) (\d+)/.exec(r.output());
      return { user: Number(said?.[1] ?? 0) / 1e6, system: Number(said?.[2] ?? 0) / 1e6 };
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { seconds, readerCpu: cpu.reduce(addCpu, { user: 0, system: 0 }) };
}
