import { TorrentDir, type FileTree, type TorrentFile } from '../../metainfo/file-tree.js';

/**
 * The file tree as flat typed arrays for the native backend: node 0 is the root
 * (inode node + 1), and the children of every directory are contiguous, in
 * breadth-first order, so C answers readdir by walking an index range. No per-file
 * JS object is made; C copies the arrays at mount, so they can be dropped after.
 */
export interface TreeSnapshot {
  arrays: {
    /** UTF-8 names back to back; node i's name is names[nameOffsets[i] .. nameOffsets[i + 1]). */
    names: Uint8Array;
    nameOffsets: Uint32Array;
    parents: Uint32Array;
    firstChild: Uint32Array;
    childCount: Uint32Array;
    isDir: Uint8Array;
    sizes: Float64Array;
    /** A file's first byte in the torrent's byte stream. */
    streamOffsets: Float64Array;
    /** The file's index in FileTree.files; -1 for a directory. */
    fileIndex: Int32Array;
  };
  nodeCount: number;
  /** Bytes of all files in the tree (pad files are not in it). */
  totalBytes: number;
  /** The directories by node (few: a folder per class, not per file). */
  dirs: Map<number, TorrentDir>;
}

export function snapshotTree(tree: FileTree): TreeSnapshot {
  const nodeCount = 1 + tree.fileCount + tree.dirCount;
  const parents = new Uint32Array(nodeCount);
  const firstChild = new Uint32Array(nodeCount);
  const childCount = new Uint32Array(nodeCount);
  const isDir = new Uint8Array(nodeCount);
  const sizes = new Float64Array(nodeCount);
  const streamOffsets = new Float64Array(nodeCount);
  const fileIndex = new Int32Array(nodeCount).fill(-1);
  // Names are gathered, then encoded in one call: a Buffer.write per name was most of the snapshot's time.
  const nameList: string[] = new Array<string>(nodeCount);
  nameList[0] = '';
  let totalBytes = 0;

  // Breadth-first: a directory's children get consecutive node numbers when it is dequeued.
  const queue: TorrentDir[] = [tree.root];
  const queueNode: number[] = [0];
  const dirs = new Map<number, TorrentDir>([[0, tree.root]]);
  isDir[0] = 1;
  let next = 1;
  for (let head = 0; head < queue.length; head++) {
    const dir = queue[head]!;
    const dirNode = queueNode[head]!;
    firstChild[dirNode] = next;
    childCount[dirNode] = dir.children.size;
    // forEach, not for-of: no [name, child] pair allocated per entry (a million of them at ImageNet scale).
    dir.children.forEach((child, name) => {
      const node = next++;
      parents[node] = dirNode;
      nameList[node] = name;
      if (child instanceof TorrentDir) {
        isDir[node] = 1;
        queue.push(child);
        queueNode.push(node);
        dirs.set(node, child);
      } else {
        const file: TorrentFile = child;
        sizes[node] = file.length;
        streamOffsets[node] = file.offset;
        fileIndex[node] = file.index;
        totalBytes += file.length;
      }
    });
  }
  if (next !== nodeCount) throw new Error(`file tree snapshot: ${next} nodes, expected ${nodeCount}`);
  const { names, nameOffsets } = encodeNames(nameList);
  return {
    totalBytes,
    arrays: {
      names,
      nameOffsets,
      parents,
      firstChild,
      childCount,
      isDir,
      sizes,
      streamOffsets,
      fileIndex,
    },
    nodeCount,
    dirs,
  };
}

/** UTF-8 names back to back and where each starts (one more offset than names: the end). */
function encodeNames(list: readonly string[]): { names: Buffer; nameOffsets: Uint32Array } {
  const joined = list.join('');
  const names = Buffer.from(joined, 'utf8');
  const nameOffsets = new Uint32Array(list.length + 1);
  // All one byte per character (the usual case): a name's bytes are its length.
  const oneByte = names.length === joined.length;
  let at = 0;
  for (let i = 0; i < list.length; i++) {
    at += oneByte ? list[i]!.length : Buffer.byteLength(list[i]!, 'utf8');
    nameOffsets[i + 1] = at;
  }
  return { names, nameOffsets };
}
