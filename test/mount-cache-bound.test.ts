import test from 'ava';
import path from 'node:path';
import { liveStatus, mountTorrent, seedWithBtmount, sha256Via } from './helpers/mount.js';
import { freePort, makeDataset } from './helpers/peers.js';
import { run, tempDir } from './helpers/run.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Bytes the file system really allocated under `dir` (du's block count, not apparent sizes). */
async function allocatedBytes(dir: string): Promise<number> {
  const res = await run('du', ['-s', '--block-size=1', dir]);
  return Number(res.stdout.split('\t')[0]);
}

test('a mount holds --cache-size while four times as much is read through FUSE, and every byte read is right', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const files = Array.from({ length: 8 }, (_, i) => ({ path: `shard/${i}.bin`, length: 512 * KiB }));
  const ds = await makeDataset(dir.path, 'dataset', files, 64 * KiB);
  const port = await freePort();
  const seeder = await seedWithBtmount(ds, port);
  t.teardown(() => seeder.stop());
  const cache = path.join(dir.path, 'cache');
  const budget = 1 * MiB;
  const m = await mountTorrent(dir.path, ds.torrentPath, { peers: [`127.0.0.1:${port}`], readTimeout: 30, cache, extra: ['--cache-size', '1M', '--download-limit', '1M'] });
  // (--download-limit: the reads last a few seconds, so the cache is sampled many times while they run.)
  t.teardown(m.unmount);
  const store = path.join(cache, ds.metainfo.infoHash);

  // Sample the cache (the daemon's own count and the disk's) all through the reads.
  let sampling = true;
  let maxUsed = 0;
  let maxOnDisk = 0;
  let samples = 0;
  const sampler = (async () => {
    while (sampling) {
      const [s, onDisk] = await Promise.all([liveStatus(m.mountpoint), allocatedBytes(store)]);
      maxUsed = Math.max(maxUsed, s.cache.usedBytes);
      maxOnDisk = Math.max(maxOnDisk, onDisk);
      samples++;
    }
  })();
  for (const f of ds.files) t.is(await sha256Via(path.join(m.mountpoint, f.path)), f.sha256, f.path);
  sampling = false;
  await sampler;

  const s = await liveStatus(m.mountpoint);
  t.is(s.cache.budgetBytes, budget);
  t.true(s.transfer.downloadedBytes >= 4 * MiB, `downloaded ${s.transfer.downloadedBytes} bytes: all of it went through the cache`);
  t.true(s.cache.evictions >= (4 * MiB - budget) / (64 * KiB), `${s.cache.evictions} evictions`);
  t.true(samples >= 2, `${samples} samples`);
  t.true(Math.max(maxUsed, s.cache.usedBytes) <= budget, `the daemon counted up to ${maxUsed} bytes`);
  // On disk: the pieces plus the store's small bookkeeping (slot table, lock, meta), never a second budget.
  const slack = 64 * KiB;
  t.true(Math.max(maxOnDisk, await allocatedBytes(store)) <= budget + slack, `up to ${maxOnDisk} bytes allocated in ${store}`);
});
