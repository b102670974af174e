import test from 'ava';
import path from 'node:path';
import { mountFixture, waitForStatus } from './control-helpers.js';
import { sha256Via, timedRead } from './helpers/mount.js';
import type { MountStatus } from '../src/control/status-schema.js';

const FILES = [
  { path: 'train/0.jpg', length: 100_000 },
  { path: 'train/1.jpg', length: 250_001 },
  { path: 'train/2.jpg', length: 64 * 1024 },
  { path: 'labels.csv', length: 777 },
];

test('status --json fields match a known state', async (t) => {
  const f = await mountFixture(t, { files: FILES });
  const { metainfo } = f.ds;
  const warm = await f.bt(['warm', f.mountpoint]);
  t.is(warm.code, 0, warm.stderr);

  const out = await f.bt(['status', f.mountpoint, '--json']);
  t.is(out.code, 0, out.stderr);
  const parsed: unknown = JSON.parse(out.stdout);
  t.deepEqual(schemaErrors(parsed, STATUS_SHAPE), [], 'status --json has every documented field, with its type');
  const s = parsed as MountStatus;
  t.is(s.schema, 1);
  t.is(s.mountpoint, f.mountpoint);
  t.is(s.pid, f.pid);
  t.deepEqual(s.torrent, {
    name: 'dataset',
    infoHash: metainfo.infoHash,
    pieceLength: 64 * 1024,
    pieceCount: metainfo.layout.pieceCount,
    totalBytes: metainfo.layout.totalLength,
    fileCount: 4,
  });
  t.deepEqual(s.pieces, { have: metainfo.layout.pieceCount, total: metainfo.layout.pieceCount });
  t.is(s.cache.usedBytes, metainfo.layout.totalLength);
  t.is(s.cache.budgetBytes, 10 * 1024 ** 3);
  t.is(s.cache.pinnedBytes, 0);
  t.true(s.transfer.downloadedBytes >= metainfo.layout.totalLength);
  t.is(s.peers.length, 1);
  t.like(s.peers[0], { source: 'static', client: 'btmount' });
  t.regex(s.peers[0]!.address, /^127\.0\.0\.1:\d+$/);
  t.deepEqual(s.reads, { count: 0, bytes: 0, failed: 0, waiting: 0, oldest: null });
  t.is(s.cache.hitRate, null);
  t.deepEqual(s.integrity, { hashFailures: 0, bannedPeers: [] });
  t.is(s.warm.length, 1);
  t.like(s.warm[0], { id: 1, state: 'complete', files: { done: 4, total: 4 }, bytes: { done: metainfo.layout.totalLength, total: metainfo.layout.totalLength } });
  // DHT and PEX may be on (their state is the discovery tests' business); the shape is fixed.
  t.like(s.discovery, { staticPeers: 1, trackers: [] });
  t.is(typeof s.discovery.dht.enabled, 'boolean');
  t.is(typeof s.discovery.dht.nodes, 'number');
  t.is(typeof s.discovery.pex.enabled, 'boolean');

  // Reads after warm are cache hits.
  for (const file of f.ds.files.slice(0, 2)) t.is(await sha256Via(path.join(f.mountpoint, file.path)), file.sha256);
  const after = await f.status();
  t.true(after.reads.count > 0);
  t.is(after.reads.bytes, FILES[0]!.length + FILES[1]!.length);
  t.is(after.cache.misses, 0);
  t.is(after.cache.hitRate, 1);
});

