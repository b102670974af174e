/**
 * Swarm bench: a 1 GiB torrent (1 MiB pieces) downloaded in full from two local
 * python3-libtorrent seeders (127.0.0.2, 127.0.0.3), by btmount's engine and by
 * aria2c, alternately, in one run. Prints MB/s, CPU seconds per GiB, and time to
 * the first verified piece (btmount) / first bytes on disk (aria2c).
 *
 *   npx tsc -p . && node dist/scripts/bench-swarm.js [--size-mib 1024] [--rounds 2] [--storage store|memory|discard] [--dir /tmp/btmount-bench-swarm]
 *
 * --storage discard (default): verified pieces are dropped, the engine alone is measured;
 * store: the real PieceStore writes them under --dir/cache (aria2c writes its files too);
 * memory: kept in RAM. Data lives in /tmp (reused between runs); nothing is written in the repo.
 */
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createTorrentFile } from '../src/cli/create.js';
import { loadMetainfo } from '../src/metainfo/index.js';
import type { PieceIndex } from '../src/metainfo/piece-layout.js';
import { MemoryPieceStorage, Swarm, type PieceStorage } from '../src/swarm/index.js';
import type { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import { startLibtorrent, startTracker, freePort, type Proc } from '../test/helpers/peers.js';
import { benchOptions } from './bench-options.js';

const SELF = fileURLToPath(import.meta.url);


/** Holds nothing: `has` answers true after a verified put. Measures the engine alone. */
class DiscardStorage extends EventEmitter implements PieceStorage {
  private readonly held = new Set<number>();
  has(index: PieceIndex): boolean {
    return this.held.has(index);
  }
  haveIndices(): Iterable<PieceIndex> {
    return [];
  }
  async put(piece: VerifiedPiece): Promise<boolean> {
    this.held.add(piece.index);
    this.emit('added', piece.index);
    return true;
  }
  async readBlock(): Promise<Buffer> {
    throw new Error('discarded');
  }
}

// ── child: one btmount download ──────────────────────────────────────────────

async function leech(): Promise<void> {
  const options = benchOptions('One btmount download (the bench\'s child).', {
    torrent: '',
    storage: 'discard',
    cache: '/tmp/btmount-bench-swarm/cache',
    peer: [] as string[],
  }, process.argv.slice(3));
  const metainfo = await loadMetainfo(options.torrent);
  const kind = options.storage;
  let storage: PieceStorage;
  let closeStorage = async (): Promise<void> => {};
  if (kind === 'memory') storage = new MemoryPieceStorage(metainfo.layout);
  else if (kind === 'discard') storage = new DiscardStorage();
  else {
    const { PieceStore } = await import('../src/store/piece-store.js');
    const cacheRoot = options.cache;
    await rm(cacheRoot, { recursive: true, force: true });
    const store = await PieceStore.open({ cacheRoot, infoHash: metainfo.infoHash, layout: metainfo.layout, budgetBytes: metainfo.layout.totalLength * 2 });
    storage = store as unknown as PieceStorage;
    closeStorage = () => store.close();
  }
  const swarm = new Swarm({ infoHash: metainfo.infoHash, layout: metainfo.layout, storage, port: 0, host: '127.0.0.1' });
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let firstPieceMs = 0;
  swarm.once('verified', () => (firstPieceMs = performance.now() - t0));
  for (const p of options.peer) {
    const [host, port] = [p.slice(0, p.lastIndexOf(':')), Number(p.slice(p.lastIndexOf(':') + 1))];
    swarm.addPeer(host, port);
  }
  await Promise.all(Array.from({ length: metainfo.layout.pieceCount }, (_, i) => swarm.fetch(i as PieceIndex, 'warm')));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  loop.disable();
  const stats = swarm.stats();
  await swarm.close();
  await closeStorage();
  process.stdout.write(
    JSON.stringify({
      seconds,
      firstPieceMs,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      loopDelayP99Ms: loop.percentile(99) / 1e6,
      loopDelayMaxMs: loop.max / 1e6,
      hashFailures: stats.hashFailures,
      verifyMeanMs: stats.verify.totalMs / Math.max(1, stats.verify.pieces),
      verifyMaxMs: stats.verify.maxMs,
      peers: stats.peers.map((p) => p.address),
    }) + '\n',
  );
}

// ── parent: set up the swarm, run both clients ───────────────────────────────

/** Runs a command and returns its wall time, CPU seconds (its own rusage) and output. */
function timed(cmd: string, argv: string[], onStart?: (pid: number) => void): Promise<{ seconds: number; cpuSeconds: number; stdout: string; code: number }> {
  // python3 measures the child's rusage (user + system), which Node cannot.
  const wrapper =
    'import resource,subprocess,sys,time,json\n' +
    't=time.time(); r=subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n' +
    'u=resource.getrusage(resource.RUSAGE_CHILDREN)\n' +
    'sys.stdout.write(r.stdout.decode())\n' +
    'print(json.dumps({"wrapper": True, "code": r.returncode, "seconds": time.time()-t, "cpu": u.ru_utime+u.ru_stime}))\n';
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', ['-c', wrapper, cmd, ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.pid) onStart?.(child.pid);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', () => {
      const last = out.trim().split('\n').pop() ?? '{}';
      const w = JSON.parse(last) as { code: number; seconds: number; cpu: number };
      resolve({ seconds: w.seconds, cpuSeconds: w.cpu, stdout: out, code: w.code });
    });
  });
}

