/**
 * The native (libfuse3) FUSE backend beside fuse-native and local disk, on the same cached data
 * in the same run, A/B alternated per round:
 *
 * - cached small files (10–50 KB), 1 and 8 parallel readers (find | xargs -P N cat), kernel page
 *   cache dropped, then hot;
 * - a cached big file read sequentially, page cache dropped; and with O_DIRECT from a page-cached
 *   slot file (the transport ceiling) beside a page-cached local read;
 * - 16 readers doing random 4 KiB preads (O_DIRECT on both sides, so each one is a real read):
 *   reads/s, p50, p99;
 * - a PyTorch DataLoader epoch over the small files (page cache dropped) and epoch 2, with the
 *   daemon's CPU seconds per epoch;
 * - mount time and daemon RSS of a synthetic 1,000,000-file torrent.
 *
 * Run: node dist/scripts/bench-native.js [--big-mib 1024] [--small 4000] [--rounds 2]
 * (npm run bench -- native). Needs root (drop_caches) and python3-torch. Prints markdown.
 */
import bencode from 'bencode';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadMetainfo } from '../src/metainfo/index.js';
import { freePort } from '../test/helpers/peers.js';
import { BIN, EPOCH, dropCaches, execFileAsync, makeMountDataset, median, python, rssMiB, umount } from './bench-kit.js';
import { benchOptions } from './bench-options.js';

const options = benchOptions('The native FUSE backend vs fuse-native and local disk.', {
  'big-mib': '1024',
  small: '4000',
  rounds: '2',
  files: '1000000',
  dir: '/tmp/btmount-bench-native',
});
const bigMiB = Number(options['big-mib']);
const smallCount = Number(options.small);
const rounds = Number(options.rounds);
const millionFiles = Number(options.files);
const dir = options.dir;

type Backend = 'native' | 'fuse-native';
const BACKENDS: Backend[] = ['native', 'fuse-native'];
type Sample = Record<string, number>;

const loadavg = async (): Promise<string> => (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
const log = (line: string): boolean => process.stderr.write(line + '\n');


async function sh(script: string): Promise<string> {
  const { stdout } = await execFileAsync('bash', ['-c', script], { maxBuffer: 64 << 20 });
  return stdout.trim();
}

async function seconds(script: string): Promise<number> {
  const started = performance.now();
  await sh(script);
  return (performance.now() - started) / 1000;
}


async function mount(backend: Backend, torrent: string, mnt: string, cache: string, extra: string[]): Promise<{ pid: number; seconds: number }> {
  await mkdir(mnt, { recursive: true });
  const started = performance.now();
  const { stdout } = await execFileAsync(process.execPath, [BIN, 'mount', torrent, mnt, '--cache', cache, '--port', '0', '--no-dht', ...extra], {
    env: { ...process.env, BTMOUNT_FUSE_BACKEND: backend },
  });
  return { pid: Number(/daemon pid (\d+)/.exec(stdout)![1]), seconds: (performance.now() - started) / 1000 };
}


/** CPU seconds (user + system) a process has used. */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}


const RANDOM_4K = `
import os, random, sys, time
path, count, readers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = os.path.getsize(path)
pids = []
pipes = []
started = time.monotonic()
for k in range(readers):
    # A pipe per reader: writes of more than PIPE_BUF bytes from several processes to one pipe interleave.
    r, w = os.pipe()
    pipes.append(r)
    pid = os.fork()
    if pid == 0:
        rng = random.Random(k)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        import mmap
        buf = mmap.mmap(-1, 4096)
        lat = []
        for _ in range(count):
            off = rng.randrange(0, size - 4096) // 4096 * 4096
            t = time.monotonic()
            os.preadv(fd, [buf], off)
            lat.append(time.monotonic() - t)
        os.write(w, (' '.join('%.7f' % x for x in lat) + '\\n').encode())
        os._exit(0)
    pids.append(pid)
    os.close(w)
data = b''
for r in pipes:
    while True:
        chunk = os.read(r, 1 << 20)
        if not chunk: break
        data += chunk
for pid in pids: os.waitpid(pid, 0)
wall = time.monotonic() - started
lat = sorted(float(x) for line in data.decode().split('\\n') if line for x in line.split())
print(len(lat) / wall, lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6)
`;

