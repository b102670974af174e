import test from 'ava';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { cachedPercent, mountFixture } from './control-helpers.js';
import { python } from './helpers/mount.js';

/**
 * The README's recipe with real PyTorch: a DistributedSampler writes the next
 * epoch's order for this rank, `btmount warm --from-list` fetches it, and that
 * epoch then runs with every seeder gone.
 */
const SCRIPT = `
import os, sys
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

mnt, list_file, phase = sys.argv[1], sys.argv[2], sys.argv[3]

class Files(Dataset):
    def __init__(self, root):
        self.paths = sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names)
    def __len__(self):
        return len(self.paths)
    def __getitem__(self, i):
        with open(self.paths[i], 'rb') as f:
            return len(f.read())

dataset, epoch = Files(mnt), 0
sampler = DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=True, seed=7)
if phase == 'list':
    # The README example, as written there.
    sampler.set_epoch(epoch + 1)                        # the order the next epoch will use
    with open(list_file, 'w') as f:
        f.writelines(dataset.paths[i] + '\\n' for i in sampler)
else:
    sampler.set_epoch(epoch + 1)
    loader = DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=2)
    print('epoch', len(sampler), 'samples', sum(int(n) for n in loader), 'bytes')
`;

test('a DistributedSampler writes the next epoch order; warm --from-list fetches it; the epoch runs with no seeder', async (t) => {
  const torch = await python('import torch', []);
  if (torch.code !== 0) return t.fail('python3-torch is not installed (.ci/run installs it)');
  // Piece-aligned sizes: the other rank's files share no piece with this rank's.
  const files: Array<{ path: string; length: number }> = [];
  for (let cls = 0; cls < 3; cls++) {
    for (let i = 0; i < 8; i++) files.push({ path: `train/c${cls}/${i}.jpg`, length: 64 * 1024 * (1 + ((i + cls) % 3)) });
  }
  const f = await mountFixture(t, { files, readTimeout: 5 });
  const listFile = path.join(f.dir, 'epoch1.rank0.txt');
  const written = await python(SCRIPT, [f.mountpoint, listFile, 'list']);
  t.is(written.code, 0, written.stderr);
  const listed = (await readFile(listFile, 'utf8')).trim().split('\n');
  t.is(listed.length, 12);

  const warm = await f.bt(['warm', f.mountpoint, '--from-list', listFile]);
  t.is(warm.code, 0, warm.stderr);
  t.regex(warm.stdout, /^warmed 12 files/);
  await f.seeder!.stop();

  const epoch = await python(SCRIPT, [f.mountpoint, listFile, 'epoch'], 180_000);
  t.is(epoch.code, 0, epoch.stderr);
  const rel = listed.map((p) => path.relative(f.mountpoint, p));
  const bytes = rel.reduce((sum, p) => sum + files.find((x) => x.path === p)!.length, 0);
  t.is(epoch.stdout.trim(), `epoch 12 samples ${bytes} bytes`);
  // The other rank's half was not fetched.
  const others = files.map((x) => x.path).filter((p) => !rel.includes(p));
  t.deepEqual(await cachedPercent(f, others), others.map(() => 0));
});
