import fc from 'fast-check';
import { InvalidTorrentError, Metainfo } from '../../../src/metainfo/index.js';
import { MAX_PATH_BYTES, MAX_PATH_DEPTH } from '../../../src/metainfo/file-tree.js';
import { benBytes, benBytesOf, benDict, benIntOf, benList, benValue, deepNesting, hostileNames, interestingInts, orderedDict } from '../bencode-gen.js';
import { expect, FuzzFinding, type FuzzTarget } from '../target.js';

const name = fc.oneof(hostileNames, fc.stringMatching(/^[a-z0-9_.-]{1,12}$/));
const lengthField = fc.oneof(
  { weight: 6, arbitrary: fc.nat(70_000).map(benIntOf) },
  { weight: 2, arbitrary: interestingInts.map(benIntOf) },
  { weight: 1, arbitrary: benValue },
);
const pathField = fc.oneof(
  { weight: 8, arbitrary: fc.array(name, { minLength: 1, maxLength: 4 }).map((parts) => benList(parts.map((p) => benBytesOf(Buffer.from(p, 'utf8'))))) },
  { weight: 1, arbitrary: fc.constant(benList([])) },
  { weight: 1, arbitrary: benValue },
);
const fileEntry = fc
  .record({
    length: lengthField,
    path: pathField,
    attr: fc.option(fc.constantFrom('p', 'x', 'h', 'px'), { nil: undefined }),
    utf8Path: fc.option(pathField, { nil: undefined, freq: 8 }),
    disorder: fc.nat(6),
  })
  .map(({ length, path, attr, utf8Path, disorder }) => {
    const entries: Array<[string, Buffer]> = [['length', length], ['path', path]];
    if (attr !== undefined) entries.push(['attr', benBytesOf(Buffer.from(attr))]);
    if (utf8Path !== undefined) entries.push(['path.utf-8', utf8Path]);
    return { bytes: orderedDict(entries, disorder), length };
  });

/** The number a bencoded integer field holds, if it is a plain small one. */
function plainInt(b: Buffer): number | undefined {
  const m = /^i(-?\d+)e$/.exec(b.toString('latin1'));
  return m ? Number(m[1]) : undefined;
}

/** Torrent-shaped dictionaries: the right keys, with values that are right, odd or wrong. */
const torrentShaped = fc
  .record({
    name: fc.oneof(name.map((n) => benBytesOf(Buffer.from(n, 'utf8'))), benBytes),
    pieceLength: fc.oneof(fc.constantFrom(16384, 32768, 65536, 2 ** 26, 2 ** 27, 0, 1000, -16384).map(benIntOf), benValue),
    files: fc.option(fc.array(fileEntry, { maxLength: 8 }), { nil: undefined }),
    singleLength: lengthField,
    pieces: fc.oneof({ weight: 5, arbitrary: fc.constant('consistent' as const) }, { weight: 1, arbitrary: benBytes }),
    private: fc.option(benValue, { nil: undefined, freq: 4 }),
    announce: fc.option(fc.oneof(benValue, fc.constant(benBytesOf(Buffer.from('http://127.0.0.1:1/announce')))), { nil: undefined }),
    top: fc.array(fc.tuple(fc.constantFrom('announce-list', 'url-list', 'creation date', 'comment', 'created by', 'info'), benValue), { maxLength: 3 }),
    disorder: fc.nat(6),
  })
  .map((t) => {
    const info: Array<[string, Buffer]> = [['name', t.name], ['piece length', t.pieceLength]];
    let total = 0;
    if (t.files) {
      info.push(['files', benList(t.files.map((f) => f.bytes))]);
      for (const f of t.files) total += Math.max(0, plainInt(f.length) ?? 0);
    } else {
      info.push(['length', t.singleLength]);
      total = Math.max(0, plainInt(t.singleLength) ?? 0);
    }
    const pl = plainInt(t.pieceLength);
    if (t.pieces === 'consistent') {
      const count = pl && pl > 0 ? Math.ceil(total / pl) : 1;
      info.push(['pieces', benBytesOf(Buffer.alloc(Math.min(count, 10_000) * 20, 7))]);
    } else info.push(['pieces', t.pieces]);
    if (t.private) info.push(['private', t.private]);
    const top: Array<[string, Buffer]> = [['info', orderedDict(info, t.disorder)], ...t.top];
    if (t.announce) top.push(['announce', t.announce]);
    return orderedDict(top, t.disorder);
  });

/** A torrent-shaped input with a few bytes changed, cut or doubled. */
const mutated = fc
  .tuple(torrentShaped, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'cut', 'dup')), { minLength: 1, maxLength: 4 }))
  .map(([bytes, edits]) => {
    let b = Buffer.from(bytes);
    for (const [at, value, how] of edits) {
      const i = at % Math.max(1, b.length);
      if (how === 'set') b[i] = value;
      else if (how === 'cut') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + (value % 8))]);
      else b = Buffer.concat([b.subarray(0, i), b.subarray(i, i + 1 + (value % 8)), b.subarray(i)]);
    }
    return b;
  });

const anyTorrentBytes = fc.oneof(
  { weight: 6, arbitrary: torrentShaped },
  { weight: 3, arbitrary: mutated },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: benValue },
  { weight: 1, arbitrary: deepNesting },
  { weight: 1, arbitrary: fc.constant(benDict([])) },
);

/** What must hold for any torrent btmount accepts: paths a mount can show, and nothing outside the tree. */
function checkAccepted(m: Metainfo): void {
  expect(m.infoHash.length === 40, 'infohash is not 40 hex digits');
  expect(m.layout.pieceCount >= 0 && m.layout.pieceCount === Math.ceil(m.layout.totalLength / m.layout.pieceLength), 'piece count does not cover the bytes');
  expect(m.name.length > 0 && !m.name.includes('/') && !m.name.includes('\0') && m.name !== '.' && m.name !== '..', `unsafe torrent name ${JSON.stringify(m.name)}`);
  let offset = 0;
  const seen = new Set<string>();
  for (const f of m.files) {
    expect(f.offset === offset, `file #${f.index} at offset ${f.offset}, expected ${offset}`);
    offset += f.length;
    if (f.pad) continue;
    const parts = f.path.split('/');
    expect(parts.length <= MAX_PATH_DEPTH && Buffer.byteLength(f.path) <= MAX_PATH_BYTES, `path too deep or long: ${f.path.length} chars`);
    for (const p of parts) {
      expect(p !== '' && p !== '.' && p !== '..' && !p.includes('\0') && Buffer.byteLength(p) <= 255, `unsafe path component ${JSON.stringify(p)} in ${JSON.stringify(f.path)}`);
    }
    expect(!seen.has(f.path), `two files at ${JSON.stringify(f.path)}`);
    seen.add(f.path);
    expect(m.tree.lookup(f.path) === f, `lookup(${JSON.stringify(f.path)}) is not the file`);
  }
  expect(offset === m.layout.totalLength, 'files do not add up to the total length');
}

export const torrentTarget: FuzzTarget = {
  name: 'torrent',
  what: '.torrent bytes: parse, validate, sanitize paths, build the tree',
  input: anyTorrentBytes.map((b) => [b]),
  async run([raw]) {
    let m: Metainfo;
    try {
      m = Metainfo.fromTorrentFile(raw!);
    } catch (err) {
      if (err instanceof InvalidTorrentError) {
        expect(err.message.length > 0 && !err.message.includes('\n'), `refusal is not one line: ${JSON.stringify(err.message)}`);
        return;
      }
      throw new FuzzFinding(`parse threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
    }
    checkAccepted(m);
  },
};
