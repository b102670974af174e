import test from 'ava';
import { cp, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { cachedPercent, mountFixture, type Fixture } from './control-helpers.js';
import { BTMOUNT_BIN, REPO_ROOT, run, tempDir, type RunResult } from './helpers/run.js';

/**
 * The Python package (python/btmount) against a real mount, with Debian's
 * interpreter and PyTorch: it runs the real CLI (BTMOUNT_CLI), in the
 * fixture's runtime dir, so it reaches only this test's mount.
 */
const PYTHON_DIR = path.join(REPO_ROOT, 'python');

function py(f: Fixture, code: string, args: string[], opts: { pythonPath?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const env = { ...f.env, BTMOUNT_CLI: `${process.execPath} ${BTMOUNT_BIN}`, PYTHONPATH: opts.pythonPath ?? PYTHON_DIR };
  return run('/usr/bin/python3', ['-c', code, ...args], { env, timeoutMs: opts.timeoutMs ?? 180_000 });
}

const EPOCHS = `
import hashlib, json, os, sys
import btmount
from torch.utils.data import DataLoader, Dataset, DistributedSampler

mnt, list_file, phase = sys.argv[1], sys.argv[2], sys.argv[3]

class Files(Dataset):
    def __init__(self, root, read):
        self.paths = sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names)
        self.read = read
    def __len__(self):
        return len(self.paths)
    def __getitem__(self, i):
        if not self.read:
            return i, os.path.getsize(self.paths[i])
        with open(self.paths[i], 'rb') as f:
            return i, hashlib.sha256(f.read()).hexdigest()

if phase == 'epoch0':
    # Epoch 0 only stats its files (metadata, answered from memory), so whatever is
    # cached afterwards was fetched by the warm of epoch 1.
    dataset = Files(mnt, read=False)
    sampler = DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=True, seed=7)
    sampler.set_epoch(0)
    loader = DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=2)
    job = None
    for n, (i, size) in enumerate(loader):
        if n == 0:
            job = btmount.warm_epoch(mnt, sampler, 1, dataset.paths, list_file=list_file)
    assert sampler.epoch == 0, 'warm_epoch changed the training sampler'
    final = job.wait(timeout=120)
    listed = [line.rstrip('\\n') for line in open(list_file)]
    print(json.dumps({'job': final, 'check': btmount.check(mnt, listed)['total']}))
else:
    dataset = Files(mnt, read=True)
    sampler = DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=True, seed=7)
    sampler.set_epoch(1)
    loader = DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=2)
    print(json.dumps([[dataset.paths[int(i)], h] for i, h in loader]))
`;

test('btmount.warm_epoch warms the next epoch of a DistributedSampler from a DataLoader loop; that epoch runs with every seeder gone, every sample byte-exact', async (t) => {
  // Piece-aligned sizes: the other rank's files share no piece with this rank's.
  const files: Array<{ path: string; length: number }> = [];
  for (let cls = 0; cls < 3; cls++) {
    for (let i = 0; i < 8; i++) files.push({ path: `train/c${cls}/${i}.jpg`, length: 64 * 1024 * (1 + ((i + cls) % 3)) });
  }
  const f = await mountFixture(t, { files, readTimeout: 5 });
  const listFile = path.join(f.dir, 'epoch1.rank0.txt');

  const epoch0 = await py(f, EPOCHS, [f.mountpoint, listFile, 'epoch0']);
  t.is(epoch0.code, 0, epoch0.stderr);
  const warmed = JSON.parse(epoch0.stdout) as { job: { state: string; background: boolean; files: { total: number } }; check: { percent: number } };
  t.is(warmed.job.state, 'complete');
  t.true(warmed.job.background);
  t.is(warmed.job.files.total, 12);
  t.is(warmed.check.percent, 100);
  const listed = (await readFile(listFile, 'utf8')).trim().split('\n');
  t.is(listed.length, 12);

  await f.seeder!.stop();
  const epoch1 = await py(f, EPOCHS, [f.mountpoint, listFile, 'epoch1']);
  t.is(epoch1.code, 0, epoch1.stderr);
  const samples = JSON.parse(epoch1.stdout) as Array<[string, string]>;
  t.deepEqual(
    samples.map(([p]) => p),
    listed,
    'epoch 1 read the order warm_epoch wrote',
  );
  for (const [p, sha] of samples) {
    const rel = path.relative(f.mountpoint, p);
    t.is(sha, f.ds.files.find((x) => x.path === rel)!.sha256, `sha256 of ${rel}`);
  }
  // The other rank's half was not fetched.
  const mine = new Set(listed.map((p) => path.relative(f.mountpoint, p)));
  const others = files.map((x) => x.path).filter((p) => !mine.has(p));
  t.true(others.length > 0);
  t.deepEqual(await cachedPercent(f, others), others.map(() => 0));
});

const API = `
import json, sys
import btmount
mnt = sys.argv[1]
out = {}
out['before'] = btmount.check(mnt, ['a', 'b/x.bin'])['paths']
job = btmount.warm(mnt, ['a'])
out['warm'] = {'state': job['state'], 'files': job['files']}
out['after'] = [p['percent'] for p in btmount.check(mnt, ['a', 'b/x.bin'])['paths']]
s = btmount.status(mnt)
out['status'] = {'schema': s['schema'], 'mountpoint': s['mountpoint'], 'files': s['torrent']['fileCount']}
out['evict'] = btmount.evict(mnt, ['a'])
out['evicted'] = btmount.check(mnt, ['a'])['total']['percent']
bg = btmount.warm(mnt, None, background=True)
out['background'] = bg.wait(timeout=60)['state']
out['cancel'] = list(btmount.cancel(mnt))
errors = []
for call in (lambda: btmount.status(mnt + '/a'), lambda: btmount.warm(mnt, ['nope']), lambda: btmount.warm(mnt, ['/etc/passwd'])):
    try:
        call()
        errors.append(None)
    except btmount.BtmountError as e:
        errors.append([str(e), e.exit_code])
out['errors'] = errors
print(json.dumps(out))
`;

test('warm, check, status, evict and cancel from Python, and errors as BtmountError with the CLI line', async (t) => {
  const files = [
    { path: 'a/0.bin', length: 100_000 },
    { path: 'a/1.bin', length: 70_000 },
    { path: 'b/x.bin', length: 200_000 },
  ];
  const f = await mountFixture(t, { files, pieceSize: 16 * 1024 });
  const r = await py(f, API, [f.mountpoint]);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.deepEqual(
    out.before.map((p: { percent: number }) => p.percent),
    [0, 0],
  );
  t.deepEqual(out.warm, { state: 'complete', files: { done: 2, total: 2 } });
  // a/1.bin shares its last piece with b/x.bin: b is partly cached, not fully.
  t.is(out.after[0], 100);
  t.true(out.after[1] < 100);
  t.deepEqual(out.status, { schema: 1, mountpoint: f.mountpoint, files: 3 });
  t.is(out.evict.files, 2);
  t.is(out.evicted, 0);
  t.is(out.background, 'complete');
  t.deepEqual(out.cancel, []);
  const [notMount, missing, outside] = out.errors as Array<[string, number]>;
  t.regex(notMount![0], /^btmount: .*is not a btmount mount point/);
  t.is(notMount![1], 1);
  t.regex(missing![0], /^btmount: cannot warm: .*nope/);
  t.regex(outside![0], /^btmount: cannot warm: \/etc\/passwd is outside the mount/);
});

test('pip installs the package from the repo, and it imports from there without PYTHONPATH=python', async (t) => {
  const tmp = await tempDir('btmount-pip-');
  t.teardown(tmp.cleanup);
  // Built from a copy: pip writes build/ and *.egg-info next to the sources.
  const src = path.join(tmp.path, 'src');
  await cp(PYTHON_DIR, src, { recursive: true });
  const target = path.join(tmp.path, 'site');
  await mkdir(target);
  const pip = await run('/usr/bin/python3', ['-m', 'pip', 'install', '--no-index', '--no-build-isolation', '--no-deps', '--quiet', '--target', target, src], {
    timeoutMs: 180_000,
  });
  t.is(pip.code, 0, pip.stderr);
  const env = { ...process.env, PYTHONPATH: target };
  const imported = await run('/usr/bin/python3', ['-c', 'import btmount, sys; print(btmount.__file__); print(sorted(btmount.__all__))'], { env });
  t.is(imported.code, 0, imported.stderr);
  t.true(imported.stdout.startsWith(path.join(target, 'btmount') + path.sep), imported.stdout);
  t.regex(imported.stdout, /'warm_epoch'/);
});

const ORDERS = `
import json
import torch
from torch.utils.data import DistributedSampler, RandomSampler
import btmount

data = list(range(10))
sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=3)
sampler.set_epoch(4)
future = btmount.epoch_order(sampler, 5)
twin = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=3)
twin.set_epoch(5)
random_order = lambda e: RandomSampler(data, generator=torch.Generator().manual_seed(100 + e))
try:
    btmount.epoch_order([1, 2, 3], 1)
    refused = None
except TypeError as e:
    refused = str(e)
print(json.dumps({
    'future': future,
    'expected': list(twin),
    'trainingEpoch': sampler.epoch,
    'random': [btmount.epoch_order(random_order, 2), btmount.epoch_order(random_order, 2), btmount.epoch_order(random_order, 3)],
    'refused': refused,
}))
`;

test('epoch_order: a DistributedSampler copy set to the epoch (the training sampler keeps its own), a function for samplers without set_epoch', async (t) => {
  const r = await run('/usr/bin/python3', ['-c', ORDERS], { env: { ...process.env, PYTHONPATH: PYTHON_DIR }, timeoutMs: 120_000 });
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.deepEqual(out.future, out.expected);
  t.is(out.future.length, 5);
  t.is(out.trainingEpoch, 4);
  t.deepEqual(out.random[0], out.random[1]);
  t.notDeepEqual(out.random[0], out.random[2]);
  t.regex(out.refused, /^btmount: epoch_order needs a sampler with set_epoch/);
});
