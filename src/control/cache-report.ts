import type { ByteMap, FileTree, TorrentFile } from '../metainfo/index.js';
import { pieceIndex, type PieceIndex } from '../metainfo/piece-layout.js';
import { PiecePinnedError } from '../store/errors.js';
import type { CheckResult, EvictResult, PathReport } from './protocol.js';
import { filesUnder, orderedFiles } from './selection.js';

/** `warm --check` and `warm --evict`: what the cache holds of some paths, and dropping it. Nothing is fetched. */

interface CacheView {
  has(index: PieceIndex): boolean;
}

/** Bytes of `file` in pieces the cache holds. */
function cachedBytesOf(byteMap: ByteMap, cache: CacheView, file: TorrentFile): number {
  let bytes = 0;
  for (const span of byteMap.spansOfFileRange(file, 0, file.length)) if (cache.has(span.piece)) bytes += span.length;
  return bytes;
}

function emptyReport(): Omit<PathReport, 'path' | 'kind'> {
  return { files: 0, bytes: 0, filesCached: 0, cachedBytes: 0 };
}

function add(report: Omit<PathReport, 'path' | 'kind'>, file: TorrentFile, cached: number): void {
  report.files++;
  report.bytes += file.length;
  report.cachedBytes += cached;
  if (cached === file.length) report.filesCached++;
}

/** Paths must be in the tree (check with missingPaths first). */
export function checkPaths(tree: FileTree, byteMap: ByteMap, cache: CacheView, paths: readonly string[]): CheckResult {
  const counted = new Uint8Array(tree.files.length);
  const total = emptyReport();
  const reports: PathReport[] = [];
  for (const p of paths) {
    const node = tree.lookup(p)!;
    const report: PathReport = { path: p, kind: node.kind, ...emptyReport() };
    for (const file of filesUnder(node)) {
      const cached = cachedBytesOf(byteMap, cache, file);
      add(report, file, cached);
      if (!counted[file.index]) {
        counted[file.index] = 1;
        add(total, file, cached);
      }
    }
    reports.push(report);
  }
  return { paths: reports, total };
}

/**
 * Drops every piece holding bytes of the paths' files. A piece shared with a
 * file not named goes too (the cache holds whole pieces). Pieces a read has
 * pinned stay, and are counted.
 */
export async function evictPaths(
  tree: FileTree,
  byteMap: ByteMap,
  store: CacheView & { evict(index: PieceIndex): Promise<void>; layout: { pieceSize(index: PieceIndex): number } },
  paths: readonly string[],
): Promise<EvictResult> {
  const files = orderedFiles(tree, paths);
  const seen = new Uint8Array(byteMap.layout.pieceCount);
  const result: EvictResult = { files: files.length, pieces: 0, bytes: 0, pinnedPieces: 0 };
  for (const file of files) {
    const range = byteMap.pieceRangeOfFile(file);
    if (!range) continue;
    for (let p = range.first; p <= range.last; p++) {
      if (seen[p]) continue;
      seen[p] = 1;
      const index = pieceIndex(p);
      if (!store.has(index)) continue;
      try {
        await store.evict(index);
        result.pieces++;
        result.bytes += store.layout.pieceSize(index);
      } catch (err) {
        if (!(err instanceof PiecePinnedError)) throw err;
        result.pinnedPieces++;
      }
    }
  }
  return result;
}
