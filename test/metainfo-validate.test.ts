import test from 'ava';
import bencode from 'bencode';
import { Metainfo, InvalidTorrentError } from '../src/metainfo/index.js';
import { buildTorrent } from './helpers/torrent-builder.js';

const refuses = (t: import('ava').ExecutionContext, raw: Uint8Array, message: RegExp): void => {
  const err = t.throws(() => Metainfo.fromTorrentFile(raw), { instanceOf: InvalidTorrentError });
  t.regex(err!.message, message);
};

test('a well-formed single-file torrent loads', (t) => {
  const m = Metainfo.fromTorrentFile(buildTorrent({ name: 'one.bin', length: 40000 }));
  t.is(m.layout.pieceCount, 3);
  t.is(m.layout.lastPieceLength, 40000 - 2 * 16384);
  t.is(m.tree.fileCount, 1);
  t.is(m.tree.lookup('one.bin')?.kind, 'file');
  t.false(m.multiFile);
});

test('not bencode at all', (t) => refuses(t, Buffer.from('hello world'), /malformed bencode/));
test('empty input', (t) => refuses(t, Buffer.alloc(0), /malformed bencode|not a torrent/));
test('truncated file', (t) => {
  const raw = buildTorrent({ length: 100 });
  refuses(t, raw.subarray(0, raw.length - 10), /malformed bencode/);
});
test('trailing bytes after the dictionary', (t) => {
  refuses(t, Buffer.concat([buildTorrent({ length: 100 }), Buffer.from('xx')]), /trailing/);
});
test('top level is a list', (t) => refuses(t, Buffer.from(bencode.encode([1, 2])), /not a bencoded dictionary/));
test('missing info', (t) => refuses(t, Buffer.from(bencode.encode({ announce: 'x' })), /"info"/));
test('info is a string', (t) => refuses(t, Buffer.from(bencode.encode({ info: 'x' })), /"info"/));
test('absurd nesting does not crash the decoder', (t) => {
  const depth = 200_000;
  refuses(t, Buffer.from('l'.repeat(depth) + 'e'.repeat(depth)), /malformed bencode|not a bencoded dictionary/);
});
test('__proto__ key cannot smuggle in an info dictionary', (t) => {
  const inner = bencode.encode({ name: 'x', 'piece length': 16384, pieces: Buffer.alloc(20), length: 1 });
  const raw = Buffer.concat([Buffer.from('d9:__proto__'), Buffer.from(inner), Buffer.from('e')]);
  refuses(t, raw, /"info"/);
});

test('piece length not a power of two', (t) =>
  refuses(t, buildTorrent({ length: 100, pieceLength: 20000 }), /power of two/));
test('piece length below 16 KiB', (t) => refuses(t, buildTorrent({ length: 100, pieceLength: 8192 }), /power of two between/));
test('piece length above 64 MiB', (t) =>
  refuses(t, buildTorrent({ length: 100, pieceLength: 128 * 1024 * 1024, data: Buffer.alloc(100) }), /between 16 KiB and 64 MiB/));
test('pieces not a multiple of 20 bytes', (t) =>
  refuses(t, buildTorrent({ length: 100, infoExtra: { pieces: Buffer.alloc(21) } }), /not a multiple of 20/));
test('piece count does not match the size', (t) =>
  refuses(t, buildTorrent({ length: 100, infoExtra: { pieces: Buffer.alloc(40) } }), /2 piece hashes but .* need 1/));
test('negative file length', (t) => refuses(t, buildTorrent({ length: 100, infoExtra: { length: -5 } }), /length is missing, negative/));
test('absurd file length', (t) =>
  refuses(t, buildTorrent({ length: 100, infoExtra: { length: 2 ** 60 } }), /exact integer|absurd/));
test('file length not an integer', (t) =>
  refuses(t, buildTorrent({ length: 100, infoExtra: { length: Buffer.from('12') } }), /length is missing/));
test('files is not a list', (t) => refuses(t, buildTorrent({ length: 0, infoExtra: { files: 3 } }), /"info.files"/));
test('a path element that is not a string', (t) =>
  refuses(t, buildTorrent({ files: [{ path: ['a'], length: 1 }], infoExtra: { files: [{ length: 1, path: [5] }] } }), /malformed path/));
test('missing name', (t) => refuses(t, buildTorrent({ name: new Uint8Array(0), length: 10 }), /info.name/));
test('v2-only torrent', (t) =>
  refuses(t, Buffer.from(bencode.encode({ info: { name: 'x', 'piece length': 16384, 'file tree': {}, 'meta version': 2 } })), /v2-only/));
test('an info dictionary not in canonical key order hashes its bytes as written', async (t) => {
  // Keys out of order ("name" after "pieces"): clients hash the bytes as they are, not a re-encoding.
  const info = 'd6:lengthi1e12:piece lengthi16384e6:pieces20:' + '\0'.repeat(20) + '4:name1:xe';
  const raw = Buffer.from('d4:info' + info + 'e', 'latin1');
  const { createHash } = await import('node:crypto');
  t.is(String(Metainfo.fromTorrentFile(raw).infoHash), createHash('sha1').update(Buffer.from(info, 'latin1')).digest('hex'));
});
test('a string length running past the end is refused', (t) => refuses(t, Buffer.from('d4:infod4:name99:xee'), /runs past the end/));
test('an integer with junk in it is refused', (t) => refuses(t, Buffer.from('d4:infoi12x3ee'), /not an integer/));

test('the infohash is the SHA-1 of the info dictionary, as another implementation computes it', async (t) => {
  const { default: parseTorrent } = await import('parse-torrent');
  const raw = buildTorrent({ files: [{ path: ['a', 'b.txt'], length: 3000 }, { path: ['c'], length: 40000 }] });
  const reference = (await parseTorrent(raw)) as { infoHash?: string };
  t.is(String(Metainfo.fromTorrentFile(raw).infoHash), String(reference.infoHash));
});
