/**
 * Web seeds (BEP 19) through a real FUSE mount: a mount with no peer reads every file
 * exactly from an HTTP origin (a node server honouring Range, and Debian's nginx); each
 * hostile origin gives a logged reason, a line in `btmount status` and, with no peer, a
 * clean EIO after --read-timeout; with a real peer (btmount seed) the reads still return
 * exact bytes. No read ever sees a byte that did not verify.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes, createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTorrentFile } from '../src/cli/create.js';
import type { MountStatus } from '../src/control/status-schema.js';
import { loadMetainfo, type Metainfo } from '../src/metainfo/index.js';
import type { WebSeedFailureKind } from '../src/webseed/index.js';
import { liveStatus, logLines, mountTorrent, mountWithCli, seedWithBtmount, sha256Via, statusJson, timedRead, type MountedTorrent } from './helpers/mount.js';
import { haveNginx, startNginx } from './helpers/nginx.js';
import { BTMOUNT_BIN, freePort, makeDataset, startProcess, type Dataset } from './helpers/peers.js';
import { btmount, run } from './helpers/run.js';
import { startWebSeedServer, type WebSeedServer } from './helpers/web-seed-server.js';

const PIECE = 16 * 1024;
const FILES = [
  { path: 'train/a b#1.bin', length: 40_000 },
  { path: 'train/tiny.txt', length: 7 },
  { path: 'train/c.bin', length: 100_000 },
  { path: 'labels.csv', length: PIECE },
];
/** Short, so a read with no source fails soon; generous against a loaded machine in the bounds below. */
const READ_TIMEOUT_S = 4;

let base: string;
let ds: Dataset;
let single: { torrentPath: string; metainfo: Metainfo; sha256: string };
let server: WebSeedServer;
let tlsServer: WebSeedServer;
/** The self-signed certificate of tlsServer (untrusted unless given as NODE_EXTRA_CA_CERTS). */
let tlsCert: string;

test.before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'btmount-mount-webseed-'));
  ds = await makeDataset(base, 'ds', FILES, PIECE);
  const bytes = randomBytes(70_001);
  await writeFile(path.join(base, 'one.bin'), bytes);
  const torrentPath = path.join(base, 'one.torrent');
  await createTorrentFile(path.join(base, 'one.bin'), { output: torrentPath, pieceSize: PIECE, tracker: [], webSeed: [] });
  single = { torrentPath, metainfo: await loadMetainfo(torrentPath), sha256: createHash('sha256').update(bytes).digest('hex') };
  server = await startWebSeedServer(base);
  // An https origin whose certificate nobody trusts: the mount's TLS check must refuse it.
  const dir = path.join(base, 'tls');
  await mkdir(dir, { recursive: true });
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const r = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`openssl: ${r.stderr}`);
  tlsServer = await startWebSeedServer(base, { key: await readFile(key), cert: await readFile(cert) });
  tlsCert = cert;
});