async function epochs(root: string): Promise<number[]> {
  const { stdout } = await execFileAsync('/usr/bin/python3', [EPOCH, root, '--workers', '4', '--epochs', '2', '--json'], { maxBuffer: 64 << 20 });
  return stdout.trim().split('\n').map((l) => (JSON.parse(l) as { seconds: number }).seconds);
}

/** The measurements of one tree (a mount or the local reference); `pid` is the daemon's, if any. */
async function measure(root: string, pid: number | undefined, slotFile: string | undefined): Promise<Sample> {
  const s: Sample = {};
  const small = path.join(root, 'small');
  const files = smallCount;
  const cat = (n: number): string => `cd '${small}' && find . -type f -print0 | xargs -0 -P ${n} -n 32 cat > /dev/null`;
  for (const n of [1, 8]) {
    await dropCaches();
    s[`small${n}Cold`] = files / (await seconds(cat(n)));
    s[`small${n}Hot`] = files / (await seconds(cat(n)));
  }
  const big = path.join(root, 'big.bin');
  await dropCaches();
  s.bigCold = bigMiB / (await seconds(`dd if='${big}' of=/dev/null bs=1M 2>/dev/null`));
  // The transport ceiling: the bytes in the page cache under the mount, none in the mount's own.
  await dropCaches();
  await sh(`cat '${slotFile ?? big}' > /dev/null`);
  s.bigHot = bigMiB / (await seconds(`dd if='${big}' of=/dev/null bs=1M ${slotFile ? 'iflag=direct' : ''} 2>/dev/null`));
  await dropCaches();
  const [rate, p50, p99] = (await python(RANDOM_4K, [big, '2000', '16'])).split(' ').map(Number);
  s.random4kRate = rate!;
  s.random4kP50 = p50!;
  s.random4kP99 = p99!;
  await dropCaches();
  const cpu0 = pid ? await cpuSeconds(pid) : 0;
  const [e1, e2] = await epochs(small);
  s.epoch1 = e1!;
  s.epoch2 = e2!;
  if (pid) s.epochCpu = ((await cpuSeconds(pid)) - cpu0) / 2;
  return s;
}

function synthesizeMillion(n: number): Buffer {
  const files = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const length = 100_000 + ((i * 7919) % 50_000);
    total += length;
    const cls = `n${String(i % 1000).padStart(8, '0')}`;
    files.push({ length, path: [Buffer.from('train'), Buffer.from(cls), Buffer.from(`${cls}_${i}.JPEG`)] });
  }
  const pieceLength = 4 * 1024 * 1024;
  const pieces = Buffer.alloc(Math.ceil(total / pieceLength) * 20, 7);
  return Buffer.from(bencode.encode({ info: { name: Buffer.from('imagenet'), 'piece length': pieceLength, pieces, files } }));
}

const range = (xs: number[], digits: number): string => {
  const lo = Math.min(...xs).toFixed(digits);
  const hi = Math.max(...xs).toFixed(digits);
  return lo === hi ? lo : `${lo}–${hi}`;
};

