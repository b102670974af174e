import type { MountView } from './mount-view.js';
import { STATUS_SCHEMA_VERSION, type MountStatus, type WarmJobStatus } from './status-schema.js';

/** Builds the `status` object of a mount from its parts' counters, at `now`. */
export function buildStatus(view: MountView, jobs: WarmJobStatus[], now = Date.now()): MountStatus {
  view.settleReads?.();
  const { metainfo, cache, swarm, reader } = view;
  const swarmStats = swarm.stats();
  const { cacheHits: hits, cacheMisses: misses } = reader.stats;
  let oldest: MountStatus['reads']['oldest'] = null;
  for (const w of reader.waiting.values()) {
    if (!oldest || now - w.since > oldest.ageSeconds * 1000) {
      oldest = { path: w.path, piece: w.piece, ageSeconds: (now - w.since) / 1000, reason: '' };
    }
  }
  if (oldest) oldest.reason = swarm.waitingReason();
  return {
    schema: STATUS_SCHEMA_VERSION,
    mountpoint: view.mountpoint,
    pid: process.pid,
    startedAt: view.startedAt.toISOString(),
    uptimeSeconds: Math.round((now - view.startedAt.getTime()) / 100) / 10,
    torrent: {
      name: metainfo.name,
      infoHash: metainfo.infoHash,
      pieceLength: metainfo.layout.pieceLength,
      pieceCount: metainfo.layout.pieceCount,
      totalBytes: metainfo.layout.totalLength,
      fileCount: metainfo.tree.fileCount,
    },
    pieces: { have: cache.haveCount, total: metainfo.layout.pieceCount },
    transfer: {
      downloadRate: swarmStats.peers.reduce((sum, p) => sum + p.downloadRate, 0),
      uploadRate: swarmStats.peers.reduce((sum, p) => sum + p.uploadRate, 0),
      downloadedBytes: swarmStats.downloaded,
      uploadedBytes: swarmStats.uploaded,
    },
    peers: swarmStats.peers.map((p) => ({
      address: p.address,
      source: p.source,
      client: p.client ?? null,
      downloadRate: p.downloadRate,
      uploadRate: p.uploadRate,
      choked: p.choked,
      choking: p.choking,
      interested: p.interested,
      requests: p.inflight,
    })),
    cache: {
      dir: cache.dir,
      usedBytes: cache.bytesUsed,
      budgetBytes: cache.budgetBytes,
      effectiveBudgetBytes: cache.effectiveBudgetBytes,
      pinnedBytes: cache.pinnedBytes,
      hitRate: hits + misses > 0 ? hits / (hits + misses) : null,
      hits,
      misses,
      evictions: cache.stats.evictions,
      droppedCorrupt: cache.stats.droppedCorrupt,
    },
    reads: {
      count: reader.stats.reads,
      bytes: reader.stats.bytesRead,
      failed: reader.stats.failedReads,
      waiting: reader.waiting.size,
      oldest,
    },
    integrity: { hashFailures: swarmStats.hashFailures, bannedPeers: swarmStats.banned },
    warm: jobs,
    discovery: view.discovery(),
    fuse: view.fuse?.() ?? { backend: null, nativeReads: null },
    webSeeds: (view.webSeeds?.() ?? []).map((w) => ({ ...w, inflight: swarmStats.webSeeds.find((s) => s.name === w.url)?.inflight ?? 0 })),
  };
}
