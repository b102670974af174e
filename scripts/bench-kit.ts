/**
 * What the mount benches share: a swarm of python3-libtorrent seeders with a
 * tracker, aria2c's full download as the reference, mounting and unmounting,
 * timing a command, dropping the page cache, DataLoader epochs, and the
 * markdown table. Needs root (drop_caches), aria2c, python3-libtorrent, python3-torch.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { freePort, startLibtorrent, startTracker, type Proc } from '../test/helpers/peers.js';

export const execFileAsync = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = path.join(REPO, 'bin', 'btmount.js');
const EPOCH = path.join(REPO, 'scripts', 'dataloader_epoch.py');

/** `--name value` from the command line, or the fallback. */
export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

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
