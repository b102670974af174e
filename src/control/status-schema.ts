import type { DiscoveryReport } from '../discovery/index.js';
import type { SwarmPeerStats } from '../swarm/index.js';
import type { WebSeedStatus } from '../webseed/index.js';

/**
 * `btmount status --json`: one object, schema version 1, documented in the
 * README. Stable: fields are only ever added; a change of meaning or a removal
 * raises `schema`. Byte counts are integers, rates are bytes per second, times
 * are ISO 8601 strings (UTC) or seconds.
 */
export const STATUS_SCHEMA_VERSION = 1;

export interface MountStatus {
  schema: typeof STATUS_SCHEMA_VERSION;
  mountpoint: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  torrent: {
    name: string;
    infoHash: string;
    pieceLength: number;
    pieceCount: number;
    totalBytes: number;
    fileCount: number;
  };
  pieces: { have: number; total: number };
  transfer: {
    downloadRate: number;
    uploadRate: number;
    downloadedBytes: number;
    uploadedBytes: number;
  };
  peers: PeerStatus[];
  cache: {
    dir: string;
    usedBytes: number;
    /** `--cache-size`. */
    budgetBytes: number;
    /** The budget in force: whole pieces, lowered after the disk ran out of space. */
    effectiveBudgetBytes: number;
    /** Pieces a read is using now; never evicted while pinned. */
    pinnedBytes: number;
    /** hits / (hits + misses) over the reads that reached btmount (the kernel's page cache answers others); null before the first read. A hit is a read whose every piece was cached. */
    hitRate: number | null;
    hits: number;
    misses: number;
    evictions: number;
    /** Pieces found damaged on disk and dropped. */
    droppedCorrupt: number;
  };
  reads: {
    /** Reads that reached btmount (FUSE reads, not counting those the kernel answered). */
    count: number;
    bytes: number;
    failed: number;
    /** Reads blocked on pieces now. */
    waiting: number;
    /** The longest-waiting read, or null when none waits. */
    oldest: { path: string; piece: number; ageSeconds: number; reason: string } | null;
  };
  integrity: {
    /** Received pieces whose SHA-1 did not match (never handed out). */
    hashFailures: number;
    bannedPeers: string[];
  };
  warm: WarmJobStatus[];
  discovery: DiscoveryReport;
  fuse: FuseStatus;
  /** The web seeds (BEP 19) the mount may fetch from, one per URL; [] when it has none. */
  webSeeds: WebSeedReport[];
}

/**
 * One web seed: `state` is ready or backing-off (after a failure, until `retryAt`);
 * `lastFailure.kind` is one of the failure kinds in the README (http-status, short-body,
 * bad-content-range, range-ignored, redirect-loop, stalled, tls, connect, hash-mismatch, …);
 * `bytesFetched` counts every byte received, `piecesFetched` only pieces that verified.
 */
export type WebSeedReport = WebSeedStatus & {
  /** Pieces the swarm is fetching from this seed now. */
  inflight: number;
};

/** Which FUSE implementation serves the mount. */
export interface FuseStatus {
  /** 'native': the libfuse3 addon; 'fuse-native': the libfuse 2 fallback; null while mounting. */
  backend: 'native' | 'fuse-native' | null;
  /**
   * Native backend only (else null): reads answered in C from the cache, reads sent up to the
   * Reader, and reads whose slot was evicted and reused while C read it (sent to the Reader too).
   */
  nativeReads: { servedInC: number; splicedFromCache: number; sentToReader: number; slotReusedDuringRead: number } | null;
}

/**
 * A peer as the swarm counts it, in the schema's spelling: `client` is null
 * when unknown, and the swarm's `inflight` is `requests` here.
 */
export type PeerStatus = Omit<SwarmPeerStats, 'client' | 'inflight'> & {
  client: string | null;
  /** Our block requests outstanding at this peer. */
  requests: number;
};

export type WarmJobState = 'running' | 'complete' | 'partial' | 'failed' | 'cancelled';

/** One warm job, as `status` and `warm --json` show it. */
export interface WarmJobStatus {
  id: number;
  /**
   * running; complete (every asked byte is cached and verified); partial (ran to
   * its end, but some files are not cached: see `notFitting` and `missing`);
   * failed (stopped early: no data, or the mount stopping); cancelled.
   */
  state: WarmJobState;
  background: boolean;
  startedAt: string;
  finishedAt: string | null;
  /** What the job was asked for, each file counted once. */
  requested: { files: number; bytes: number };
  /** Files and bytes of the requested files that fit in the cache, which the job warms. */
  files: { done: number; total: number };
  bytes: { done: number; total: number };
  pieces: { done: number; total: number };
  /** Bytes that were already cached when the job started (counted in bytes.done). */
  alreadyCachedBytes: number;
  /** Bytes per second fetched by this job, over the last few seconds. */
  rate: number;
  /** Seconds to go at the current rate, or null when unknown. */
  etaSeconds: number | null;
  /** The file the job works on first. */
  current: string | null;
  /** Pieces requested from the swarm at once (in list order). */
  window: number;
  /** Requested files that do not fit in the cache, in order from `first`; not warmed. */
  notFitting: { files: number; bytes: number; first: string | null };
  /** Files that fit but are not in the cache at the end (fetch failed, or evicted again by reads). */
  missing: { files: number; bytes: number; first: string | null };
  /** Why the job ended the way it did, in words; null while running or when complete. */
  message: string | null;
}
