import test from 'ava';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { checkAllFiles, magnetOf, mountSource, startMetadataLiar } from './helpers/discovery.js';
import { freePort, makeDataset, startAria2Seeder } from './helpers/peers.js';
import { btmount, tempDir } from './helpers/run.js';

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
  const res = await btmount(['mount', 'c'.repeat(40), mnt, '--cache', path.join(dir.path, 'cache'), '--port', '0', '--no-dht', '--metadata-timeout', '1']);
  t.is(res.code, 1);
  t.regex(res.stderr, /^btmount: cannot mount: could not fetch the torrent's metadata: no peers found in 1 s/m);
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
