import test from 'ava';
import { createHash } from 'node:crypto';
import { Metainfo } from '../src/metainfo/index.js';
import { parsePeerAddress, torrentFileBytes } from '../src/discovery/index.js';
import { memoryLogger } from './helpers/store-fixtures.js';
import { startTrackerServer, testAnnouncer, waitUntil } from './helpers/discovery.js';

test('peer addresses from trackers, the DHT and PEX: usable ones only', (t) => {
  t.deepEqual(parsePeerAddress('10.1.2.3:6881'), { host: '10.1.2.3', port: 6881 });
  t.deepEqual(parsePeerAddress('[2001:db8::1]:51413'), { host: '2001:db8::1', port: 51413 });
  t.deepEqual(parsePeerAddress('[::ffff:127.0.0.1]:80'), { host: '127.0.0.1', port: 80 }, 'v4-mapped v6 is the v4 address');
  for (const bad of ['10.1.2.3:0', '0.0.0.0:6881', '224.0.0.1:6881', '10.1.2.3:70000', 'example.com:6881', 'junk', '[::]:1']) {
    t.is(parsePeerAddress(bad), undefined, bad);
  }
});

test('a torrent rebuilt around fetched info bytes keeps them as they were (same infohash, even when not canonical)', (t) => {
  // Keys out of order: re-encoding would sort them and change the hash.
  const info = Buffer.from('d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae');
  const odd = Buffer.from('d4:name1:x6:lengthi5e12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae');
  for (const bytes of [info, odd]) {
    const torrent = torrentFileBytes(bytes, ['udp://tracker.example:6969', 'http://t.example/announce']);
    const metainfo = Metainfo.fromTorrentFile(torrent);
    t.is(metainfo.infoHash as string, createHash('sha1').update(bytes).digest('hex'));
    t.deepEqual([...metainfo.announce], ['udp://tracker.example:6969', 'http://t.example/announce']);
  }
});

test('trackers: WebRTC and unknown schemes are skipped with a log line; an unreachable tracker is a status, not a crash', async (t) => {
  const { log, lines } = memoryLogger();
  const { announcer } = testAnnouncer({
    infoHash: 'e'.repeat(40),
    port: 6881,
    urls: ['wss://tracker.example/announce', 'ftp://x.example/', 'http://127.0.0.1:9/announce', 'http://127.0.0.1:9/announce/'],
    log,
  });
  t.deepEqual([...announcer.urls], ['http://127.0.0.1:9/announce']);
  t.is(lines.filter((l) => /only http:\/\/, https:\/\/ and udp:\/\//.test(l.msg)).length, 2);
  announcer.start();
  const [status] = await waitUntil('the announce to fail', () => (announcer.status()[0]!.lastResult ? announcer.status() : undefined));
  t.not(status!.lastResult, 'ok');
  t.is(status!.peers, 0);
  await announcer.stop();
});

test('trackers: each tracker is re-announced to at the interval it asks for, over HTTP and over UDP', async (t) => {
  // The server asks for 5 s (btmount's floor). Before, a UDP tracker's interval was replaced by a
  // half-hour default, so a swarm tracked over UDP saw a mount again only after 30 minutes.
  const tracker = await startTrackerServer({ intervalMs: 5_000 });
  t.teardown(tracker.close);
  const { announcer, port } = testAnnouncer({ infoHash: 'f'.repeat(40), urls: [tracker.httpUrl, tracker.udpUrl] });
  announcer.start();
  t.teardown(() => announcer.stop());
  const reannounced = (type: string) => tracker.announces.some((a) => a.port === port && a.type === type && a.event !== 'started' && a.event !== 'stopped');
  await waitUntil('a re-announce over HTTP and over UDP', () => reannounced('http') && reannounced('udp'), 20_000);
  t.pass();
});

test("a dictionary-model HTTP tracker peer, as bittorrent-tracker stringifies its ip bytes, is read as its address", (t) => {
  // bittorrent-tracker emits `${peer.ip}:${peer.port}` with ip a Uint8Array of the bencoded string.
  const ip = new TextEncoder().encode('127.0.0.9');
  t.deepEqual(parsePeerAddress(`${ip}:6881`), { host: '127.0.0.9', port: 6881 });
  const v6 = new TextEncoder().encode('::1');
  t.deepEqual(parsePeerAddress(`${v6}:51413`), { host: '::1', port: 51413 });
  // Bytes that do not spell an address stay refused.
  t.is(parsePeerAddress('1,2,300:6881'), undefined);
  t.is(parsePeerAddress(`${new TextEncoder().encode('junk')}:6881`), undefined);
});
