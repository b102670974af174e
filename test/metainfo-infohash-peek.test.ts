import test from 'ava';
import bencode from 'bencode';
import { Metainfo } from '../src/metainfo/index.js';
import { peekInfoHash } from '../src/metainfo/info-hash-peek.js';
import { buildTorrent } from './helpers/torrent-builder.js';

test('the peeked infohash is the parsed one, wherever "info" sits among the keys', (t) => {
  const torrents = [
    buildTorrent({ name: 'one.bin', length: 40000 }),
    buildTorrent({
      files: [{ path: ['a', 'b.txt'], length: 5 }, { path: ['c'], length: 70000 }],
      infoExtra: { nested: [[[1, -2]], { deep: [Buffer.from('e:i')] }] },
      // Keys sort after "info" too (bencode writes them sorted): the scan must step over both sides.
      topExtra: { announce: Buffer.from('http://127.0.0.1:1/announce'), 'zz last': [1, { x: Buffer.from('4:info') }] },
    }),
  ];
  for (const raw of torrents) t.is(peekInfoHash(raw), Metainfo.fromTorrentFile(raw).infoHash);
});

test('bytes that are not a bencoded dictionary with "info" peek as nothing', (t) => {
  const raw = buildTorrent({ length: 100 });
  for (const bad of [
    Buffer.alloc(0),
    Buffer.from('hello world'),
    Buffer.from(bencode.encode([1, 2])),
    Buffer.from(bencode.encode({ announce: 'x' })),
    raw.subarray(0, raw.length - 30),
    Buffer.from('d4:infod'),
    Buffer.from('d4:infoi12'),
    Buffer.from('d99:info'),
  ]) {
    t.is(peekInfoHash(bad), undefined, bad.toString('latin1').slice(0, 40));
  }
});
