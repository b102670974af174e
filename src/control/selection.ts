import path from 'node:path';
import { TorrentDir, type FileTree, type TorrentFile, type TreeNode } from '../metainfo/index.js';

/**
 * Paths named by a user, as the mount shows them, turned into the torrent's
 * files in the order given. The client side turns command-line paths into
 * mount-relative ones; the daemon side looks them up in the tree.
 */

/** A path given on the command line that lies outside the mount. */
export class OutsideMountError extends Error {
  constructor(
    readonly given: string,
    readonly mountpoint: string,
  ) {
    super(`${given} is outside the mount ${mountpoint}`);
    this.name = 'OutsideMountError';
  }
}

/**
 * A command-line path → a path relative to the mount root ('' = the root).
 * Absolute paths must lie under the mountpoint; relative ones are relative to
 * the current directory when that is inside the mount, else to the mount root
 * (`btmount warm /data train/` means /data/train).
 */
export function mountRelativePath(mountpoint: string, given: string, cwd = process.cwd()): string {
  const root = path.resolve(mountpoint);
  let absolute: string;
  if (path.isAbsolute(given)) absolute = path.resolve(given);
  else if (isInside(root, path.resolve(cwd))) absolute = path.resolve(cwd, given);
  else absolute = path.resolve(root, given);
  if (!isInside(root, absolute)) throw new OutsideMountError(given, root);
  return path.relative(root, absolute).split(path.sep).join('/');
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The paths among `paths` the tree does not have. */
export function missingPaths(tree: FileTree, paths: readonly string[]): string[] {
  return paths.filter((p) => tree.lookup(p) === undefined);
}

/** Files of a node: the file itself, or every file under a directory (depth first, in listing order). */
export function* filesUnder(node: TreeNode): Generator<TorrentFile> {
  if (!(node instanceof TorrentDir)) {
    yield node;
    return;
  }
  const stack: Array<Iterator<TreeNode>> = [node.children.values()];
  while (stack.length > 0) {
    const next = stack[stack.length - 1]!.next();
    if (next.done) {
      stack.pop();
      continue;
    }
    const child = next.value;
    if (child instanceof TorrentDir) stack.push(child.children.values());
    else yield child;
  }
}

/**
 * The files of `paths` in the order given, each once (at its first mention).
 * Throws if a path is not in the tree: call `missingPaths` first for a message.
 */
export function orderedFiles(tree: FileTree, paths: readonly string[]): TorrentFile[] {
  const seen = new Uint8Array(tree.files.length);
  const out: TorrentFile[] = [];
  for (const p of paths) {
    const node = tree.lookup(p);
    if (!node) throw new Error(`${p} is not in the torrent`);
    for (const file of filesUnder(node)) {
      if (seen[file.index]) continue;
      seen[file.index] = 1;
      out.push(file);
    }
  }
  return out;
}