/** user + system CPU seconds of a running process, from /proc. */
async function cpuOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

async function ariaDownload(torrent: string, out: string, trackerUrl: string): Promise<{ seconds: number; cpuSeconds: number; code: number }> {
  await rm(out, { recursive: true, force: true });
  await mkdir(out);
  const r = await timed('aria2c', [
    '--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
    '--file-allocation=none', '--summary-interval=0', '--console-log-level=warn', '--no-conf=true', '--disable-ipv6=true',
    '--max-overall-download-limit=0', '--seed-time=0', '--bt-tracker-interval=1', '--bt-stop-timeout=300',
    `--listen-port=${await freePort()}`, `--bt-tracker=${trackerUrl}`, `--dir=${out}`, torrent,
  ]);
  await rm(out, { recursive: true, force: true });
  return r;
}

async function makeData(dir: string, sizeMiB: number): Promise<{ root: string; torrent: string }> {
  const root = path.join(dir, 'ds');
  const torrent = path.join(dir, `ds-${sizeMiB}.torrent`);
  const marker = path.join(dir, `ds-${sizeMiB}.ok`);
  if (existsSync(marker) && existsSync(torrent)) return { root, torrent };
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const files = 8;
  const per = Math.floor((sizeMiB * 1024 * 1024) / files);
  const chunk = Buffer.allocUnsafe(16 * 1024 * 1024);
  for (let f = 0; f < files; f++) {
    const { open } = await import('node:fs/promises');
    const fh = await open(path.join(root, `part-${f}.bin`), 'w');
    for (let written = 0; written < per; ) {
      const n = Math.min(chunk.length, per - written);
      randomFillSync(chunk, 0, n);
      await fh.write(chunk, 0, n);
      written += n;
    }
    await fh.close();
  }
  await createTorrentFile(root, { output: torrent, pieceSize: 1024 * 1024, tracker: [], webSeed: [] });
  await writeFile(marker, 'ok');
  return { root, torrent };
}

async function diskBytes(dir: string): Promise<number> {
  let sum = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) sum += (await stat(p).catch(() => ({ blocks: 0 }))).blocks * 512;
    }
  };
  await walk(dir);
  return sum;
}

