/**
 * Cold-read bench: a fresh mount (empty cache) read through FUSE, beside
 * aria2c's full download of the same torrent from the same 2 python3-libtorrent
 * seeders on loopback, in the same run, A/B alternated (even rounds aria2c
 * first, odd rounds btmount first), the load average beside each figure:
 *
 * - a folder of 2,000 files of 128 KiB read in order (goal ≥ 1.2× aria2c);
 * - large files read in order (goal ≥ 1.5× aria2c);
 * - a shuffled DataLoader epoch (4 workers) over 4,000 files of 10–50 KB vs
 *   aria2c's download plus the same epoch on the downloaded copy, the
 *   "download first, then train" a user would otherwise do (goal ≤ 1.0×).
 *
 *   npx tsc -p . && node dist/scripts/bench-cold.js [--rounds 4] [--dir /tmp/btmount-bench-cold]
 *
 * Needs root (drop_caches), aria2c, python3-libtorrent, python3-torch. Prints markdown.
 */
import { randomFillSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createTorrentFile } from '../src/cli/create.js';
import { loadMetainfo } from '../src/metainfo/index.js';
import {
  READ_TREE_IN_ORDER, Table, aria2Download, dropCaches, epochs, loadAverage, mount, python, startSeedSwarm, umount, type SeedSwarm,
} from './bench-kit.js';
import { benchOptions } from './bench-options.js';

const options = benchOptions('Cold reads through a fresh mount vs aria2c\'s full download.', { rounds: '4', dir: '/tmp/btmount-bench-cold' });
const rounds = Number(options.rounds);
const dir = options.dir;
const MiB = 2 ** 20;

interface DatasetSpec {
  name: string;
  files: Array<{ path: string; size: number }>;
}

const FOLDER: DatasetSpec = {
  name: 'folder',
  files: Array.from({ length: 2000 }, (_, i) => ({ path: `images/${String(i).padStart(5, '0')}.jpg`, size: 128 * 1024 })),
};
const LARGE: DatasetSpec = {
  name: 'large',
  files: Array.from({ length: 8 }, (_, i) => ({ path: `shard-${i}.tar`, size: 48 * MiB })),
};
const SMALL: DatasetSpec = {
  name: 'small',
  // 10–50 KB like small JPEGs, in 10 class folders (the DataLoader's labels).
  files: Array.from({ length: 4000 }, (_, i) => ({ path: `class${i % 10}/${String(i).padStart(5, '0')}.jpg`, size: 10_000 + ((i * 7919) % 40_000) })),
};

/** Writes the dataset's random files and its torrent (1 MiB pieces) once; later runs reuse them. */
async function prepare(spec: DatasetSpec): Promise<{ root: string; torrent: string; bytes: number }> {
  const root = path.join(dir, spec.name);
  const torrent = path.join(dir, `${spec.name}.torrent`);
  const bytes = spec.files.reduce((sum, f) => sum + f.size, 0);
  if (existsSync(`${torrent}.ok`)) return { root, torrent, bytes };
  await rm(root, { recursive: true, force: true });
  for (const f of spec.files) {
    const full = path.join(root, f.path);
    await mkdir(path.dirname(full), { recursive: true });
    await writeFile(full, randomFillSync(Buffer.allocUnsafe(f.size)));
  }
  await createTorrentFile(root, { output: torrent, pieceSize: MiB, tracker: [], webSeed: [] });
  await writeFile(`${torrent}.ok`, 'ok');
  return { root, torrent, bytes };
}

/** One fresh mount on an empty cache for `measure`, unmounted after. */
async function withColdMount<T>(torrent: string, swarm: SeedSwarm, totalBytes: number, measure: (mnt: string) => Promise<T>): Promise<T> {
  const mnt = path.join(dir, 'mnt');
  const cache = path.join(dir, 'cache');
  await rm(cache, { recursive: true, force: true });
  await mount(torrent, mnt, cache, swarm.peers, ['--cache-size', `${Math.ceil((totalBytes / MiB) * 1.2) + 64}M`]);
  try {
    return await measure(mnt);
  } finally {
    await umount(mnt);
    await rm(cache, { recursive: true, force: true });
  }
}

/** Seconds to read every file under `root` once, in order; throws unless all `bytes` were read. */
async function walkSeconds(root: string, bytes: number): Promise<number> {
  const [files, read, seconds] = (await python(READ_TREE_IN_ORDER, [root])).split(' ').map(Number);
  if (read !== bytes) throw new Error(`${root}: read ${read} bytes of ${bytes} (${files} files)`);
  return seconds!;
}

/** Seconds to read every file of the dataset in order through a cold mount. */
async function coldWalkSeconds(torrent: string, swarm: SeedSwarm, bytes: number): Promise<number> {
  return withColdMount(torrent, swarm, bytes, (mnt) => walkSeconds(mnt, bytes));
}

