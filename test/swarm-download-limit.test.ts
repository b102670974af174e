import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import { fetchAll, makeDataset, startHonestSeeder } from './helpers/peers.js';

const LIMIT = 1024 * 1024;
/** The token bucket's burst (TokenBucket's default: a quarter second of the rate, 64 KiB at least). */
const BURST = Math.max(LIMIT / 4, 64 * 1024);
/**
 * Blocks are counted as they are parsed, after the read that brought them: the rest of one read
 * (256 KiB at most for a dialled connection) may go past the bucket before reading pauses.
 */
const ONE_READ = 256 * 1024;

test('--download-limit: over every window of the transfer, the bytes stay within limit × window + the burst', async (t) => {
  const base = await mkdtemp(path.join(tmpdir(), 'btmount-dlimit-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const ds = await makeDataset(base, 'ds', [{ path: 'x.bin', length: 4 * 1024 * 1024 }], 64 * 1024);
  const { layout, infoHash } = ds.metainfo;
  const seeder = await startHonestSeeder(ds, '127.0.6.1');
  t.teardown(() => seeder.swarm.close());
  const leecher = new Swarm({ infoHash, layout, storage: new MemoryPieceStorage(layout), port: 0, host: '127.0.0.1', downloadLimit: LIMIT });
  t.teardown(() => leecher.close());
  const samples: Array<{ at: number; bytes: number }> = [];
  const sampler = setInterval(() => samples.push({ at: performance.now(), bytes: leecher.stats().downloaded }), 20);
  t.teardown(() => clearInterval(sampler));
  leecher.addPeer('127.0.6.1', seeder.port);
  await fetchAll(leecher, layout.pieceCount);
  clearInterval(sampler);
  let worst = -Infinity;
  for (let i = 0; i < samples.length; i++) {
    for (let j = i + 1; j < samples.length; j++) {
      // Bytes counted by sample j may have arrived up to one sampling period before sample i.
      const excess = samples[j]!.bytes - samples[i]!.bytes - (LIMIT * (samples[j]!.at - samples[i]!.at + 20)) / 1000;
      worst = Math.max(worst, excess);
    }
  }
  t.log(`worst window excess ${(worst / 1024).toFixed(0)} KiB over limit × window; ${samples.length} samples`);
  t.true(worst <= BURST + ONE_READ, `${(worst / 1024).toFixed(0)} KiB over limit × window (allowed: burst ${BURST / 1024} KiB + one read ${ONE_READ / 1024} KiB)`);
});
