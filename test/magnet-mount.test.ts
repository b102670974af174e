import test from 'ava';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { checkAllFiles, magnetOf, mountSource, startMetadataLiar } from './helpers/discovery.js';
import { BTMOUNT_BIN, freePort, makeDataset, startAria2Seeder, startProcess } from './helpers/peers.js';
import { btmount, tempDir } from './helpers/run.js';
import { statusJson } from './helpers/mount.js';

// Every mount here passes --no-dht: these tests never touch the public DHT.

const FILES = [
  { path: 'train/0001.jpg', length: 700_000 },
  { path: 'train/0002.jpg', length: 1_300_000 },
  { path: 'labels.csv', length: 12_345 },
];

test('a magnet mounts with metadata from an aria2c seeder; a remount with no peer at all uses the saved torrent and the cached pieces', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'images', FILES, 256 * 1024);
  const port = await freePort();
  const aria2 = await startAria2Seeder(ds, port);
  t.teardown(() => aria2.stop());
  const cache = path.join(dir.path, 'cache');

  const m = await mountSource(dir.path, magnetOf(ds), ['--cache', cache, '--port', '0', '--no-dht', '--peer', `127.0.0.1:${port}`]);
  t.teardown(m.unmount);
  t.regex(m.stderr, /fetching metadata: \d+ peers/);
  t.regex(m.stdout, /^mounted images at /m);
  const { got, want } = await checkAllFiles(m.mountpoint, ds);
  t.deepEqual(got, want);
  const saved = await readFile(path.join(cache, 'torrents', `${ds.metainfo.infoHash}.torrent`));
  t.true(saved.includes(ds.metainfo.infoBuffer), 'the saved torrent holds the info dictionary as fetched');
  t.is((await m.unmount()).code, 0);

  await aria2.stop();
  const again = await mountSource(dir.path, ds.metainfo.infoHash, ['--cache', cache, '--port', '0', '--no-dht', '--metadata-timeout', '5']);
  t.teardown(again.unmount);
  t.notRegex(again.stderr, /fetching metadata/);
  const second = await checkAllFiles(again.mountpoint, ds);
  t.deepEqual(second.got, want);
});

/** RFC 4648 base32 (no padding) of a hex infohash: the other form a bare infohash or a magnet's btih takes. */
function base32OfHex(hex: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bits = [...Buffer.from(hex, 'hex')].map((b) => b.toString(2).padStart(8, '0')).join('');
  return Array.from({ length: bits.length / 5 }, (_, i) => alphabet[parseInt(bits.slice(i * 5, i * 5 + 5), 2)]).join('');
}

test('a base32 infohash (bare in lower case, upper case in a magnet) mounts the same torrent as its hex form', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'images', FILES, 256 * 1024);
  const port = await freePort();
  const aria2 = await startAria2Seeder(ds, port);
  t.teardown(() => aria2.stop());
  const b32 = base32OfHex(ds.metainfo.infoHash);
  t.is(b32.length, 32);
  // Both cases, both forms, in two mounts: bare in lower case, upper case in a magnet.
  const sources = [b32.toLowerCase(), `magnet:?xt=urn:btih:${b32}&dn=images`];
  for (const [i, source] of sources.entries()) {
    // A cache of its own each time: the metadata really comes from the seeder for the base32 name.
    const m = await mountSource(dir.path, source, ['--cache', path.join(dir.path, `cache${i}`), '--port', '0', '--no-dht', '--peer', `127.0.0.1:${port}`], `mnt${i}`);
    t.teardown(m.unmount);
    t.regex(m.stdout, /^mounted images at /m, source);
    const st = await statusJson(m.mountpoint);
    t.is(st.torrent.infoHash, ds.metainfo.infoHash, source);
    const { got, want } = await checkAllFiles(m.mountpoint, ds);
    t.deepEqual(got, want, source);
    t.is((await m.unmount()).code, 0);
  }
});

