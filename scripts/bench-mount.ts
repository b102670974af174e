/**
 * Mount bench: a dataset of one big file + many small files, served by 2 local
 * python3-libtorrent seeders (127.0.0.2, 127.0.0.3), read through a real btmount
 * mount, each figure beside its reference in the same run:
 *
 * - cold sequential read of the big file vs aria2c's full download of the torrent;
 * - warm re-read (from btmount's cache, kernel page cache dropped) vs local disk;
 * - cold random 4 KiB reads: p50 / p99 latency;
 * - small files per second, cold and warm, vs local disk;
 * - PyTorch DataLoader epochs 1 and 2 over the small files vs local disk;
 * - `btmount warm` of the whole torrent vs aria2c, and a DataLoader epoch right after it;
 * - daemon RSS while streaming 4 × the big file through a cache smaller than it.
 *
 *   npx tsc -p . && node dist/scripts/bench-mount.js [--big-mib 1024] [--small 4000] [--dir /tmp/btmount-bench-mount]
 *
 * Needs root (drop_caches), aria2c, python3-libtorrent, python3-torch. Prints markdown.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { loadMetainfo } from '../src/metainfo/index.js';
import {
  BIN, READ_TREE_IN_ORDER, Table, aria2Download, dropCaches, epochs, makeMountDataset, median, mount, python, rssMiB, startSeedSwarm, timeCommand, umount, type SeedSwarm,
} from './bench-kit.js';
import { benchOptions } from './bench-options.js';

const options = benchOptions('The mount, warm and PyTorch vs aria2c and local disk.', { 'big-mib': '1024', small: '4000', dir: '/tmp/btmount-bench-mount' });
const bigMiB = Number(options['big-mib']);
const smallCount = Number(options.small);
const dir = options.dir;
const table = new Table();
const row = table.row.bind(table);


const RANDOM_4K = `
import os, random, sys, time
path, count = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
rng = random.Random(7)
lat = []
fd = os.open(path, os.O_RDONLY)
for _ in range(count):
    off = rng.randrange(0, size - 4096) // 4096 * 4096
    t = time.monotonic()
    os.pread(fd, 4096, off)
    lat.append(time.monotonic() - t)
lat.sort()
print(lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000)
`;

async function main(): Promise<void> {
  await mkdir(dir, { recursive: true });
  process.stderr.write(`preparing ${bigMiB} MiB + ${smallCount} small files in ${dir} …\n`);
  const { reference, torrent } = await makeMountDataset(dir, bigMiB, smallCount);
  const metainfo = await loadMetainfo(torrent);
  const totalMiB = metainfo.layout.totalLength / 2 ** 20;
  const mnt = path.join(dir, 'mnt');
  let swarm: SeedSwarm | undefined;
  try {
    swarm = await startSeedSwarm(torrent, dir);
    const { peers } = swarm;
    row('measure', 'btmount', 'reference', 'ratio');
    row('---', '---', '---', '---');

    // aria2c: full download of the whole torrent from the same swarm.
    const ariaOut = path.join(dir, 'aria-out');
    const ariaSeconds = await aria2Download(torrent, swarm.trackerUrl, ariaOut);
    await rm(ariaOut, { recursive: true, force: true });
    const ariaRate = (metainfo.layout.totalLength / 1e6) / ariaSeconds;

    // Cold sequential read of the big file through a fresh mount.
    const cache = path.join(dir, 'cache');
    await rm(cache, { recursive: true, force: true });
    await mount(torrent, mnt, cache, peers, ['--cache-size', `${Math.ceil(totalMiB * 1.2)}M`]);
    const coldSeconds = await timeCommand('dd', [`if=${mnt}/big.bin`, 'of=/dev/null', 'bs=1M']);
    const coldRate = (bigMiB * 2 ** 20) / 1e6 / coldSeconds;
    row('cold sequential read of big.bin (MB/s) vs aria2c full download', coldRate.toFixed(0), ariaRate.toFixed(0), (coldRate / ariaRate).toFixed(2));

    // Small files cold (first read from the swarm), then warm.
    const smallCold = (await python(READ_TREE_IN_ORDER, [`${mnt}/small`])).split(' ').map(Number);
    await dropCaches();
    const smallWarm = (await python(READ_TREE_IN_ORDER, [`${mnt}/small`])).split(' ').map(Number);
    await dropCaches();
    const smallLocal = (await python(READ_TREE_IN_ORDER, [`${reference}/small`])).split(' ').map(Number);
    const fps = (r: number[]): number => r[0]! / r[2]!;
    row('small files/s, cold (from the swarm) vs local disk', fps(smallCold).toFixed(0), fps(smallLocal).toFixed(0), (fps(smallCold) / fps(smallLocal)).toFixed(2));
    row('small files/s, warm (btmount cache, page cache dropped) vs local disk', fps(smallWarm).toFixed(0), fps(smallLocal).toFixed(0), (fps(smallWarm) / fps(smallLocal)).toFixed(2));

    // Warm sequential re-read: from btmount's cache (kernel page cache dropped) vs local disk.
    await dropCaches();
    const warmSeconds = await timeCommand('dd', [`if=${mnt}/big.bin`, 'of=/dev/null', 'bs=1M']);
    const kernelSeconds = await timeCommand('dd', [`if=${mnt}/big.bin`, 'of=/dev/null', 'bs=1M']);
    await dropCaches();
    const localSeconds = await timeCommand('dd', [`if=${reference}/big.bin`, 'of=/dev/null', 'bs=1M']);
    const kernelLocal = await timeCommand('dd', [`if=${reference}/big.bin`, 'of=/dev/null', 'bs=1M']);
    const mbps = (s: number): number => (bigMiB * 2 ** 20) / 1e6 / s;
    row('warm sequential re-read of big.bin (MB/s, page cache dropped) vs local disk', mbps(warmSeconds).toFixed(0), mbps(localSeconds).toFixed(0), (localSeconds / warmSeconds).toFixed(2));
    row('hot re-read of big.bin (MB/s, kernel page cache) vs local disk, hot', mbps(kernelSeconds).toFixed(0), mbps(kernelLocal).toFixed(0), (kernelLocal / kernelSeconds).toFixed(2));

    // DataLoader over the small files: epoch 1 on the warm mount after dropping caches, epoch 2 from page cache.
    await dropCaches();
    const [mountE1, mountE2] = await epochs(`${mnt}/small`);
    await dropCaches();
    const [localE1, localE2] = await epochs(`${reference}/small`);
    row('DataLoader epoch 1 over small/ (s; btmount cache, page cache dropped) vs local disk', mountE1!.toFixed(2), localE1!.toFixed(2), (mountE1! / localE1!).toFixed(2));
    row('DataLoader epoch 2 (s) vs local disk', mountE2!.toFixed(2), localE2!.toFixed(2), (mountE2! / localE2!).toFixed(2));
    await umount(mnt);

    // Cold random 4 KiB reads on a fresh cache.
    await rm(cache, { recursive: true, force: true });
    await mount(torrent, mnt, cache, peers);
    const [p50, p99] = (await python(RANDOM_4K, [`${mnt}/big.bin`, '300'])).split(' ').map(Number);
    row('cold random 4 KiB pread of big.bin, p50 / p99 (ms)', `${p50!.toFixed(1)} / ${p99!.toFixed(1)}`, 'n/a', '');
    await umount(mnt);

    // warm of the whole torrent into a fresh cache, vs aria2c's full download of the same swarm.
    await rm(cache, { recursive: true, force: true });
    await mount(torrent, mnt, cache, peers, ['--cache-size', `${Math.ceil(totalMiB * 1.2)}M`]);
    const warmAllSeconds = await timeCommand(process.execPath, [BIN, 'warm', mnt]);
    const warmRate = metainfo.layout.totalLength / 1e6 / warmAllSeconds;
    row('btmount warm of the whole torrent (MB/s) vs aria2c full download', warmRate.toFixed(0), ariaRate.toFixed(0), (warmRate / ariaRate).toFixed(2));
    await dropCaches();
    const [afterWarm] = await epochs(`${mnt}/small`);
    row('DataLoader epoch over small/ right after warm (s, page cache dropped) vs local disk epoch 1', afterWarm!.toFixed(2), localE1!.toFixed(2), (afterWarm! / localE1!).toFixed(2));
    await umount(mnt);

    // RSS while streaming 4 × big.bin through a cache of a quarter of it (eviction all the way).
    await rm(cache, { recursive: true, force: true });
    const pid = await mount(torrent, mnt, cache, peers, ['--cache-size', `${Math.max(64, bigMiB / 4)}M`]);
    const samples: number[] = [];
    const sampler = setInterval(() => void rssMiB(pid).then((r) => samples.push(r)).catch(() => undefined), 250);
    for (let pass = 0; pass < 4; pass++) {
      await dropCaches();
      await timeCommand('dd', [`if=${mnt}/big.bin`, 'of=/dev/null', 'bs=1M']);
    }
    clearInterval(sampler);
    const quarter = Math.floor(samples.length / 4);
    const peak = Math.max(...samples);
    row(
      `daemon RSS streaming ${(4 * bigMiB) / 1024} GiB, cache ${Math.max(64, bigMiB / 4)} MiB (MiB: peak; median of each quarter)`,
      `${peak.toFixed(0)}; ${[0, 1, 2, 3].map((q) => median(samples.slice(q * quarter, (q + 1) * quarter)).toFixed(0)).join(', ')}`,
      'goal ≤ 200, flat',
      '',
    );
    await umount(mnt);
  } finally {
    await umount(mnt).catch(() => undefined);
    await swarm?.stop();
  }
  process.stdout.write(`\n${bigMiB} MiB big.bin + ${smallCount} small files (${totalMiB.toFixed(0)} MiB, 1 MiB pieces), 2 python3-libtorrent seeders on loopback, ${new Date().toISOString()}\n\n${table.toString()}\n`);
}

await main();
