import { InvalidTorrentError } from './errors.js';
import { sanitizeComponent, NAME_MAX_BYTES, truncateUtf8 } from './sanitize-path.js';
import type { ByteString } from './bencode-reader.js';
import type { DecodedFiles } from './decode-torrent.js';

/** One file of the torrent, at its place in the torrent's byte stream. */
export class TorrentFile {
  readonly kind = 'file';
  constructor(
    /** Position in the torrent's file list (pad files included). */
    readonly index: number,
    /** The folder it is listed in; undefined for pad files, which are not in the tree. */
    readonly folder: TorrentDir | undefined,
    /** Its name in the folder (sanitized, and tagged `~2`, … if taken); '' for pad files. */
    readonly name: string,
    readonly length: number,
    /** Byte offset of the file's first byte in the torrent's stream. */
    readonly offset: number,
    readonly pad: boolean,
  ) {}

  /**
   * Path inside the mount, '/'-separated, sanitized; '' for pad files. Made when asked: a
   * string kept per file was 32 bytes of heap each and a million more objects at mount.
   */
  get path(): string {
    return this.folder ? this.folder.childPrefix + this.name : '';
  }
}

export class TorrentDir {
  readonly kind = 'dir';
  readonly children = new Map<string, TreeNode>();
  /** `path/` ('' at the root), shared by the paths of its files rather than made per file. */
  readonly childPrefix: string;
  constructor(
    readonly path: string,
    /** Its place in the order directories were made (the root is 0): files are grouped by it. */
    readonly serial: number,
  ) {
    this.childPrefix = path === '' ? '' : `${path}/`;
  }
}

export type TreeNode = TorrentFile | TorrentDir;

/** Deeper or longer paths cannot be opened by ordinary programs (PATH_MAX is 4096 with the mountpoint). */
export const MAX_PATH_DEPTH = 256;
export const MAX_PATH_BYTES = 3072;

/**
 * The virtual directory tree of a torrent, built once. Lookup walks one Map per
 * path component; a listing is the directory's own Map. Tree-wide rules:
 *
 * - the mount root is the torrent's top folder (multi-file) or holds the one file (single-file);
 * - a directory wins over a file of the same path; the file, and any later duplicate
 *   file, gets `~2`, `~3`, … before its extension;
 * - a path deeper than 256 levels or longer than 3072 bytes refuses the whole torrent;
 * - BEP 47 pad files are left out of the tree but keep their place in `files`.
 */
export class FileTree {
  readonly root = new TorrentDir('', 0);
  /** Every file in torrent order, pad files included: the byte map is built on this. */
  readonly files: readonly TorrentFile[];
  readonly fileCount: number;
  readonly dirCount: number;

