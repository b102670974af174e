import test from 'ava';
import path from 'node:path';
import { tempDir, REPO_ROOT } from './helpers/run.js';
import { freePort, makeDataset } from './helpers/peers.js';
import { mountTorrent, python, seedWithBtmount } from './helpers/mount.js';
import { run } from './helpers/run.js';

const EPOCH = path.join(REPO_ROOT, 'scripts', 'dataloader_epoch.py');

test('a PyTorch DataLoader (4 workers, shuffled) reads every sample through the mount, equal to the local copy', async (t) => {
  const torch = await python('import torch', []);
  if (torch.code !== 0) return t.fail('python3-torch is not installed (.ci/run installs it)');

  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const files = [];
  for (let cls = 0; cls < 4; cls++) {
    for (let i = 0; i < 40; i++) files.push({ path: `train/class${cls}/${String(i).padStart(4, '0')}.jpg`, length: 2000 + ((i * 7919 + cls * 104729) % 60000) });
  }
  const ds = await makeDataset(dir.path, 'images', files, 64 * 1024);
  const port = await freePort();
  const seeder = await seedWithBtmount(ds, port);
  t.teardown(() => seeder.stop());
  const m = await mountTorrent(dir.path, ds.torrentPath, { peers: [`127.0.0.1:${port}`], readTimeout: 30 });
  t.teardown(m.unmount);

  const res = await run('/usr/bin/python3', [EPOCH, m.mountpoint, '--reference', ds.root, '--workers', '4', '--epochs', '2', '--json'], { timeoutMs: 240_000 });
  t.is(res.code, 0, res.stdout + res.stderr);
  const epochs = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { samples: number; mismatches: number; bytes: number });
  t.is(epochs.length, 2);
  for (const e of epochs) {
    t.is(e.samples, files.length);
    t.is(e.mismatches, 0);
    t.is(e.bytes, files.reduce((s, f) => s + f.length, 0));
  }
});
