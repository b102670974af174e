/**
 * Soak: 16 reader processes (half random, half sequential reads, every byte
 * checked) over a 1 GiB torrent mounted with btmount, for SOAK_SECONDS
 * (default 600). Two python3-libtorrent seeders (127.0.0.2, 127.0.0.3): every
 * minute one of them is killed (SIGKILL) and comes back 20 s later, the other
 * the next minute. One lying peer (127.0.0.4) answers every request with
 * random bytes throughout. The cache (256 MiB) is a quarter of the data, and
 * readers drop the kernel's page cache of what they read (POSIX_FADV_DONTNEED),
 * so reads keep reaching the daemon.
 *
 * Reports reads, bytes, EIO errors, wrong bytes (must be 0), reads that never
 * ended (must be 0), daemon RSS and open fds at start / middle / end, and the
 * mount's own counters (hash failures, bans, evictions).
 *
 *   npx tsc -p . && SOAK_SECONDS=600 node dist/scripts/bench-soak.js [--dir /tmp/btmount-bench-soak]
 *
 * Needs python3-libtorrent. Prints markdown.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createTorrentFile } from '../src/cli/create.js';
import { loadMetainfo } from '../src/metainfo/index.js';
import { freePort, startFakePeer, startLibtorrent, type Proc } from '../test/helpers/peers.js';
import { benchOptions } from './bench-options.js';

const execFileAsync = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(REPO, 'bin', 'btmount.js');

const { dir } = benchOptions('Soak: 16 readers, churning seeders and a lying peer for SOAK_SECONDS (default 600).', { dir: '/tmp/btmount-bench-soak' });
const SECONDS = Number(process.env['SOAK_SECONDS'] ?? 600);
const READERS = 16;
const FILES = 16;
const FILE_MIB = 64; // 16 × 64 MiB = 1 GiB
const CHURN_EVERY_S = 60;
const DOWN_FOR_S = 20;
const READ_TIMEOUT_S = 30;

/** Every 4 KiB block of file f is sha256("f:block") repeated: readers check any range without a copy. */
const READER = `
import hashlib, json, os, random, sys, time
root, seconds, seed, mode, files, file_mib = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
size = file_mib << 20
rng = random.Random(seed)
def expected(f, off, n):
    first, last = off // 4096, (off + n - 1) // 4096
    data = b''.join(hashlib.sha256(b'%d:%d' % (f, b)).digest() * 128 for b in range(first, last + 1))
    return data[off - first * 4096: off - first * 4096 + n]
st = {'reads': 0, 'bytes': 0, 'errors': 0, 'wrong': 0, 'short': 0, 'maxMs': 0, 'inflightSince': None}
fds = [os.open(os.path.join(root, 'part%02d.bin' % f), os.O_RDONLY) for f in range(files)]
end = time.monotonic() + seconds
last_print = 0
seq_file, seq_off = rng.randrange(files), 0
while time.monotonic() < end:
    if mode == 'random':
        f = rng.randrange(files); n = rng.choice([4096, 16384, 65536, rng.randrange(1, 131072)]); off = rng.randrange(0, size - n)
    else:
        if seq_off >= size or rng.random() < 0.02: seq_file, seq_off = rng.randrange(files), rng.randrange(0, size // (1 << 20)) << 20
        f, off, n = seq_file, seq_off, min(1 << 20, size - seq_off); seq_off += n
    st['inflightSince'] = time.time()
    t = time.monotonic()
    try:
        got = os.pread(fds[f], n, off)
        if len(got) != n: st['short'] += 1
        if got != expected(f, off, len(got)): st['wrong'] += 1
        st['reads'] += 1; st['bytes'] += len(got)
    except OSError as e:
        st['errors'] += 1
    st['inflightSince'] = None
    st['maxMs'] = max(st['maxMs'], int((time.monotonic() - t) * 1000))
    if st['reads'] % 16 == 0: os.posix_fadvise(fds[f], 0, 0, os.POSIX_FADV_DONTNEED)
    if time.monotonic() - last_print > 2:
        last_print = time.monotonic(); print(json.dumps(st), flush=True)
st['done'] = True
print(json.dumps(st), flush=True)
`;

