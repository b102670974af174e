import Fuse, { type Operations, type Stat, type StatFs } from 'fuse-native';
import { constants } from 'node:fs';
import type { Logger } from '../log.js';
import { TorrentDir, TorrentFile, type FileTree, type TreeNode } from '../metainfo/file-tree.js';
import type { OpenFile, Reader } from '../reader/reader.js';
import { DEFAULT_DIR_MODE, DEFAULT_FILE_MODE } from './fuse-options.js';

/** Every operation that would change the tree: a torrent is immutable. */
const WRITE_OPERATIONS = [
  'create', 'mknod', 'write', 'truncate', 'ftruncate', 'unlink', 'rmdir', 'mkdir', 'rename',
  'link', 'symlink', 'chmod', 'chown', 'utimens', 'setxattr', 'removexattr',
] as const;
const O_ACCMODE = 3;
const NEEDS_WRITE_ACCESS = constants.W_OK;
const ST_RDONLY = 1;

export interface FuseOpsOptions {
  tree: FileTree;
  reader: Reader;
  /** Shown as every entry's mtime: the torrent's creation date (content never changes). */
  mtime: Date;
  uid: number;
  gid: number;
  /** Permission bits (default 0444 and 0555); with default_permissions the kernel enforces them. */
  fileMode?: number;
  dirMode?: number;
  /** Told how long each read took, once it is answered (data or EIO): the metrics' latency histogram. */
  onReadDone?: (seconds: number) => void;
  log: Logger;
}

/**
 * The fuse-native operations of a mount: paths and errno only. Metadata comes
 * from the in-memory tree; file data only from the Reader. Nothing here knows
 * of pieces or peers.
 */
export function buildFuseOps(opts: FuseOpsOptions): Operations {
  const { tree, reader, log, onReadDone } = opts;
  const handles = new Map<number, OpenFile>();
  let nextHandle = 1;
  const fileMode = opts.fileMode ?? DEFAULT_FILE_MODE;
  const dirMode = opts.dirMode ?? DEFAULT_DIR_MODE;
  const totalBlocks = Math.ceil(tree.files.reduce((sum, f) => sum + f.length, 0) / 4096);

  const statOf = (node: TreeNode): Stat => {
    const dir = node instanceof TorrentDir;
    const size = dir ? 0 : node.length;
    return {
      mode: dir ? constants.S_IFDIR | dirMode : constants.S_IFREG | fileMode,
      uid: opts.uid,
      gid: opts.gid,
      size,
      // nlink 1 on directories tells `find` not to count subdirectories (computing it would cost O(entries)).
      nlink: 1,
      blocks: Math.ceil(size / 512),
      blksize: 128 * 1024,
      atime: opts.mtime,
      mtime: opts.mtime,
      ctime: opts.mtime,
    };
  };

  const ops: Operations = {
    getattr(path, cb) {
      const node = tree.lookup(path);
      if (!node) return cb(Fuse.ENOENT);
      cb(0, statOf(node));
    },

    readdir(path, cb) {
      const node = tree.lookup(path);
      if (!node) return cb(Fuse.ENOENT);
      if (!(node instanceof TorrentDir)) return cb(Fuse.ENOTDIR);
      const names = ['.', '..'];
      const stats = [statOf(node), statOf(node)];
      const files: TorrentFile[] = [];
      for (const [name, child] of node.children) {
        names.push(name);
        stats.push(statOf(child));
        if (child instanceof TorrentFile) files.push(child);
      }
      // A walk that opens the files in listing order is one read-ahead stream.
      reader.listed(path, files);
      cb(0, names, stats);
    },

    open(path, flags, cb) {
      const node = tree.lookup(path);
      if (!node) return cb(Fuse.ENOENT);
      if (node instanceof TorrentDir) return cb(Fuse.EISDIR);
      if ((flags & O_ACCMODE) !== constants.O_RDONLY || flags & constants.O_TRUNC) return cb(Fuse.EROFS);
      const fd = nextHandle++;
      handles.set(fd, reader.open(node));
      cb(0, fd);
    },

    release(_path, fd, cb) {
      handles.get(fd)?.close();
      handles.delete(fd);
      cb(0);
    },

    read(path, fd, buf, len, pos, cb) {
      const handle = handles.get(fd);
      if (!handle) return cb(Fuse.EBADF);
      const started = onReadDone ? performance.now() : 0;
      reader.readInto(handle, pos, len, buf).then(
        (n) => {
          onReadDone?.((performance.now() - started) / 1000);
          cb(n);
        },
        (err: Error) => {
          onReadDone?.((performance.now() - started) / 1000);
          log.debug({ path, pos, len, err: err.message }, 'read failed: EIO');
          cb(Fuse.EIO);
        },
      );
    },

    access(path, mode, cb) {
      if (!tree.lookup(path)) return cb(Fuse.ENOENT);
      cb(mode & NEEDS_WRITE_ACCESS ? Fuse.EROFS : 0);
    },

    statfs(_path, cb) {
      const stat: StatFs = {
        bsize: 4096, frsize: 4096, blocks: totalBlocks, bfree: 0, bavail: 0,
        files: tree.fileCount + tree.dirCount + 1, ffree: 0, favail: 0,
        fsid: 0, flag: ST_RDONLY, namemax: 255,
      };
      cb(0, stat);
    },
  };
  for (const name of WRITE_OPERATIONS) {
    ops[name] = (...args: unknown[]) => (args[args.length - 1] as (err: number) => void)(Fuse.EROFS);
  }
  return ops;
}