const table = new Table();

/**
 * Runs `a` (btmount) and `b` (reference) `rounds` times, alternating which goes
 * first, and adds a row per round plus the mean; `ratio` says how btmount
 * compares (goal direction given in `goal`).
 */
async function abRounds(
  label: string,
  unit: string,
  btmount: () => Promise<number>,
  reference: () => Promise<number>,
  ratio: (btmount: number, reference: number) => number,
  goal: string,
): Promise<void> {
  const pairs: Array<[number, number]> = [];
  for (let r = 0; r < rounds; r++) {
    const load = await loadAverage();
    await dropCaches();
    let mine: number;
    let ref: number;
    if (r % 2 === 0) {
      ref = await reference();
      await dropCaches();
      mine = await btmount();
    } else {
      mine = await btmount();
      await dropCaches();
      ref = await reference();
    }
    pairs.push([mine, ref]);
    table.row(`${label} (${unit}), round ${r + 1} (${r % 2 === 0 ? 'aria2c first' : 'btmount first'})`, load, mine.toFixed(1), ref.toFixed(1), ratio(mine, ref).toFixed(2), '');
  }
  const mean = (i: 0 | 1): number => pairs.reduce((s, p) => s + p[i], 0) / pairs.length;
  table.row(`**${label}** (${unit}), mean of ${rounds}`, '', mean(0).toFixed(1), mean(1).toFixed(1), `**${ratio(mean(0), mean(1)).toFixed(2)}**`, goal);
}

async function main(): Promise<void> {
  await mkdir(dir, { recursive: true });
  process.stderr.write(`preparing datasets in ${dir} …\n`);
  const specs = [FOLDER, LARGE, SMALL];
  const data = [];
  for (const spec of specs) data.push(await prepare(spec));
  table.row('measure', 'load (1 min)', 'btmount', 'reference', 'ratio', 'goal');
  table.row('---', '---', '---', '---', '---', '---');
  const ariaOut = path.join(dir, 'aria-out');
  const mbps = (bytes: number, seconds: number): number => bytes / 1e6 / seconds;

  for (const [i, spec] of specs.entries()) {
    const { torrent, bytes } = data[i]!;
    const { layout } = await loadMetainfo(torrent);
    const swarm = await startSeedSwarm(torrent, dir);
    try {
      const aria = (): Promise<number> => aria2Download(torrent, swarm.trackerUrl, ariaOut);
      if (spec !== SMALL) {
        const what = spec === FOLDER ? `cold read in order of ${spec.files.length} files of 128 KiB` : `cold read in order of ${spec.files.length} files of ${spec.files[0]!.size / MiB} MiB`;
        await abRounds(
          `${what} vs aria2c full download`,
          'MB/s',
          async () => mbps(bytes, await coldWalkSeconds(torrent, swarm, bytes)),
          async () => mbps(layout.totalLength, await aria()),
          (mine, ref) => mine / ref,
          spec === FOLDER ? '≥ 1.20' : '≥ 1.50',
        );
        if (spec === FOLDER) {
          // What the walk costs without the network: from btmount's cache vs aria2c's copy on local disk (page caches dropped).
          await aria();
          const load = await loadAverage();
          const fromCache = await withColdMount(torrent, swarm, bytes, async (mnt) => {
            await walkSeconds(mnt, bytes);
            await dropCaches();
            return walkSeconds(mnt, bytes);
          });
          await dropCaches();
          const local = await walkSeconds(path.join(ariaOut, spec.name), bytes);
          table.row(`the same walk from btmount's cache vs the downloaded copy on local disk (s, page cache dropped)`, load, fromCache.toFixed(2), local.toFixed(2), (fromCache / local).toFixed(2), '');
        }
      } else {
        // The user's alternative: download everything, then train (the first epoch on the fresh copy).
        await abRounds(
          `cold shuffled DataLoader epoch (4 workers) over ${spec.files.length} files of 10–50 KB vs aria2c download + local epoch`,
          's',
          async () => withColdMount(torrent, swarm, bytes, async (mnt) => (await epochs(mnt, 1))[0]!),
          async () => (await aria()) + (await epochs(path.join(ariaOut, spec.name), 1))[0]!,
          (mine, ref) => mine / ref,
          '≤ 1.00',
        );
      }
      await rm(ariaOut, { recursive: true, force: true });
    } finally {
      await swarm.stop();
    }
  }
  process.stdout.write(
    `\nCold reads: 2 python3-libtorrent seeders on loopback, 1 MiB pieces, ${rounds} A/B rounds, ${new Date().toISOString()}; ` +
      `ratio = btmount / reference (a rate: higher is better; the epoch's seconds: lower is better)\n\n${table.toString()}\n`,
  );
}

await main();