interface ReaderState {
  reads: number;
  bytes: number;
  errors: number;
  wrong: number;
  short: number;
  maxMs: number;
  inflightSince: number | null;
  done?: boolean;
}

async function makeData(): Promise<{ root: string; torrent: string }> {
  const root = path.join(dir, 'dataset');
  const torrent = path.join(dir, 'soak.torrent');
  if (existsSync(`${torrent}.ok`)) return { root, torrent };
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  const blocksPerFile = (FILE_MIB << 20) / 4096;
  for (let f = 0; f < FILES; f++) {
    const fh = await open(path.join(root, `part${String(f).padStart(2, '0')}.bin`), 'w');
    const chunk = Buffer.alloc(16 << 20);
    for (let b = 0; b < blocksPerFile; ) {
      let at = 0;
      for (; at < chunk.length && b < blocksPerFile; b++, at += 4096) {
        const digest = createHash('sha256').update(`${f}:${b}`).digest();
        for (let k = 0; k < 128; k++) digest.copy(chunk, at + k * 32);
      }
      await fh.write(chunk, 0, at);
    }
    await fh.close();
  }
  await createTorrentFile(root, { output: torrent, pieceSize: 1 << 20, tracker: [], webSeed: [] });
  await writeFile(`${torrent}.ok`, 'ok');
  return { root, torrent };
}

