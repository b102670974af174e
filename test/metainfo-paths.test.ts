import test from 'ava';
import { Metainfo, InvalidTorrentError, TorrentDir, TorrentFile } from '../src/metainfo/index.js';
import { buildTorrent, type BuilderFile } from './helpers/torrent-builder.js';

const tree = (files: BuilderFile[]) => Metainfo.fromTorrentFile(buildTorrent({ files })).tree;
const paths = (files: BuilderFile[]) => [...tree(files).visibleFiles()].map((f) => f.path);

test('".." and "." components are encoded, never meaning up or here', (t) => {
  t.deepEqual(paths([{ path: ['..', '..', 'etc', 'passwd'], length: 1 }, { path: ['.', 'x'], length: 1 }]), [
    '%2E%2E/%2E%2E/etc/passwd',
    '%2E/x',
  ]);
});

test('a component with "/" (an absolute path smuggled in one name) is encoded', (t) => {
  t.deepEqual(paths([{ path: ['/etc/passwd'], length: 1 }, { path: ['a/b'], length: 1 }]), ['%2Fetc%2Fpasswd', 'a%2Fb']);
});

test('backslash is a legal Linux name character and is kept as one name', (t) => {
  const tr = tree([{ path: ['a\\b'], length: 1 }]);
  t.true(tr.lookup('a\\b') instanceof TorrentFile);
  t.is(tr.root.children.size, 1);
});

test('NUL inside a name is encoded', (t) => {
  t.deepEqual(paths([{ path: ['a\0b'], length: 1 }]), ['a%00b']);
});

test('empty components are dropped', (t) => {
  t.deepEqual(paths([{ path: ['', 'a', '', 'b'], length: 1 }]), ['a/b']);
});

test('a path made only of empty components is refused', (t) => {
  const err = t.throws(() => tree([{ path: [''], length: 1 }]), { instanceOf: InvalidTorrentError });
  t.regex(err!.message, /file #0 has an empty path/);
});

test('invalid UTF-8 bytes become %XX and valid text stays readable', (t) => {
  const name = Buffer.concat([Buffer.from('café-'), Buffer.from([0xff, 0xc3]), Buffer.from('.jpg')]);
  t.deepEqual(paths([{ path: [name], length: 1 }]), ['café-%FF%C3.jpg']);
});

test('UTF-16 surrogates encoded in UTF-8 are invalid and get encoded', (t) => {
  t.deepEqual(paths([{ path: [Buffer.from([0x61, 0xed, 0xa0, 0x80])], length: 1 }]), ['a%ED%A0%80']);
});

test('names over 255 bytes are cut, keep their extension and stay distinct', (t) => {
  const long1 = 'é'.repeat(200) + 'one.jpg';
  const long2 = 'é'.repeat(200) + 'two.jpg';
  const [a, b] = paths([{ path: [long1], length: 1 }, { path: [long2], length: 1 }]);
  t.true(Buffer.byteLength(a!) <= 255);
  t.true(Buffer.byteLength(b!) <= 255);
  t.true(a!.endsWith('.jpg'));
  t.not(a, b);
  t.false(a!.includes('\uFFFD'), 'no character was split');
});

test('duplicate paths get ~2, ~3 before the extension', (t) => {
  t.deepEqual(paths([{ path: ['a.txt'], length: 1 }, { path: ['a.txt'], length: 2 }, { path: ['a.txt'], length: 3 }]), [
    'a.txt',
    'a~2.txt',
    'a~3.txt',
  ]);
});

test('a file whose path is a directory of another file: the directory wins, in either order', (t) => {
  for (const files of [
    [{ path: ['a'], length: 1 }, { path: ['a', 'b'], length: 1 }],
    [{ path: ['a', 'b'], length: 1 }, { path: ['a'], length: 1 }],
  ]) {
    const tr = tree(files);
    t.true(tr.lookup('a') instanceof TorrentDir);
    t.true(tr.lookup('a/b') instanceof TorrentFile);
    t.true(tr.lookup('a~2') instanceof TorrentFile);
  }
});

test('thousands of levels of nesting refuse the torrent', (t) => {
  const err = t.throws(() => tree([{ path: Array.from({ length: 5000 }, () => 'd'), length: 1 }]), {
    instanceOf: InvalidTorrentError,
  });
  t.regex(err!.message, /nested 5000 levels deep/);
});

test('a path over 3072 bytes refuses the torrent', (t) => {
  const err = t.throws(() => tree([{ path: Array.from({ length: 20 }, () => 'x'.repeat(200)), length: 1 }]), {
    instanceOf: InvalidTorrentError,
  });
  t.regex(err!.message, /path of \d+ bytes/);
});

test('pad files are hidden from the tree but keep their bytes in the map', (t) => {
  const m = Metainfo.fromTorrentFile(
    buildTorrent({
      files: [
        { path: ['a'], length: 100 },
        { path: ['.pad', '16284'], length: 16284, attr: 'p' },
        { path: ['b'], length: 10 },
      ],
    }),
  );
  t.deepEqual([...m.tree.visibleFiles()].map((f) => f.path), ['a', 'b']);
  t.is(m.tree.fileCount, 2);
  t.is(m.tree.root.children.size, 2);
  const b = m.tree.lookup('b') as TorrentFile;
  t.is(b.offset, 16384, 'b starts after the padding');
  t.deepEqual(m.byteMap.spansOfFileRange(b, 0, 10), [{ piece: 1, offsetInPiece: 0, length: 10 }]);
});

test('a single-file torrent named ".." is a file called %2E%2E in the root', (t) => {
  const m = Metainfo.fromTorrentFile(buildTorrent({ name: '..', length: 5 }));
  t.true(m.tree.lookup('%2E%2E') instanceof TorrentFile);
});

test('lookup walks the tree and answers for the root, misses, and paths through files', (t) => {
  const tr = tree([{ path: ['train', 'cat', '1.jpg'], length: 5 }, { path: ['train', 'dog', '2.jpg'], length: 0 }]);
  t.is(tr.lookup('/'), tr.root);
  t.is(tr.lookup(''), tr.root);
  t.is((tr.lookup('/train/cat/1.jpg') as TorrentFile).length, 5);
  t.is((tr.lookup('train//dog/2.jpg') as TorrentFile).length, 0);
  t.is(tr.lookup('train/cat/1.jpg/x'), undefined);
  t.is(tr.lookup('nope'), undefined);
  t.deepEqual([...(tr.lookup('train') as TorrentDir).children.keys()], ['cat', 'dog']);
  t.is(tr.dirCount, 3);
});

test('files of one folder need not be neighbours: interleaved folders, their duplicates and an empty last component', (t) => {
  const tr = tree([
    { path: ['train', 'cat', '1.jpg'], length: 1 },
    { path: ['train', 'dog', '1.jpg'], length: 1 },
    { path: ['train', 'cat', '2.jpg'], length: 1 },
    { path: ['train', 'dog', '1.jpg'], length: 1 },
    { path: ['train', 'cat', ''], length: 1 },
    { path: ['val', 'cat', '1.jpg'], length: 1 },
  ]);
  t.deepEqual([...tr.visibleFiles()].map((f) => f.path), [
    'train/cat/1.jpg',
    'train/dog/1.jpg',
    'train/cat/2.jpg',
    'train/dog/1~2.jpg',
    'train/cat~2',
    'val/cat/1.jpg',
  ]);
  t.deepEqual([...(tr.lookup('train/cat') as TorrentDir).children.keys()], ['1.jpg', '2.jpg']);
  t.is(tr.dirCount, 5);
});