  constructor(singleFileName: ByteString | undefined, decoded: DecodedFiles) {
    let dirCount = 0;
    const makeDir = (parent: TorrentDir, name: string): TorrentDir => {
      const existing = parent.children.get(name);
      if (existing instanceof TorrentDir) return existing;
      const dir = new TorrentDir(parent.path === '' ? name : `${parent.path}/${name}`, ++dirCount);
      parent.children.set(name, dir);
      return dir;
    };

    // Pass 1: every directory, so that directories win over files of the same name.
    // Neighbouring files mostly share a folder: when the raw folder components equal
    // the previous file's, its parent is reused without sanitizing or hashing again.
    const placeParent = new Array<TorrentDir | undefined>(decoded.length);
    const placeName = new Array<string>(decoded.length);
    // Files of one folder need not be neighbours (a torrent may interleave its classes):
    // each raw folder path is sanitized and walked once, then found by its raw bytes.
    const folders = new Map<string, { parent: TorrentDir; dirBytes: number }>();
    // The last file with a plain name, whose folder the next file is compared with (-1: the top).
    let previous = -1;
    let previousParent = this.root;
    let previousDirBytes = 0;
    for (let i = 0; i < decoded.length; i++) {
      if (decoded.isPad(i)) {
        placeParent[i] = undefined;
        placeName[i] = '';
        continue;
      }
      // Only the name is made here; the folders are compared as bytes, without a view per component.
      const last = singleFileName ?? decoded.lastComponent(i);
      let name = sanitizeComponent(last);
      let parent = previousParent;
      let dirBytes = previousDirBytes;
      if (name === '' || !(singleFileName || decoded.sameFolders(i, previous))) {
        // Only with a plain file name: an empty one is dropped and the folder before it becomes the name.
        const key = name === '' || singleFileName ? undefined : decoded.folderKey(i);
        const known = key === undefined ? undefined : folders.get(key);
        if (known) {
          parent = known.parent;
          dirBytes = known.dirBytes;
        } else {
          const raw = singleFileName ? [singleFileName] : decoded.path(i);
          const parts = raw.map(sanitizeComponent).filter((p) => p !== '');
          if (parts.length === 0) throw new InvalidTorrentError(`file #${i} has an empty path`);
          if (parts.length > MAX_PATH_DEPTH) {
            throw new InvalidTorrentError(`file #${i} is nested ${parts.length} levels deep (limit ${MAX_PATH_DEPTH})`);
          }
          name = parts.pop()!;
          parent = this.root;
          for (const dir of parts) parent = makeDir(parent, dir);
          dirBytes = parts.reduce((sum, p) => sum + Buffer.byteLength(p) + 1, 0);
          if (key !== undefined) folders.set(key, { parent, dirBytes });
        }
        // Only a plain folder path is worth remembering for the next file.
        if (last.length > 0 && !singleFileName) {
          previous = i;
          previousParent = parent;
          previousDirBytes = dirBytes;
        }
      }
      const bytes = dirBytes + Buffer.byteLength(name) + 1;
      if (bytes > MAX_PATH_BYTES) {
        throw new InvalidTorrentError(`file #${i} has a path of ${bytes} bytes (limit ${MAX_PATH_BYTES})`);
      }
      placeParent[i] = parent;
      placeName[i] = name;
    }

    // Pass 2: files, renamed where their name is already taken. Folder by folder (files of a
    // folder in torrent order, so names and `~2` tags are as in torrent order): a torrent that
    // interleaves its folders would otherwise touch another folder's Map with every file, and at
    // a million files those cache misses were most of the tree's time.
    const files = new Array<TorrentFile>(decoded.length);
    const offsets = new Float64Array(decoded.length);
    let offset = 0;
    for (let i = 0; i < decoded.length; i++) {
      offsets[i] = offset;
      offset += decoded.lengthOf(i);
    }
    let fileCount = 0;
    for (const i of byFolder(placeParent, dirCount + 1)) {
      const parent = placeParent[i];
      const name = parent ? freeName(parent, placeName[i]!) : '';
      const entry = new TorrentFile(i, parent, name, decoded.lengthOf(i), offsets[i]!, decoded.isPad(i));
      if (parent) {
        parent.children.set(name, entry);
        fileCount++;
      }
      files[i] = entry;
    }
    this.files = files;
    this.fileCount = fileCount;
    this.dirCount = dirCount;
  }

  /** The node at `path` ('a/b', '/a/b' and '' or '/' for the root), or undefined. */
  lookup(path: string): TreeNode | undefined {
    let node: TreeNode = this.root;
    let start = 0;
    while (start < path.length) {
      let end = path.indexOf('/', start);
      if (end < 0) end = path.length;
      if (end > start) {
        if (!(node instanceof TorrentDir)) return undefined;
        const child: TreeNode | undefined = node.children.get(path.slice(start, end));
        if (!child) return undefined;
        node = child;
      }
      start = end + 1;
    }
    return node;
  }

  /** Files in the tree (no pad files), in torrent order. */
  *visibleFiles(): Iterable<TorrentFile> {
    for (const file of this.files) if (!file.pad) yield file;
  }
}

/**
 * File indices grouped by their folder's serial, torrent order kept within a folder (a
 * counting sort); pad files (no folder) come first.
 */
function byFolder(parents: ReadonlyArray<TorrentDir | undefined>, folderCount: number): Int32Array {
  const start = new Int32Array(folderCount + 2);
  for (const parent of parents) start[(parent ? parent.serial + 1 : 0) + 1]!++;
  for (let k = 1; k < start.length; k++) start[k]! += start[k - 1]!;
  const order = new Int32Array(parents.length);
  for (let i = 0; i < parents.length; i++) {
    const parent = parents[i];
    order[start[parent ? parent.serial + 1 : 0]!++] = i;
  }
  return order;
}

function freeName(dir: TorrentDir, name: string): string {
  if (!dir.children.has(name)) return name;
  const dot = name.lastIndexOf('.');
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : '';
  for (let n = 2; ; n++) {
    const tag = `~${n}${ext}`;
    const candidate = truncateUtf8(stem, NAME_MAX_BYTES - Buffer.byteLength(tag)) + tag;
    if (!dir.children.has(candidate)) return candidate;
  }
}
