import test from 'ava';
import bencode from 'bencode';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadMetainfo } from '../src/metainfo/index.js';
import { run } from './helpers/run.js';
import { BTMOUNT_BIN } from './helpers/peers.js';

let base: string;
let dir: string;

test.before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'btmount-create-'));
  dir = path.join(base, 'dataset');
  await mkdir(path.join(dir, 'train'), { recursive: true });
  await writeFile(path.join(dir, 'train', 'a.bin'), randomBytes(300_000));
  await writeFile(path.join(dir, 'train', 'b.bin'), randomBytes(70_000));
  await writeFile(path.join(dir, 'labels.txt'), 'cat\ndog\n');
});

test.after.always(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

const create = (...args: string[]) => run(process.execPath, [BTMOUNT_BIN, 'create', ...args], { timeoutMs: 60_000 });

async function decode(file: string): Promise<Record<string, unknown> & { info: Record<string, unknown> }> {
  return bencode.decode(await readFile(file)) as Record<string, unknown> & { info: Record<string, unknown> };
}

test('create adds no trackers unless asked', async (t) => {
  const out = path.join(base, 'plain.torrent');
  const r = await create(dir, '-o', out);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^created .*plain\.torrent: [0-9a-f]{40} — 3 files, .*, no trackers$/m);
  const raw = await decode(out);
  t.false('announce' in raw, 'no announce');
  t.false('announce-list' in raw, 'no announce-list');
  t.false('url-list' in raw);
  t.false('private' in raw.info);
  const m = await loadMetainfo(out);
  t.is(m.name, 'dataset');
  t.deepEqual(m.files.map((f) => f.path).sort(), ['labels.txt', 'train/a.bin', 'train/b.bin']);
  t.is(m.layout.totalLength, 300_000 + 70_000 + 8);
  t.notRegex(r.stderr, /\r/, 'no progress line when stderr is not a terminal');
});

test('create takes trackers, web seeds, private, name and piece size', async (t) => {
  const out = path.join(base, 'full.torrent');
  const r = await create(
    dir,
    '-o',
    out,
    '--tracker',
    'http://tracker.example:8000/announce',
    '--tracker',
    'udp://other.example:6969',
    '--web-seed',
    'https://data.example/ds/',
    '--private',
    '--name',
    'imagenet-mini',
    '--piece-size',
    '64KiB',
  );
  t.is(r.code, 0, r.stderr);
  const raw = await decode(out);
  t.is(Buffer.from(raw['announce'] as Uint8Array).toString(), 'http://tracker.example:8000/announce');
  t.deepEqual(
    (raw['announce-list'] as Uint8Array[][]).map((tier) => tier.map((u) => Buffer.from(u).toString())),
    [['http://tracker.example:8000/announce'], ['udp://other.example:6969']],
  );
  t.is(raw.info['private'], 1);
  t.is(raw.info['piece length'], 65536);
  const m = await loadMetainfo(out);
  t.is(m.name, 'imagenet-mini');
  t.true(m.private);
  t.deepEqual(m.urlList, ['https://data.example/ds/']);
});

test('a single-file torrent has the same infohash as mktorrent makes', async (t) => {
  const file = path.join(base, 'single.bin');
  await writeFile(file, randomBytes(1_000_003));
  const ours = path.join(base, 'ours.torrent');
  const theirs = path.join(base, 'theirs.torrent');
  t.is((await create(file, '-o', ours, '--piece-size', '256K')).code, 0);
  const mk = await run('mktorrent', ['-l', '18', '-o', theirs, file]);
  t.is(mk.code, 0, mk.stderr);
  t.is((await loadMetainfo(ours)).infoHash, (await loadMetainfo(theirs)).infoHash);
});

test('create errors are one readable line', async (t) => {
  const missing = await create(path.join(base, 'nope'), '-o', path.join(base, 'x.torrent'));
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^btmount: cannot create torrent: .*nope: no such file or directory$/m);
  const badSize = await create(dir, '-o', path.join(base, 'x.torrent'), '--piece-size', '1000');
  t.is(badSize.code, 1);
  t.regex(badSize.stderr, /--piece-size must be a power of two of at least 16 KiB/);
  const inside = await create(dir, '-o', path.join(dir, 'x.torrent'));
  t.is(inside.code, 1);
  t.regex(inside.stderr, /is inside the dataset folder/);
  const badUrl = await create(dir, '-o', path.join(base, 'x.torrent'), '--tracker', 'nonsense');
  t.is(badUrl.code, 1);
  t.regex(badUrl.stderr, /not a tracker URL: nonsense/);
  const empty = path.join(base, 'empty');
  await mkdir(empty);
  const e = await create(empty, '-o', path.join(base, 'e.torrent'));
  t.is(e.code, 1);
  t.regex(e.stderr, /^btmount: cannot create torrent: .*empty holds no files/m);
});