test.after.always(async () => {
  await server?.close();
  await tlsServer?.close();
  if (base) await rm(base, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A mount of `torrent` on its own directory and cache, unmounted in teardown. */
async function mountFor(t: ExecutionContext, name: string, torrent: string, extra: string[], opts: { peers?: string[]; readTimeout?: number } = {}): Promise<MountedTorrent> {
  const m = await mountTorrent(base, torrent, { name: `mnt-${name}`, cache: path.join(base, `cache-${name}`), readTimeout: opts.readTimeout ?? 30, extra, ...(opts.peers ? { peers: opts.peers } : {}) });
  t.teardown(m.unmount);
  return m;
}

/** Every file of the multi-file dataset read through the mount by other processes, byte-compared by hash. */
async function assertEveryFileExact(t: ExecutionContext, m: MountedTorrent): Promise<void> {
  const hashes = await Promise.all(ds.files.map((f) => sha256Via(path.join(m.mountpoint, f.path))));
  ds.files.forEach((f, i) => t.is(hashes[i], f.sha256, f.path));
}

/** Polls the mount's status until `check` holds (the daemon records failures as they come). */
async function statusUntil(mountpoint: string, check: (s: MountStatus) => boolean, what: string, timeoutMs = 40_000): Promise<MountStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await liveStatus(mountpoint);
    if (check(s)) return s;
    if (Date.now() > deadline) throw new Error(`status never showed ${what}: ${JSON.stringify(s.webSeeds)}`);
    await sleep(100);
  }
}

/** The mount's web seeds, as `btmount status` prints them (the text a person reads). */
async function statusText(mountpoint: string): Promise<string> {
  const res = await btmount(['status', mountpoint], { timeoutMs: 60_000 });
  if (res.code !== 0) throw new Error(`btmount status: ${res.stderr}`);
  return res.stdout;
}

test('no peer, only a node web seed: every file of a multi-file (url-list) and a single-file (-o web_seed=) torrent read exactly; status shows its bytes', async (t) => {
  // The multi-file torrent names its web seed in url-list, as `btmount create --web-seed` writes it.
  const withUrlList = path.join(base, 'ds-url-list.torrent');
  await createTorrentFile(ds.root, { output: withUrlList, pieceSize: PIECE, tracker: [], webSeed: [`${server.base}/good/`] });
  const metricsPort = await freePort();
  const multi = await mountFor(t, 'node-multi', withUrlList, ['--metrics', String(metricsPort)]);
  await assertEveryFileExact(t, multi);
  const s = await liveStatus(multi.mountpoint);
  t.is(s.peers.length, 0);
  t.is(s.webSeeds.length, 1);
  const ws = s.webSeeds[0]!;
  t.is(ws.url, `${server.base}/good/`);
  t.is(ws.state, 'ready');
  // No peer: every piece came from the origin (at least once; the count is the swarm's business).
  t.true(ws.piecesFetched >= ds.metainfo.layout.pieceCount, `${ws.piecesFetched} pieces`);
  t.true(ws.bytesFetched >= ds.metainfo.layout.totalLength, `${ws.bytesFetched} bytes`);
  t.is(ws.failures, 0);
  const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const counter = Number(/^btmount_web_seed_bytes_total (\d+)$/m.exec(scraped)?.[1]);
  t.true(counter >= ds.metainfo.layout.totalLength, `btmount_web_seed_bytes_total ${counter}`);
  const text = await statusText(multi.mountpoint);
  t.regex(text, /^ {2}web seeds {2}1$/m);
  t.regex(text, new RegExp(`^ {4}${escape(server.base)}/good/ {2}ready; \\d+ pieces \\(.+\\) fetched$`, 'm'));

  // fstab's spelling of the options: web_seed=URL, web_seed_limit=RATE.
  const one = await mountFor(t, 'node-single', single.torrentPath, ['-o', `web_seed=${server.base}/good/one.bin,web_seed_limit=10M`]);
  t.is(await sha256Via(path.join(one.mountpoint, 'one.bin')), single.sha256);
  const s1 = (await statusJson(one.mountpoint)).webSeeds;
  t.deepEqual(s1.map((w) => w.url), [`${server.base}/good/one.bin`]);
  t.true(s1[0]!.piecesFetched >= single.metainfo.layout.pieceCount);
});

(haveNginx() ? test : test.skip)('no peer, only Debian nginx as the web seed (--web-seed): multi-file and single-file torrents read exactly', async (t) => {
  const nginx = await startNginx(base, base);
  t.teardown(() => nginx.stop());
  const multi = await mountFor(t, 'nginx-multi', ds.torrentPath, ['--web-seed', nginx.base]);
  await assertEveryFileExact(t, multi);
  const one = await mountFor(t, 'nginx-single', single.torrentPath, ['--web-seed', nginx.base]);
  t.is(await sha256Via(path.join(one.mountpoint, 'one.bin')), single.sha256);
  for (const m of [multi, one]) {
    const [ws] = (await liveStatus(m.mountpoint)).webSeeds;
    t.is(ws?.url, nginx.base);
    t.true((ws?.piecesFetched ?? 0) > 0);
    t.is(ws?.failures, 0);
  }
  t.regex(await readFile(path.join(nginx.dir, 'access.log'), 'utf8'), /" 206 /, 'nginx answered range requests');
});

test('an https web seed whose CA is given as NODE_EXTRA_CA_CERTS (a private bucket) is trusted: every file read exactly', async (t) => {
  const mountpoint = path.join(base, 'mnt-private-ca');
  await mkdir(mountpoint, { recursive: true });
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: tlsCert };
  const args = ['mount', ds.torrentPath, mountpoint, '--cache', path.join(base, 'cache-private-ca'), '--port', '0', '--no-dht', '--read-timeout', '30', '--web-seed', `${tlsServer.base}/good/`];
  const m = await mountWithCli(mountpoint, args, { env });
  t.teardown(m.unmount);
  await assertEveryFileExact(t, m);
  const [ws] = (await liveStatus(m.mountpoint)).webSeeds;
  t.is(ws?.failures, 0);
  t.true((ws?.piecesFetched ?? 0) >= ds.metainfo.layout.pieceCount);
});

/** Each hostile origin: the URL the mount is given, and the failure kind it must report. */
const HOSTILE: Array<{ mode: string; kind: WebSeedFailureKind; what: string; url: () => string }> = [
  { mode: '404', kind: 'http-status', what: 'a 404', url: () => `${server.base}/404/` },
  { mode: 'short', kind: 'short-body', what: 'a short body', url: () => `${server.base}/short/` },
  { mode: 'badrange', kind: 'bad-content-range', what: 'a wrong Content-Range', url: () => `${server.base}/badrange/` },
  { mode: 'ignore', kind: 'range-ignored', what: 'a server that ignores Range (200, the whole file)', url: () => `${server.base}/ignore/` },
  { mode: 'loop', kind: 'redirect-loop', what: 'a redirect loop', url: () => `${server.base}/loop/` },
  { mode: 'stall', kind: 'stalled', what: 'a server that stalls mid-body', url: () => `${server.base}/stall/` },
  { mode: 'tls', kind: 'tls', what: 'https with an untrusted certificate', url: () => `${tlsServer.base}/good/` },
  { mode: 'corrupt', kind: 'hash-mismatch', what: 'wrong bytes under a correct Range (hash mismatch)', url: () => `${server.base}/corrupt/` },
];

for (const h of HOSTILE) {
  test(`no peer, ${h.what}: the read is a clean EIO after --read-timeout, the log and status say '${h.kind}'`, async (t) => {
    const m = await mountFor(t, `hostile-${h.mode}`, ds.torrentPath, ['--web-seed', h.url()], { readTimeout: READ_TIMEOUT_S });
    const read = await timedRead(path.join(m.mountpoint, 'train/c.bin'), { timeoutMs: 90_000 });
    // Never bytes: the only answer without a verified piece is EIO.
    t.is(read.outcome, 'error EIO');
    t.true(read.seconds >= READ_TIMEOUT_S * 0.9, `EIO after ${read.seconds} s`);
    t.true(read.seconds < READ_TIMEOUT_S + 30, `EIO after ${read.seconds} s, not a hang`);
    const s = await statusUntil(m.mountpoint, (x) => x.webSeeds[0]?.lastFailure?.kind === h.kind, `a '${h.kind}' failure`);
    const ws = s.webSeeds[0]!;
    t.is(ws.piecesFetched, 0);
    t.true(ws.failures > 0);
    t.regex(await statusText(m.mountpoint), new RegExp(`^ {4}${escape(h.url())} {2}.*failures?, last \\d\\d:\\d\\d:\\d\\d ${h.kind}: `, 'm'));
    const logged = await logLines(m.logFile, /^web seed failed/);
    t.true(logged.some((l) => l['kind'] === h.kind && l['webSeed'] === h.url()), `a log line with kind ${h.kind}`);
    // The cache holds nothing the origin sent: no piece of the read arrived.
    t.is(s.pieces.have, 0);
  });
}

test('every hostile origin at once, then a real peer (btmount seed) appears: every read returns exact bytes, none from the origins', async (t) => {
  const port = await freePort();
  const seeds = HOSTILE.flatMap((h) => ['--web-seed', h.url()]);
  // The peer's address is known from the start, but nothing listens there until the origins have failed.
  const m = await mountFor(t, 'hostile-then-peer', ds.torrentPath, seeds, { peers: [`127.0.0.1:${port}`], readTimeout: 90 });
  const reads = Promise.all(ds.files.map((f) => sha256Via(path.join(m.mountpoint, f.path))));
  const before = await statusUntil(m.mountpoint, (s) => s.webSeeds.filter((w) => w.failures > 0).length >= 3, 'three failed web seeds');
  t.log(`failed before the peer came: ${before.webSeeds.filter((w) => w.failures > 0).map((w) => w.lastFailure?.kind).join(', ')}`);
  const seeder = await seedWithBtmount(ds, port);
  t.teardown(() => seeder.stop().then(() => undefined));
  const hashes = await reads;
  ds.files.forEach((f, i) => t.is(hashes[i], f.sha256, f.path));
  const after = await liveStatus(m.mountpoint);
  t.is(after.webSeeds.length, HOSTILE.length);
  t.is(after.webSeeds.reduce((sum, w) => sum + w.piecesFetched, 0), 0, 'no hostile origin delivered a piece');
  t.true(after.peers.length >= 1);
});

test("a magnet whose only source is a web seed (ws=) says the metadata needs a peer; with a peer, ws= is one of the mount's web seeds; with the metadata cached, the web seed alone serves it", async (t) => {
  const ws = `${server.base}/good/`;
  const magnet = `magnet:?xt=urn:btih:${ds.metainfo.infoHash}&dn=ds&ws=${encodeURIComponent(ws)}`;
  const lonely = path.join(base, 'mnt-magnet-lonely');
  await mkdir(lonely, { recursive: true });
  const res = await btmount(['mount', magnet, lonely, '--cache', path.join(base, 'cache-magnet-lonely'), '--port', '0', '--no-dht', '--metadata-timeout', '2'], { timeoutMs: 60_000 });
  t.not(res.code, 0);
  // The progress lines of the wait ("fetching metadata: 0 peers"), then the one error line.
  const errors = res.stderr.trim().split('\n').filter((l) => l.startsWith('btmount:'));
  t.is(errors.length, 1, res.stderr);
  t.regex(errors[0]!, /^btmount: cannot mount: could not fetch the torrent's metadata: .*a web seed cannot give the metadata \(BEP 19 serves only the files\)/);

  const port = await freePort();
  const seeder = await seedWithBtmount(ds, port);
  t.teardown(() => seeder.stop().then(() => undefined));
  const m = await mountFor(t, 'magnet-ws', magnet, [], { peers: [`127.0.0.1:${port}`] });
  t.deepEqual((await liveStatus(m.mountpoint)).webSeeds.map((w) => w.url), [ws]);
  t.is(await sha256Via(path.join(m.mountpoint, 'train/c.bin')), ds.files[2]!.sha256);

  // The metadata is now in that cache: the same magnet mounts again with no peer at all, and
  // every byte comes from the web seed (the piece cache is emptied first).
  await m.unmount();
  await seeder.stop();
  await rm(path.join(base, 'cache-magnet-ws', ds.metainfo.infoHash), { recursive: true, force: true });
  const again = await mountFor(t, 'magnet-ws', magnet, []);
  await assertEveryFileExact(t, again);
  const [w] = (await liveStatus(again.mountpoint)).webSeeds;
  t.true((w?.piecesFetched ?? 0) >= ds.metainfo.layout.pieceCount);
});

test('a --web-seed that is not an http(s) URL is one line naming the flag, before anything starts', async (t) => {
  const mnt = path.join(base, 'mnt-bad-url');
  await mkdir(mnt, { recursive: true });
  const res = await btmount(['mount', ds.torrentPath, mnt, '--cache', path.join(base, 'cache-bad-url'), '--no-dht', '--web-seed', 'ftp://mirror.example/ds/'], { timeoutMs: 60_000 });
  t.is(res.code, 1);
  t.is(res.stderr, 'btmount: cannot mount: --web-seed: a web seed must be an http:// or https:// URL, not ftp://mirror.example/ds/\n');
});

test('seed --web-seed (repeated: a 404 origin, then a good one) fills the pieces its dataset lacks (a truncated file, a changed byte) from the origin that has them, without writing the dataset; a mount gets every byte from that seed alone', async (t) => {
  const damaged = path.join(base, 'damaged', 'ds');
  await cp(ds.root, damaged, { recursive: true });
  const truncated = path.join(damaged, 'train/c.bin');
  await truncate(truncated, 30_000);
  const changed = path.join(damaged, 'labels.csv');
  const labels = await readFile(changed);
  labels[100]! ^= 0xff;
  await writeFile(changed, labels);
  const port = await freePort();
  const seeder = startProcess(process.execPath, [
    BTMOUNT_BIN, 'seed', ds.torrentPath, damaged, '--host', '127.0.0.1', '--port', String(port), '--no-dht',
    '--cache', path.join(base, 'cache-seed-fill'), '--web-seed', `${server.base}/404/`, '--web-seed', `${server.base}/good/`,
  ]);
  t.teardown(() => seeder.stop().then(() => undefined));
  await seeder.waitFor(/seeding .* on port/, 60_000);
  t.regex(seeder.output(), /btmount: \d+ missing or damaged pieces were fetched from web seeds; serving every piece \(the dataset itself is unchanged\)/);
  // The dataset is as it was: the filled pieces live in the seed's cache.
  t.is((await readFile(truncated)).length, 30_000);
  t.true((await readFile(changed)).equals(labels));
  const m = await mountFor(t, 'from-filled-seed', ds.torrentPath, [], { peers: [`127.0.0.1:${port}`] });
  await assertEveryFileExact(t, m);
  t.deepEqual((await liveStatus(m.mountpoint)).webSeeds, []);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
