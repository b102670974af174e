import type { DiscoveryReport } from '../discovery/index.js';
import type { Logger } from '../log.js';
import type { Metainfo, PieceIndex, TorrentFile } from '../metainfo/index.js';
import type { Priority } from '../scheduler/index.js';
import type { SwarmStats } from '../swarm/index.js';
import type { FuseStatus } from './status-schema.js';
import type { WebSeedStatus } from '../webseed/index.js';

/**
 * What the control server sees of a running mount (MountSession provides it):
 * only the parts of the cache, the swarm and the reader that status, warm,
 * check and evict use, so control depends on no concrete class.
 */
export interface MountView {
  mountpoint: string;
  metainfo: Metainfo;
  cache: CacheView;
  swarm: SwarmView;
  reader: ReaderView;
  startedAt: Date;
  /** Cache bytes warm leaves free for live reads (their read-ahead window). */
  warmReserveBytes: number;
  discovery(): DiscoveryReport;
  /** The FUSE backend serving the mount (none yet while the control socket starts before it). */
  fuse?(): FuseStatus;
  /**
   * Brings the Reader's counts up to date with reads the FUSE backend answered on its own
   * (the native backend reports its cache hits in batches); called before a status is built.
   */
  settleReads?(): void;
  /** The mount's web seeds (url-list, ws=, --web-seed); none when absent. */
  webSeeds?(): WebSeedStatus[];
  log: Logger;
}

/** The piece cache: what it holds and how full it is; `evict` for `warm --evict`. */
export interface CacheView {
  readonly dir: string;
  readonly layout: { pieceSize(index: PieceIndex): number };
  readonly haveCount: number;
  readonly bytesUsed: number;
  readonly budgetBytes: number;
  readonly effectiveBudgetBytes: number;
  readonly pinnedBytes: number;
  readonly stats: { readonly evictions: number; readonly droppedCorrupt: number };
  has(index: PieceIndex): boolean;
  /** Rejects with PiecePinnedError while a read uses the piece. */
  evict(index: PieceIndex): Promise<void>;
}

/** The swarm: its counters, and why wanted pieces are not arriving. */
export interface SwarmView {
  stats(): SwarmStats;
  waitingReason(): string;
}

/** The Reader: its counters, the reads blocked now, and the one path warm fetches through. */
export interface ReaderView {
  readonly stats: { readonly reads: number; readonly bytesRead: number; readonly cacheHits: number; readonly cacheMisses: number; readonly failedReads: number };
  readonly waiting: ReadonlyMap<number, { path: string; piece: PieceIndex; since: number }>;
  prefetch(file: TorrentFile, offset: number, length: number, priority: Priority, signal?: AbortSignal): Promise<void>;
}
