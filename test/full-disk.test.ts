import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from '../src/process-alive.js';
import { mountWithCli, python } from './helpers/mount.js';
import { btmount, tempDir } from './helpers/run.js';
import { usedBytes } from './helpers/store-fixtures.js';
import { mountTmpfs, tmpfsTest } from './helpers/tmpfs.js';
import { startSeederFromBytes } from './helpers/peers.js';
import { buildTorrent } from './helpers/torrent-builder.js';

const MiB = 1024 * 1024;

/**
 * The cache on a file system far smaller than the working set and than the
 * cache budget: the store meets ENOSPC, evicts and retries. Needs root (a tmpfs
 * mount); declared skipped otherwise.
 */
tmpfsTest('full disk: a cache on an 8 MiB tmpfs, 40 MiB read twice through the mount: every byte right, evictions, no crash', async (t) => {
  const cache = await mountTmpfs(t, '8m');
  const dir = await tempDir('btmount-fulldisk-');
  t.teardown(dir.cleanup);
  const mountpoint = path.join(dir.path, 'mnt');
  await mkdir(mountpoint);

  const FILES = 10;
  const SIZE = 4 * MiB;
  const data = randomBytes(FILES * SIZE);
  const raw = buildTorrent({ name: 'big', pieceLength: 256 * 1024, data, files: Array.from({ length: FILES }, (_, i) => ({ path: [`part${i}.bin`], length: SIZE })) });
  const torrent = path.join(dir.path, 'big.torrent');
  await writeFile(torrent, raw);
  const { swarm: seeder, port } = await startSeederFromBytes(raw, data);
  t.teardown(() => seeder.close());

  // Budget 1 GiB: only the disk says no.
  const m = await mountWithCli(mountpoint, ['mount', torrent, mountpoint, '--cache', cache, '--cache-size', '1G', '--port', '0', '--no-dht', '--peer', `127.0.0.1:${port}`]);
  t.teardown(() => m.unmount());

  const want = Array.from({ length: FILES }, (_, i) => createHash('sha256').update(data.subarray(i * SIZE, (i + 1) * SIZE)).digest('hex'));
  const script = `
import hashlib, os, sys
root = sys.argv[1]
for rnd in range(2):
    for i in range(${FILES}):
        with open(os.path.join(root, 'part%d.bin' % i), 'rb') as f:
            print(rnd, i, hashlib.sha256(f.read()).hexdigest())
`;
  const res = await python(script, [mountpoint], 240_000);
  t.is(res.code, 0, res.stderr);
  const lines = res.stdout.trim().split('\n');
  t.is(lines.length, 2 * FILES);
  for (const line of lines) {
    const [round, i, digest] = line.split(' ');
    t.is(digest, want[Number(i)], `round ${round}, part${i}.bin`);
  }

  t.true(isAlive(m.pid), 'the daemon is alive');
  const status = await btmount(['status', mountpoint, '--json']);
  t.is(status.code, 0, status.stderr);
  const cacheStats = JSON.parse(status.stdout).cache as { usedBytes: number; evictions: number; effectiveBudgetBytes: number };
  t.log(`cache: ${cacheStats.usedBytes} bytes used, ${cacheStats.evictions} evictions, effective budget ${cacheStats.effectiveBudgetBytes}; tmpfs ${await usedBytes(cache)} bytes used of 8 MiB`);
  t.true(cacheStats.evictions > 0, 'pieces were evicted');
  t.true(cacheStats.effectiveBudgetBytes <= 8 * MiB, 'the budget came down to what the disk holds');
  t.true((await usedBytes(cache)) <= 8 * MiB);
});