async function main(): Promise<void> {
  await mkdir(dir, { recursive: true });
  log(`preparing ${bigMiB} MiB + ${smallCount} small files in ${dir} …`);
  const { root, reference, torrent } = await makeMountDataset(dir, bigMiB, smallCount);
  const { infoHash } = await loadMetainfo(torrent);
  const loadStart = await loadavg();

  // One seed; each backend mounts with its own cache, warmed in full before any measurement.
  const seedPort = await freePort();
  const seeder = execFile(process.execPath, [BIN, 'seed', torrent, root, '--host', '127.0.0.1', '--port', String(seedPort), '--no-dht']);
  const samples = new Map<string, Sample[]>([['local', []], ...BACKENDS.map((b) => [b, []] as [string, Sample[]])]);
  try {
    await new Promise((r) => setTimeout(r, 3000));
    for (let round = 0; round < rounds; round++) {
      // A/B alternated: the order flips every round; local disk in between.
      const order = round % 2 === 0 ? BACKENDS : [...BACKENDS].reverse();
      for (const backend of order) {
        const mnt = path.join(dir, `mnt-${backend}`);
        const cache = path.join(dir, `cache-${backend}`);
        const { pid } = await mount(backend, torrent, mnt, cache, ['--peer', `127.0.0.1:${seedPort}`]);
        try {
          await execFileAsync(process.execPath, [BIN, 'warm', mnt], { maxBuffer: 16 << 20 });
          log(`round ${round + 1}: ${backend} (load ${await loadavg()})`);
          samples.get(backend)!.push(await measure(mnt, pid, path.join(cache, infoHash, 'data')));
        } finally {
          await umount(mnt);
        }
        log(`round ${round + 1}: local disk`);
        samples.get('local')!.push(await measure(reference, undefined, undefined));
      }
    }
  } finally {
    seeder.kill('SIGTERM');
  }

  // The million-file torrent: mount time (CLI start to mounted) and the daemon's RSS.
  const million = path.join(dir, `million-${millionFiles}.torrent`);
  if (!existsSync(million)) await writeFile(million, synthesizeMillion(millionFiles));
  const mountRows: string[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const backend of round % 2 === 0 ? BACKENDS : [...BACKENDS].reverse()) {
      const mnt = path.join(dir, `mnt-million-${backend}`);
      const cache = path.join(dir, `cache-million-${backend}`);
      await rm(cache, { recursive: true, force: true });
      const { pid, seconds: took } = await mount(backend, million, mnt, cache, ['--cache-size', '1G']);
      const listed = Number(await sh(`ls '${mnt}/train' | wc -l`));
      const rss = await rssMiB(pid);
      await umount(mnt);
      mountRows.push(`| ${backend} | ${millionFiles.toLocaleString('en')} | ${took.toFixed(2)} s | ${rss.toFixed(0)} MiB | ${listed} |`);
    }
  }
  const loadEnd = await loadavg();

  const L = samples.get('local')!;
  const col = (key: string, digits: number): string[] =>
    [...BACKENDS.map((b) => samples.get(b)!), L].map((xs) => range(xs.map((x) => x[key]!), digits));
  const ratio = (key: string, higherIsBetter: boolean): string =>
    BACKENDS.map((b) => {
      const m = median(samples.get(b)!.map((x) => x[key]!));
      const l = median(L.map((x) => x[key]!));
      return `${(higherIsBetter ? m / l : l / m).toFixed(2)}×`;
    }).join(' / ');
  const lines: Array<[string, string, number, boolean]> = [
    ['cached small files, 1 reader, page cache dropped (files/s)', 'small1Cold', 0, true],
    ['cached small files, 8 readers, page cache dropped (files/s)', 'small8Cold', 0, true],
    ['cached small files, 1 reader, page cache hot (files/s)', 'small1Hot', 0, true],
    ['cached small files, 8 readers, page cache hot (files/s)', 'small8Hot', 0, true],
    [`cached ${bigMiB} MiB file, page cache dropped (MiB/s)`, 'bigCold', 0, true],
    [`${bigMiB} MiB file, O_DIRECT from a page-cached slot file vs page-cached local (MiB/s)`, 'bigHot', 0, true],
    ['16 readers, random 4 KiB O_DIRECT preads (reads/s)', 'random4kRate', 0, true],
    ['… p50 latency (µs)', 'random4kP50', 0, false],
    ['… p99 latency (µs)', 'random4kP99', 0, false],
    ['DataLoader epoch 1, page cache dropped (s)', 'epoch1', 2, false],
    ['DataLoader epoch 2 (s)', 'epoch2', 2, false],
  ];
  console.log(`load average ${loadStart} at the start, ${loadEnd} at the end; ${rounds} rounds, A/B alternated; ranges over rounds, ratios of medians (≥ 1× means as fast as local disk or faster)\n`);
  console.log('| measurement | native | fuse-native | local disk | native / fuse-native vs local |');
  console.log('|---|---|---|---|---|');
  for (const [label, key, digits, higher] of lines) {
    const [n, f, l] = col(key, digits);
    console.log(`| ${label} | ${n} | ${f} | ${l} | ${ratio(key, higher)} |`);
  }
  const cpu = BACKENDS.map((b) => range(samples.get(b)!.map((x) => x.epochCpu!), 2));
  console.log(`| daemon CPU seconds per DataLoader epoch | ${cpu[0]} | ${cpu[1]} | – | |`);
  console.log('\n| backend | files | mount (CLI start to mounted) | daemon RSS | entries in train/ |');
  console.log('|---|---|---|---|---|');
  for (const r of mountRows) console.log(r);
}

await main();