test('status prints a readable summary; --watch refreshes until Ctrl-C', async (t) => {
  const f = await mountFixture(t, { files: FILES });
  const out = await f.bt(['status', f.mountpoint]);
  t.is(out.code, 0, out.stderr);
  t.regex(out.stdout, new RegExp(`^${f.mountpoint}: dataset\\n  infohash   ${f.ds.metainfo.infoHash}\\n`));
  t.regex(out.stdout, /\n  peers      1 connected\n    127\.0\.0\.1:\d+ +static /);
  t.regex(out.stdout, /\n  pieces     0 of \d+ \(0%\)/);
  t.regex(out.stdout, /\n  warm       no jobs\n/);

  const watch = f.spawn(['status', f.mountpoint, '--watch', '--json', '--interval', '0.2']);
  await watch.waitFor(/\{"schema":1[^\n]*\n\{"schema":1[^\n]*\n/, 60_000);
  process.kill(watch.pid, 'SIGINT');
  t.is(await watch.exited, 0);
  for (const line of watch.output().trim().split('\n')) t.is((JSON.parse(line) as MountStatus).torrent.name, 'dataset');

  const gone = await f.bt(['status', path.join(f.dir, 'elsewhere')]);
  t.is(gone.code, 1);
  t.is(gone.stderr, `btmount: cannot get status: ${path.join(f.dir, 'elsewhere')} is not a btmount mount point\n`);
});

test('status shows a waiting read, its age and what it waits for; the read fails at --read-timeout', async (t) => {
  // No peers: a read waits until its timeout, then fails. O_DIRECT: the reader's own deadline
  // (the page cache's retry of a buffered read is tested in mount-e2e).
  // 20 s: the read must still be waiting after two status commands, each a node process that
  // takes seconds to start on a loaded 2-core machine (10 s was seen to run out in CI).
  const readTimeout = 20;
  const f = await mountFixture(t, { files: FILES, seed: false, readTimeout });
  const started = Date.now();
  const read = timedRead(path.join(f.mountpoint, 'train/1.jpg'), { direct: true });
  const s = await waitForStatus(f, (x) => x.reads.waiting > 0, 30_000);
  t.is(s.reads.oldest!.path, 'train/1.jpg');
  t.regex(s.reads.oldest!.reason, /no peers/);
  const text = await f.bt(['status', f.mountpoint]);
  t.regex(text.stdout, /reads .* \d+ waiting; the oldest for .* on train\/1\.jpg \(piece \d+\): no peers/);
  const s2 = await waitForStatus(f, (x) => (x.reads.oldest?.ageSeconds ?? 0) >= 1, 30_000);
  t.is(s2.reads.oldest!.path, 'train/1.jpg');
  // The age is that of this read: it grows, and is no older than the test's own clock allows.
  t.true(s2.reads.oldest!.ageSeconds > s.reads.oldest!.ageSeconds, 'the age grows');
  t.true(s2.reads.oldest!.ageSeconds <= (Date.now() - started) / 1000 + 0.5, `age ${s2.reads.oldest!.ageSeconds} s`);
  t.deepEqual(schemaErrors(s2, STATUS_SHAPE), [], 'a waiting read is described as documented');
  const { outcome, seconds } = await read;
  t.is(outcome, 'error EIO');
  t.true(seconds >= readTimeout - 0.1 && seconds <= readTimeout + 5, `EIO after ${seconds} s, --read-timeout ${readTimeout}`);
  const after = await f.status();
  t.is(after.reads.waiting, 0);
  t.is(after.reads.oldest, null);
  t.true(after.reads.failed > 0);
});

// ── a runtime check of the status --json schema (the README's table; fields may be added) ──

type Shape = 'string' | 'integer' | 'number' | 'boolean' | 'string?' | 'integer?' | 'number?' | Shape[] | { [key: string]: Shape } | { nullable: Shape };

const WARM_JOB: Shape = {
  id: 'integer', state: 'string', background: 'boolean', startedAt: 'string', finishedAt: 'string?',
  requested: { files: 'integer', bytes: 'integer' },
  files: { done: 'integer', total: 'integer' }, bytes: { done: 'integer', total: 'integer' }, pieces: { done: 'integer', total: 'integer' },
  alreadyCachedBytes: 'integer', rate: 'number', etaSeconds: 'number?', current: 'string?', window: 'integer',
  notFitting: { files: 'integer', bytes: 'integer', first: 'string?' }, missing: { files: 'integer', bytes: 'integer', first: 'string?' },
  message: 'string?',
};

const STATUS_SHAPE: Shape = {
  schema: 'integer', mountpoint: 'string', pid: 'integer', startedAt: 'string', uptimeSeconds: 'number',
  torrent: { name: 'string', infoHash: 'string', pieceLength: 'integer', pieceCount: 'integer', totalBytes: 'integer', fileCount: 'integer' },
  pieces: { have: 'integer', total: 'integer' },
  transfer: { downloadRate: 'number', uploadRate: 'number', downloadedBytes: 'integer', uploadedBytes: 'integer' },
  peers: [{ address: 'string', source: 'string', client: 'string?', downloadRate: 'number', uploadRate: 'number', choked: 'boolean', choking: 'boolean', interested: 'boolean', requests: 'integer' }],
  cache: {
    dir: 'string', usedBytes: 'integer', budgetBytes: 'integer', effectiveBudgetBytes: 'integer', pinnedBytes: 'integer',
    hitRate: 'number?', hits: 'integer', misses: 'integer', evictions: 'integer', droppedCorrupt: 'integer',
  },
  reads: { count: 'integer', bytes: 'integer', failed: 'integer', waiting: 'integer', oldest: { nullable: { path: 'string', piece: 'integer', ageSeconds: 'number', reason: 'string' } } },
  integrity: { hashFailures: 'integer', bannedPeers: ['string'] },
  warm: [WARM_JOB],
  discovery: {
    staticPeers: 'integer', dht: { enabled: 'boolean', nodes: 'integer' },
    trackers: [{ url: 'string', lastAnnounceAt: 'string?', lastResult: 'string?', peers: 'integer' }],
    pex: { enabled: 'boolean' },
  },
};

/** Where `value` departs from `shape`, as "path: expected …" lines (empty when it conforms). */
function schemaErrors(value: unknown, shape: Shape, at = '$'): string[] {
  if (typeof shape === 'string') {
    const nullable = shape.endsWith('?');
    if (nullable && value === null) return [];
    const kind = nullable ? shape.slice(0, -1) : shape;
    const ok = kind === 'integer' ? Number.isSafeInteger(value) && (value as number) >= 0 : kind === 'number' ? typeof value === 'number' && Number.isFinite(value) && value >= 0 : typeof value === kind;
    return ok ? [] : [`${at}: expected ${shape}, got ${JSON.stringify(value)}`];
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) return [`${at}: expected an array, got ${JSON.stringify(value)}`];
    return value.flatMap((v, i) => schemaErrors(v, shape[0]!, `${at}[${i}]`));
  }
  if ('nullable' in shape && Object.keys(shape).length === 1) return value === null ? [] : schemaErrors(value, shape.nullable as Shape, at);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${at}: expected an object, got ${JSON.stringify(value)}`];
  return Object.entries(shape).flatMap(([key, sub]) =>
    key in value ? schemaErrors((value as Record<string, unknown>)[key], sub as Shape, `${at}.${key}`) : [`${at}.${key}: missing`],
  );
}
