import test from 'ava';
import net from 'node:net';
import path from 'node:path';
import { mkdir, readFile } from 'node:fs/promises';
import { btmount, run, tempDir } from './helpers/run.js';
import { BTMOUNT_BIN, freePort, makeDataset, startProcess } from './helpers/peers.js';
import { mountTorrent, sha256Via } from './helpers/mount.js';

// --metrics on a mount and on `btmount seed`: Prometheus text scraped over HTTP on 127.0.0.1
// while a real read goes through FUSE, from a real seed, on loopback.

const BIG = 4 * 1024 * 1024 + 4321;
const FILES = [
  { path: 'train/big.bin', length: BIG },
  { path: 'train/warm.bin', length: 300_000 },
];

/** The samples of a Prometheus text page: `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (res.status !== 200) throw new Error(`scrape: HTTP ${res.status}`);
  if (!(res.headers.get('content-type') ?? '').startsWith('text/plain')) throw new Error(`scrape: ${res.headers.get('content-type')}`);
  return parseMetrics(await res.text());
}

function value(samples: Map<string, number>, key: string): number {
  const v = samples.get(key);
  if (v === undefined) throw new Error(`no sample ${key} in:\n${[...samples.keys()].join('\n')}`);
  return v;
}

test.serial('mount and seed metrics move during a read: bytes, cache, pieces, peers by source, latency, warm', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'dataset', FILES, 64 * 1024);
  const seedPort = await freePort();
  const seedMetrics = await freePort();
  const seeder = startProcess(process.execPath, [
    BTMOUNT_BIN, 'seed', ds.torrentPath, ds.root, '--host', '127.0.0.1', '--port', String(seedPort), '--no-dht',
    '--cache', path.join(dir.path, 'seed-cache'), '--metrics', String(seedMetrics),
  ]);
  t.teardown(() => seeder.stop());
  await seeder.waitFor(/seeding .* on port \d+ \(log .*seed-[0-9a-f]{40}\.log, metrics http:\/\/127\.0\.0\.1:\d+\/metrics\)/, 60_000);

  const mountMetrics = await freePort();
  const cacheSize = 32 * 1024 * 1024;
  const m = await mountTorrent(dir.path, ds.torrentPath, {
    peers: [`127.0.0.1:${seedPort}`],
    // Slow enough that scrapes land while the read is under way.
    extra: ['--metrics', `127.0.0.1:${mountMetrics}`, '--download-limit', '1M', '--cache-size', String(cacheSize)],
  });
  t.teardown(m.unmount);

  const before = await scrape(mountMetrics);
  t.is(value(before, 'btmount_fuse_read_bytes_total'), 0);
  t.is(value(before, 'btmount_downloaded_bytes_total{source="static"}'), 0);
  t.is(value(before, 'btmount_cache_budget_bytes'), cacheSize);
  t.is(value(before, 'btmount_pieces'), ds.metainfo.layout.pieceCount);
  t.is(value(before, 'btmount_read_latency_seconds_count'), 0);

  const reading = sha256Via(path.join(m.mountpoint, 'train/big.bin'));
  let done = false;
  void reading.finally(() => (done = true));
  const during: Array<Map<string, number>> = [];
  while (!done) {
    during.push(await scrape(mountMetrics));
    await new Promise((r) => setTimeout(r, 300));
  }
  t.is(await reading, ds.files[0]!.sha256);
  const after = await scrape(mountMetrics);

  // Mid-read: some bytes in, not all; some scrape saw a read waiting for pieces.
  const mid = during.filter((s) => {
    const got = value(s, 'btmount_downloaded_bytes_total{source="static"}');
    return got > 0 && got < BIG;
  });
  t.true(mid.length >= 2, `scrapes during the read: ${during.length}, mid-transfer: ${mid.length}`);
  const downloads = during.map((s) => value(s, 'btmount_downloaded_bytes_total{source="static"}'));
  t.deepEqual(downloads, [...downloads].sort((a, b) => a - b), 'a counter never goes down');
  t.true(during.some((s) => value(s, 'btmount_waiting_reads') >= 1), 'a scrape saw a waiting read');
  t.true(during.some((s) => value(s, 'btmount_fuse_read_bytes_total') > 0 && value(s, 'btmount_fuse_read_bytes_total') < BIG));

  // After: every byte of the file went through FUSE, was fetched, verified and cached.
  t.is(value(after, 'btmount_fuse_read_bytes_total'), BIG);
  t.true(value(after, 'btmount_downloaded_bytes_total{source="static"}') >= BIG);
  t.is(value(after, 'btmount_downloaded_bytes_total{source="tracker"}'), 0);
  t.true(value(after, 'btmount_cache_misses_total') > 0);
  t.true(value(after, 'btmount_cache_bytes') >= BIG);
  const pieces = value(after, 'btmount_pieces_have');
  t.true(pieces >= Math.ceil(BIG / (64 * 1024)), String(pieces));
  t.is(value(after, 'btmount_pieces_verified_total'), pieces);
  t.is(value(after, 'btmount_pieces_failed_total'), 0);
  t.is(value(after, 'btmount_peers{source="static"}'), 1);
  t.is(value(after, 'btmount_waiting_reads'), 0);
  const reads = value(after, 'btmount_fuse_reads_total');
  t.true(reads > 0);
  t.true(value(after, 'btmount_read_latency_seconds_count') >= reads);
  t.true(value(after, 'btmount_read_latency_seconds_sum') > 0.5, 'reads waited for a throttled download');
  t.true(value(after, 'btmount_read_latency_seconds_bucket{le="+Inf"}') >= reads);

  // The seed counts the same bytes as uploads to a peer that connected to it.
  const seedSide = await scrape(seedMetrics);
  t.true(value(seedSide, 'btmount_uploaded_bytes_total{source="incoming"}') >= BIG);
  t.is(value(seedSide, 'btmount_uploaded_bytes_total{source="static"}'), 0);
  t.is(value(seedSide, 'btmount_peers{source="incoming"}'), 1);
  t.is(value(seedSide, 'btmount_pieces_have'), ds.metainfo.layout.pieceCount);

  // Warm progress.
  const warm = await btmount(['warm', m.mountpoint, 'train/warm.bin'], { timeoutMs: 60_000 });
  t.is(warm.code, 0, warm.stderr);
  const warmed = await scrape(mountMetrics);
  t.is(value(warmed, 'btmount_warm_jobs{state="complete"}'), 1);
  t.is(value(warmed, 'btmount_warm_jobs{state="running"}'), 0);
  t.true(value(warmed, 'btmount_downloaded_bytes_total{source="static"}') >= BIG + 300_000);
  t.is(value(warmed, 'btmount_fuse_read_bytes_total'), BIG, 'warm does not count as FUSE reads');

  const other = await fetch(`http://127.0.0.1:${mountMetrics}/`);
  t.is(other.status, 404);
  await other.text();
});

test('--metrics: a bad address is one line; a port in use fails the mount and names it', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'dataset', [{ path: 'a.bin', length: 1000 }], 16 * 1024);
  const mnt = path.join(dir.path, 'mnt');
  await mkdir(mnt);
  const bad = await btmount(['mount', ds.torrentPath, mnt, '--no-dht', '--metrics', 'localhost']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /^btmount: invalid --metrics: expected host:port, got localhost$/m);

  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.teardown(() => holder.close());
  const taken = (holder.address() as net.AddressInfo).port;
  const res = await btmount(['mount', ds.torrentPath, mnt, '--no-dht', '--port', '0', '--cache', path.join(dir.path, 'cache'), '--metrics', String(taken)]);
  t.teardown(() => run('fusermount', ['-uz', mnt]));
  t.is(res.code, 1, res.stdout);
  t.regex(res.stderr, new RegExp(`^btmount: cannot mount: --metrics 127\\.0\\.0\\.1:${taken}: cannot listen \\(EADDRINUSE\\)$`, 'm'));
  t.is((await run('mountpoint', ['-q', mnt])).code, 32);
});

test('btmount seed writes its log to <cache>/logs/seed-<infohash>.log by default', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'dataset', [{ path: 'a.bin', length: 5000 }], 16 * 1024);
  const cache = path.join(dir.path, 'cache');
  const seeder = startProcess(process.execPath, [BTMOUNT_BIN, 'seed', ds.torrentPath, ds.root, '--host', '127.0.0.1', '--port', '0', '--no-dht', '--cache', cache]);
  t.teardown(() => seeder.stop());
  const logFile = path.join(cache, 'logs', `seed-${ds.metainfo.infoHash}.log`);
  await seeder.waitFor(new RegExp(`on port \\d+ \\(log ${logFile.replace(/[.]/g, '\\.')}\\)`), 60_000);
  t.is(await seeder.stop(), 0);
  const lines = (await readFile(logFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { msg: string });
  t.true(lines.some((l) => /listening/.test(l.msg)), lines.map((l) => l.msg).join('\n'));
  t.is(lines.at(-1)!.msg, 'stopped');
});