test('metadata from a liar is rejected (and the liar banned); the honest seeder from x.pe gives it', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'real', FILES, 256 * 1024);
  const fake = await makeDataset(dir.path, 'fake', [{ path: 'other.bin', length: 100_000 }], 64 * 1024);
  // The liar (on its own loopback address: bans are per host) is there first; the honest
  // seeder only starts listening once the liar has handed out its false dictionary.
  const liar = await startMetadataLiar('127.0.0.2', ds.metainfo.infoHash, fake.torrentPath);
  t.teardown(liar.close);
  const honestPort = await freePort();
  let stopHonest: (() => Promise<unknown>) | undefined;
  t.teardown(async () => void (await stopHonest?.()));
  void liar.served.then(async () => {
    const aria2 = await startAria2Seeder(ds, honestPort);
    stopHonest = () => aria2.stop();
  });

  const cache = path.join(dir.path, 'cache');
  const logFile = path.join(dir.path, 'mount.log');
  const m = await mountSource(dir.path, magnetOf(ds, `&x.pe=127.0.0.1:${honestPort}`), [
    '--cache', cache, '--port', '0', '--no-dht', '--peer', `${liar.host}:${liar.port}`, '--log-file', logFile,
  ]);
  t.teardown(m.unmount);
  t.regex(m.stdout, /^mounted real at /m);
  const { got, want } = await checkAllFiles(m.mountpoint, ds);
  t.deepEqual(got, want);
  const log = await readFile(logFile, 'utf8');
  t.regex(log, /rejected metadata from a peer; banning it/);
  t.regex(log, /127\.0\.0\.2/);
});

test('no peer for a bare infohash: the mount gives up after --metadata-timeout with one clear line', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const mnt = path.join(dir.path, 'mnt');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(mnt);
  const mount = startProcess(process.execPath, [BTMOUNT_BIN, 'mount', 'c'.repeat(40), mnt, '--cache', path.join(dir.path, 'cache'), '--port', '0', '--no-dht', '--metadata-timeout', '2']);
  t.teardown(() => mount.stop('SIGKILL'));
  // Timed from the first progress line, when the fetch starts (node's start-up on a loaded machine is not the timeout's business).
  await mount.waitFor(/fetching metadata/);
  const started = Date.now();
  const code = await mount.exited;
  const seconds = (Date.now() - started) / 1000;
  const res = { code, stderr: mount.output() };
  t.is(res.code, 1);
  // A bound on an error path: not (much) before the timeout, and not long after it.
  t.true(seconds >= 2 - 0.3 && seconds <= 2 + 4, `gave up ${seconds} s after it started fetching, --metadata-timeout 2`);
  t.regex(res.stderr, /^btmount: cannot mount: could not fetch the torrent's metadata: no peers found in 2 s/m);
  t.regex(res.stderr, /fetching metadata: 0 peers/);
  await t.throwsAsync(access(path.join(dir.path, 'cache', 'torrents', `${'c'.repeat(40)}.torrent`)));
});

test('bad discovery option values are one clear line naming the flag', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const cases: Array<[string[], RegExp]> = [
    [['--tracker', 'ftp://x.example/'], /^btmount: invalid --tracker: only http:\/\/, https:\/\/ and udp:\/\/ trackers are supported/],
    [['--tracker', 'wss://x.example/'], /^btmount: invalid --tracker: only http:\/\//],
    [['--tracker', 'udp://x.example'], /^btmount: invalid --tracker: a udp:\/\/ tracker needs a port/],
    [['--dht-bootstrap', 'router'], /^btmount: invalid --dht-bootstrap: expected host:port, got router/],
    [['--metadata-timeout', '0'], /^btmount: invalid --metadata-timeout: not a positive number of seconds/],
  ];
  for (const [args, message] of cases) {
    const res = await btmount(['mount', 'f'.repeat(40), path.join(dir.path, 'mnt'), '--no-dht', ...args]);
    t.is(res.code, 1, args.join(' '));
    t.regex(res.stderr, message);
    t.is(res.stderr.trim().split('\n').length, 1, res.stderr);
  }
});
