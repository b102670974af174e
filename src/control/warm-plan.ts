import type { ByteMap, TorrentFile } from '../metainfo/index.js';
import { pieceIndex, type PieceIndex } from '../metainfo/piece-layout.js';

/**
 * What a warm job fetches, decided before it starts: the requested files in
 * order, cut where the cache would be full, and their pieces in that order,
 * each once. Everything after the cut is reported, never fetched: a later
 * file must not push an earlier one out of the cache.
 */
export interface WarmPlan {
  /** The files that fit, in the order asked. */
  readonly files: readonly TorrentFile[];
  /** Their pieces, in order of first use, each once. */
  readonly pieces: Uint32Array;
  /** For each planned piece: the position in `files` of a file it belongs to. */
  readonly pieceFile: Uint32Array;
  readonly requested: { files: number; bytes: number };
  readonly notFitting: { files: number; bytes: number; first: string | null };
}

/** `capacityPieces`: how many pieces the job may keep in the cache at once. */
export function planWarm(byteMap: ByteMap, files: readonly TorrentFile[], capacityPieces: number): WarmPlan {
  const seen = new Uint8Array(byteMap.layout.pieceCount);
  const pieces: number[] = [];
  const pieceFile: number[] = [];
  const fitting: TorrentFile[] = [];
  let requestedBytes = 0;
  let cut = -1;
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    requestedBytes += file.length;
    if (cut >= 0) continue;
    const range = byteMap.pieceRangeOfFile(file);
    let added = 0;
    if (range) for (let p = range.first; p <= range.last; p++) if (!seen[p]) added++;
    if (pieces.length + added > capacityPieces) {
      cut = i;
      continue;
    }
    if (range) {
      for (let p = range.first; p <= range.last; p++) {
        if (seen[p]) continue;
        seen[p] = 1;
        pieces.push(p);
        pieceFile.push(fitting.length);
      }
    }
    fitting.push(file);
  }
  const rest = cut >= 0 ? files.slice(cut) : [];
  return {
    files: fitting,
    pieces: Uint32Array.from(pieces),
    pieceFile: Uint32Array.from(pieceFile),
    requested: { files: files.length, bytes: requestedBytes },
    notFitting: { files: rest.length, bytes: rest.reduce((s, f) => s + f.length, 0), first: rest[0]?.path ?? null },
  };
}

/** The piece at position `i` of a plan, typed. */
export const plannedPiece = (plan: WarmPlan, i: number): PieceIndex => pieceIndex(plan.pieces[i]!);

/** Bytes requested from the swarm at once by one job: enough to fill fast links, few enough to keep the order. */
export const WARM_WINDOW_BYTES = 64 * 1024 * 1024;
const MIN_WINDOW = 4;
const MAX_WINDOW = 256;

export function warmWindow(pieceLength: number): number {
  return Math.max(MIN_WINDOW, Math.min(MAX_WINDOW, Math.ceil(WARM_WINDOW_BYTES / pieceLength)));
}

/**
 * Pieces a warm job may fill: the whole torrent when the cache holds it all;
 * otherwise the budget in force, less the pieces reads have pinned and a
 * reserve for live reads (their read-ahead), so warming does not evict its own
 * first files as soon as a training job starts reading.
 */
export function warmCapacityPieces(cache: {
  pieceCount: number;
  pieceLength: number;
  effectiveBudgetBytes: number;
  pinnedBytes: number;
  reserveBytes: number;
}): number {
  const slots = Math.floor(cache.effectiveBudgetBytes / cache.pieceLength);
  if (slots >= cache.pieceCount) return cache.pieceCount;
  const pinned = Math.ceil(cache.pinnedBytes / cache.pieceLength);
  const reserve = Math.ceil(cache.reserveBytes / cache.pieceLength);
  return Math.max(0, slots - pinned - reserve);
}