const rssMiB = async (pid: number): Promise<number> => Math.round(Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);
const fdCount = async (pid: number): Promise<number> => (await readdir(`/proc/${pid}/fd`)).length;
const load = async (): Promise<string> => (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');

async function main(): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { root, torrent } = await makeData();
  const metainfo = await loadMetainfo(torrent);
  const seedHosts = ['127.0.0.2', '127.0.0.3'];
  const seedPorts = await Promise.all(seedHosts.map((h) => freePort(h)));
  const startSeeder = (i: number): Promise<Proc & { port: number }> =>
    startLibtorrent('seed', { torrentPath: torrent, savePath: path.dirname(root), listen: `${seedHosts[i]}:${seedPorts[i]}` });
  const seeders: Array<(Proc & { port: number }) | undefined> = await Promise.all([startSeeder(0), startSeeder(1)]);
  const liar = await startFakePeer('127.0.0.4', metainfo, ({ wire, index, offset, length }) => wire.piece(index, offset, randomBytes(length)));

  const mnt = path.join(dir, 'mnt');
  const cache = path.join(dir, 'cache');
  await execFileAsync('fusermount', ['-uz', mnt]).catch(() => undefined);
  await rm(cache, { recursive: true, force: true });
  await mkdir(mnt, { recursive: true });
  const peers = [...seedHosts.map((h, i) => `${h}:${seedPorts[i]}`), `${liar.host}:${liar.port}`];
  const { stdout } = await execFileAsync(process.execPath, [
    BIN, 'mount', torrent, mnt, '--cache', cache, '--cache-size', '256M', '--port', '0', '--no-dht', '--read-timeout', String(READ_TIMEOUT_S),
    ...peers.flatMap((p) => ['--peer', p]),
  ]);
  const pid = Number(/daemon pid (\d+)/.exec(stdout)![1]);
  const loadStart = await load();
  const samples: Array<{ at: string; rss: number; fds: number }> = [{ at: 'start', rss: await rssMiB(pid), fds: await fdCount(pid) }];

  const states: ReaderState[] = [];
  const readers: ChildProcess[] = [];
  for (let r = 0; r < READERS; r++) {
    const child = spawn('/usr/bin/python3', ['-c', READER, mnt, String(SECONDS), String(r + 1), r % 2 === 0 ? 'random' : 'sequential', String(FILES), String(FILE_MIB)], { stdio: ['ignore', 'pipe', 'inherit'] });
    states[r] = { reads: 0, bytes: 0, errors: 0, wrong: 0, short: 0, maxMs: 0, inflightSince: null };
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) if (l.trim()) states[r] = JSON.parse(l) as ReaderState;
    });
    readers.push(child);
  }
  const exits = readers.map((c) => new Promise<void>((resolve) => c.once('exit', () => resolve())));

  // Churn: each minute one seeder is killed, and back 20 s later; they take turns.
  const started = Date.now();
  let minute = 0;
  let kills = 0;
  let middleTaken = false;
  const restarts: NodeJS.Timeout[] = [];
  const starting: Array<Promise<void>> = [];
  while (Date.now() - started < SECONDS * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    const elapsed = (Date.now() - started) / 1000;
    if (!middleTaken && elapsed >= SECONDS / 2) {
      middleTaken = true;
      samples.push({ at: 'middle', rss: await rssMiB(pid), fds: await fdCount(pid) });
    }
    if (elapsed >= (minute + 1) * CHURN_EVERY_S) {
      const victim = minute % 2;
      minute++;
      const s = seeders[victim];
      if (s) {
        await s.stop('SIGKILL');
        kills++;
        seeders[victim] = undefined;
        restarts.push(
          setTimeout(() => {
            starting.push(startSeeder(victim).then((p) => void (seeders[victim] = p)));
          }, DOWN_FOR_S * 1000),
        );
      }
    }
  }
  // Readers end by themselves; any still inside a read READ_TIMEOUT_S + 60 s after the end never ended it.
  const grace = setTimeout(() => readers.forEach((c) => c.exitCode === null && c.kill('SIGKILL')), (READ_TIMEOUT_S + 60) * 1000);
  await Promise.all(exits);
  clearTimeout(grace);
  samples.push({ at: 'end', rss: await rssMiB(pid), fds: await fdCount(pid) });
  const status = JSON.parse((await execFileAsync(process.execPath, [BIN, 'status', mnt, '--json'])).stdout) as {
    cache: { evictions: number; hits: number; misses: number };
    reads: { count: number; failed: number };
    integrity: { hashFailures: number; bannedPeers: string[] };
  };
  const loadEnd = await load();

  await execFileAsync(process.execPath, [BIN, 'umount', mnt]).catch(() => execFileAsync('fusermount', ['-uz', mnt]));
  // A restart due after the end is not made; one under way is waited for, then stopped.
  restarts.forEach(clearTimeout);
  await Promise.allSettled(starting);
  for (const s of seeders) await s?.stop();
  await liar.close();

  const sum = (k: keyof ReaderState): number => states.reduce((a, s) => a + Number(s[k] ?? 0), 0);
  const neverEnded = states.filter((s) => !s.done).length;
  const row = (...cells: Array<string | number>): void => console.log(`| ${cells.join(' | ')} |`);
  console.log(`${READERS} readers (${READERS / 2} random 1 B–128 KiB, ${READERS / 2} sequential 1 MiB) over ${FILES} × ${FILE_MIB} MiB for ${SECONDS} s; cache 256 MiB; 2 libtorrent seeders, ${kills} kills (one a minute, back after ${DOWN_FOR_S} s); 1 lying peer; read timeout ${READ_TIMEOUT_S} s. Load average ${loadStart} at the start, ${loadEnd} at the end.\n`);
  row('measure', 'value');
  row('---', '---');
  row('reads done', sum('reads'));
  row('bytes read', `${(sum('bytes') / 2 ** 30).toFixed(2)} GiB`);
  row('reads failed (EIO)', sum('errors'));
  row('wrong bytes (reads with any)', sum('wrong'));
  row('short reads', sum('short'));
  row('reads never ended', neverEnded);
  row('slowest read', `${(Math.max(...states.map((s) => s.maxMs)) / 1000).toFixed(1)} s`);
  row('daemon RSS start / middle / end', samples.map((s) => `${s.rss} MiB`).join(' / '));
  row('daemon open fds start / middle / end', samples.map((s) => s.fds).join(' / '));
  row('mount: reads / failed', `${status.reads.count} / ${status.reads.failed}`);
  row('mount: hash failures / banned peers', `${status.integrity.hashFailures} / ${status.integrity.bannedPeers.join(' ') || 'none'}`);
  row('mount: cache evictions / hits / misses', `${status.cache.evictions} / ${status.cache.hits} / ${status.cache.misses}`);
}

await main();