async function main(): Promise<void> {
  const options = benchOptions('The swarm engine vs aria2c: a full download from two local python3-libtorrent seeders.', {
    dir: '/tmp/btmount-bench-swarm',
    'size-mib': '1024',
    rounds: '2',
    storage: 'discard',
  });
  const dir = options.dir;
  const sizeMiB = Number(options['size-mib']);
  const rounds = Number(options.rounds);
  const storage = options.storage;
  await mkdir(dir, { recursive: true });
  process.stderr.write(`preparing ${sizeMiB} MiB dataset in ${dir} …\n`);
  const { torrent } = await makeData(dir, sizeMiB);
  const metainfo = await loadMetainfo(torrent);
  const gib = metainfo.layout.totalLength / 2 ** 30;
  const mb = metainfo.layout.totalLength / 1e6;

  const seeders: Array<Proc & { port: number }> = [];
  let tracker: { url: string; close(): Promise<void> } | undefined;
  const rows: Array<{ client: string; round: number; seconds: number; cpuSeconds: number; firstMs: number; extra: string }> = [];
  const serving: Array<{ who: string; seconds: number; cpuSeconds: number }> = [];
  try {
    for (const host of ['127.0.0.2', '127.0.0.3']) {
      seeders.push(await startLibtorrent('seed', { torrentPath: torrent, savePath: dir, listen: `${host}:0` }));
    }
    const peers = seeders.map((s, i) => ({ host: `127.0.0.${i + 2}`, port: s.port }));
    tracker = await startTracker(peers);
    process.stderr.write(`seeders: ${peers.map((p) => `${p.host}:${p.port}`).join(', ')}\n`);

    for (let round = 1; round <= rounds; round++) {
      // aria2c
      const out = path.join(dir, 'aria-out');
      let firstMs = 0;
      const started = performance.now();
      let polling = true;
      const poll = (async () => {
        while (polling && firstMs === 0) {
          if ((await diskBytes(out)) > 0) firstMs = performance.now() - started;
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const a = await ariaDownload(torrent, out, tracker.url);
      polling = false;
      await poll;
      if (a.code !== 0) throw new Error(`aria2c failed (${a.code})`);
      rows.push({ client: 'aria2c 1.36', round, seconds: a.seconds, cpuSeconds: a.cpuSeconds, firstMs, extra: 'first bytes on disk' });

      // btmount engine (this process idles meanwhile: its event-loop delay shows the machine's own noise)
      const idle = monitorEventLoopDelay({ resolution: 5 });
      idle.enable();
      const b = await timed(process.execPath, [
        SELF, 'leech', '--torrent', torrent, '--storage', storage, '--cache', path.join(dir, 'cache'),
        ...peers.flatMap((p) => ['--peer', `${p.host}:${p.port}`]),
      ]);
      idle.disable();
      if (b.code !== 0) throw new Error(`btmount leech failed (${b.code})`);
      const r = JSON.parse(b.stdout.trim().split('\n').find((l) => l.includes('"firstPieceMs"'))!) as {
        seconds: number; firstPieceMs: number; loopDelayP99Ms: number; loopDelayMaxMs: number; hashFailures: number; verifyMeanMs: number; verifyMaxMs: number;
      };
      rows.push({
        client: `btmount (${storage})`, round, seconds: r.seconds, cpuSeconds: b.cpuSeconds, firstMs: r.firstPieceMs,
        extra: `first verified piece; SHA-1 per piece ${r.verifyMeanMs.toFixed(2)} ms (max ${r.verifyMaxMs.toFixed(1)}); event loop delay p99 ${r.loopDelayP99Ms.toFixed(0)} ms (an idle process beside it: ${(idle.percentile(99) / 1e6).toFixed(0)} ms)`,
      });
      await rm(path.join(dir, 'cache'), { recursive: true, force: true });
    }
    // Serving: one aria2c leecher from `btmount seed` (the real CLI), then from one python3-libtorrent seeder.
    await tracker.close();
    for (const s of seeders.splice(0)) await s.stop();
    const { root } = await makeData(dir, sizeMiB);
    for (const who of ['btmount seed', 'python3-libtorrent 2.0']) {
      let server: Proc & { port: number };
      if (who === 'btmount seed') {
        const { startProcess } = await import('../test/helpers/peers.js');
        const bin = path.join(path.dirname(SELF), '..', '..', 'bin', 'btmount.js');
        const proc = startProcess(process.execPath, [bin, 'seed', torrent, root, '--port', '0', '--host', '127.0.0.4', '--no-dht']);
        const m = await proc.waitFor(/on port (\d+)/, 120_000);
        server = Object.assign(proc, { port: Number(m[1]) });
      } else {
        server = await startLibtorrent('seed', { torrentPath: torrent, savePath: dir, listen: '127.0.0.4:0' });
      }
      seeders.push(server);
      tracker = await startTracker([{ host: '127.0.0.4', port: server.port }]);
      const cpuBefore = await cpuOf(server.pid);
      const r = await ariaDownload(torrent, path.join(dir, 'aria-out'), tracker.url);
      const cpu = (await cpuOf(server.pid)) - cpuBefore;
      if (r.code !== 0) throw new Error(`aria2c failed (${r.code}) downloading from ${who}`);
      serving.push({ who, seconds: r.seconds, cpuSeconds: cpu });
      await tracker.close();
      tracker = undefined;
      for (const s of seeders.splice(0)) await s.stop();
    }
  } finally {
    await tracker?.close();
    for (const s of seeders) await s.stop();
  }

  process.stdout.write(`\n${(metainfo.layout.totalLength / 2 ** 20).toFixed(0)} MiB, ${metainfo.layout.pieceCount} pieces of 1 MiB, 2 python3-libtorrent seeders on loopback, ${new Date().toISOString()}\n\n`);
  process.stdout.write('| client | round | MB/s | CPU s per GiB | time to first piece | |\n|---|---|---|---|---|---|\n');
  for (const r of rows) {
    process.stdout.write(`| ${r.client} | ${r.round} | ${(mb / r.seconds).toFixed(0)} | ${(r.cpuSeconds / gib).toFixed(2)} | ${r.firstMs.toFixed(0)} ms | ${r.extra} |\n`);
  }
  process.stdout.write('\nServing the same torrent to one aria2c leecher (its wall time, aria2c start-up included):\n\n| seeder | MB/s | seeder CPU s per GiB |\n|---|---|---|\n');
  for (const r of serving) process.stdout.write(`| ${r.who} | ${(mb / r.seconds).toFixed(0)} | ${(r.cpuSeconds / gib).toFixed(2)} |\n`);
}

if (process.argv[2] === 'leech') await leech();
else await main();
