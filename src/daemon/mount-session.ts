import { ControlServer } from '../control/server.js';
import type { DiscoveryReport } from '../discovery/index.js';
import type { FuseStatus } from '../control/status-schema.js';
import type { FuseAccessOptions } from '../fs/fuse-options.js';
import { isMounted } from '../mount-table.js';
import { mountFilesystem, type MountedFilesystem } from '../fs/native/mount-backend.js';
import type { Discovery } from '../discovery/index.js';
import type { Logger } from '../log.js';
import type { Metainfo } from '../metainfo/index.js';
import { Reader } from '../reader/reader.js';
import { wireCountersEnabled, wireGauges } from '../swarm/wire-counters.js';
import { PieceStore } from '../store/piece-store.js';
import { Swarm } from '../swarm/index.js';
import { socketPath } from '../control/mount-registry.js';
import type { MountView } from '../control/mount-view.js';
import { buildStatus } from '../control/status-report.js';
import { MountMetrics } from '../metrics/mount-metrics.js';
import { MetricsServer, type MetricsAddress } from '../metrics/metrics-server.js';
import { WebSeedSet } from '../webseed/index.js';
import { addWebSeedsToSwarm, webSeedIdleTimeoutMs } from './web-seed-wiring.js';

export interface MountConfig {
  metainfo: Metainfo;
  mountpoint: string;
  cacheRoot: string;
  cacheBudget: number;
  /** host:port of peers to connect to. */
  peers: Array<{ host: string; port: number }>;
  /** Listen port for other peers (0 = any; undefined = first free of 6881–6889). */
  port: number | undefined;
  /** Listen address, also the source of outgoing connections (default: all interfaces). */
  host?: string;
  readTimeoutMs: number;
  uploadLimit: number;
  downloadLimit: number;
  /** Web seed URL lists (url-list, ws=, --web-seed), merged and deduplicated by the session. */
  webSeeds?: ReadonlyArray<readonly string[]>;
  /** --web-seed-limit: bytes/s over all web seeds together; 0 = none. */
  webSeedLimit?: number;
  log: Logger;
  /** Who may read the mount and how its entries look (--allow-other, --uid, --file-mode, …). */
  access: FuseAccessOptions;
  /** Serve Prometheus metrics here (--metrics); undefined = off. */
  metrics?: MetricsAddress;
  debugFuse?: boolean;
  /**
   * Trackers, DHT and PEX for this torrent (maybe started already, while the
   * metadata was fetched). The session hands it the swarm and stops it.
   */
  discovery?: Discovery;
}

/** The largest read-ahead window, before the cache budget caps it further. */
const MAX_READ_AHEAD_BYTES = 64 * 1024 * 1024;

/**
 * One mounted torrent: the store, the swarm, the reader and the FUSE mount,
 * started in that order and stopped in reverse. This is the composition root
 * of the daemon; the parts know nothing of each other beyond their interfaces.
 */
export class MountSession {
  #stopping: Promise<void> | undefined;
  #watch: NodeJS.Timeout | undefined;

  private constructor(
    readonly config: MountConfig,
    readonly store: PieceStore,
    readonly swarm: Swarm,
    readonly reader: Reader,
    readonly fuse: MountedFilesystem,
    /** The control socket `warm` and `status` talk to. */
    readonly control: ControlServer,
    readonly metricsServer: MetricsServer | undefined,
    readonly webSeeds: WebSeedSet,
  ) {}

  static async start(config: MountConfig): Promise<MountSession> {
    const { metainfo, log } = config;
    const store = await PieceStore.open({
      cacheRoot: config.cacheRoot,
      infoHash: metainfo.infoHash,
      layout: metainfo.layout,
      budgetBytes: config.cacheBudget,
      log,
    });
    let swarm: Swarm | undefined;
    let control: ControlServer | undefined;
    let metricsServer: MetricsServer | undefined;
    let mounted: MountedFilesystem | undefined;
    const webSeeds = new WebSeedSet(metainfo, {
      urls: config.webSeeds ?? [],
      rateLimit: config.webSeedLimit ?? 0,
      idleTimeoutMs: webSeedIdleTimeoutMs(config.readTimeoutMs),
      log,
    });
    try {
      swarm = new Swarm({
        infoHash: metainfo.infoHash,
        layout: metainfo.layout,
        storage: store,
        log,
        ...(config.port === undefined ? {} : { port: config.port }),
        ...(config.host ? { host: config.host } : {}),
        uploadLimit: config.uploadLimit,
        downloadLimit: config.downloadLimit,
        infoBuffer: metainfo.infoBuffer,
        ...(config.discovery ? { extensions: config.discovery.wireExtensions() } : {}),
        // Once it has every piece a mount hands out distinct pieces as an origin does: the first
        // node of a cluster to finish was else asked the same last pieces by all the others.
        shareMode: 'distinct',
      });
      const port = await swarm.listen();
      log.info({ port }, `listening for peers on port ${port}`);
      for (const peer of config.peers) swarm.addPeer(peer.host, peer.port, 'static');
      addWebSeedsToSwarm(swarm, webSeeds, log);
      if (config.discovery) {
        await config.discovery.start(port);
        const s = swarm;
        const { totalLength, pieceLength: pieceBytes } = metainfo.layout;
        config.discovery.attach(s, () => {
          const stats = s.stats();
          return { uploaded: stats.uploaded, downloaded: stats.downloaded, left: Math.max(0, totalLength - store.haveCount * pieceBytes) };
        });
      }

      const pieceLength = metainfo.layout.pieceLength;
      const readAheadMaxBytes = Math.max(pieceLength, Math.min(MAX_READ_AHEAD_BYTES, Math.floor(config.cacheBudget / 4)));
      const reader = new Reader({
        byteMap: metainfo.byteMap,
        cache: store,
        fetcher: swarm,
        readTimeoutMs: config.readTimeoutMs,
        readAhead: {
          initialBytes: pieceLength,
          maxBytes: readAheadMaxBytes,
          backwardToleranceBytes: 1024 * 1024,
        },
        log,
      });
      if (wireCountersEnabled) {
        wireGauges.reader = () => {
          const { streams, windowBytes } = reader.readAheadState();
          return { raStreams: streams, raWindowKiB: Math.round(windowBytes / 1024) };
        };
      }
      const view: MountView = {
        mountpoint: config.mountpoint,
        metainfo,
        cache: store,
        swarm,
        reader,
        startedAt: new Date(),
        warmReserveBytes: readAheadMaxBytes,
        discovery: () => config.discovery?.status() ?? discoveryStatus(config),
        fuse: () => fuseStatus(mounted),
        settleReads: () => mounted?.takePendingHits?.(),
        webSeeds: () => webSeeds.status(),
        log,
      };
      const controlServer = await ControlServer.start(view, socketPath(config.mountpoint));
      control = controlServer;
      const liveSwarm = swarm;
      // The same status object `btmount status` gets, read at each scrape.
      const metrics = config.metrics ? new MountMetrics({ status: () => buildStatus(view, controlServer.jobStatuses()), swarm: () => liveSwarm.stats() }) : undefined;
      if (metrics) metricsServer = await MetricsServer.start(metrics, config.metrics!, log);
      const fuse = await mountFilesystem(config.mountpoint, {
        tree: metainfo.tree,
        reader,
        cache: store.sharedCacheView(),
        mtime: metainfo.created ?? new Date(0),
        mount: { ...config.access, fsname: `btmount:${metainfo.infoHash}`, debug: config.debugFuse ?? false },
        ...(metrics ? { onReadDone: (seconds: number) => metrics.observeRead(seconds) } : {}),
        log,
      });
      mounted = fuse;
      log.info({ mountpoint: config.mountpoint, infoHash: metainfo.infoHash, fuseBackend: fuse.backend }, `mounted ${metainfo.name}`);
      return new MountSession(config, store, swarm, reader, fuse, control, metricsServer, webSeeds);
    } catch (err) {
      await metricsServer?.close().catch(() => undefined);
      await control?.close().catch(() => undefined);
      await config.discovery?.stop().catch(() => undefined);
      webSeeds.close();
      await swarm?.close().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw err;
    }
  }

  /** Resolves when the mount goes away from outside (fusermount -u, umount). */
  whenUnmountedExternally(): Promise<void> {
    return new Promise((resolve) => {
      this.#watch = setInterval(() => {
        void isMounted(this.config.mountpoint).then((mounted) => {
          if (!mounted) resolve();
        });
      }, 1000);
    });
  }

  /** Unmounts, stops the swarm and persists the cache. Safe to call more than once. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearInterval(this.#watch);
      const { log } = this.config;
      await this.control.close().catch((err: unknown) => log.error({ err }, 'closing the control socket failed'));
      await this.metricsServer?.close().catch((err: unknown) => log.error({ err }, 'closing the metrics server failed'));
      await this.fuse.unmount().catch((err: unknown) => log.error({ err }, 'unmount failed'));
      await this.config.discovery?.stop().catch((err: unknown) => log.error({ err }, 'stopping peer discovery failed'));
      // The swarm closes its web seeds (their requests in flight end with it).
      await this.swarm.close().catch((err: unknown) => log.error({ err }, 'closing the swarm failed'));
      await this.store.close().catch((err: unknown) => log.error({ err }, 'closing the cache failed'));
      log.info('stopped');
    })();
    return this.#stopping;
  }
}

/** Peer discovery as `status` shows it, for a session started without a Discovery (--peer only). */
function discoveryStatus(config: MountConfig): DiscoveryReport {
  return {
    staticPeers: config.peers.length,
    dht: { enabled: false, nodes: 0 },
    trackers: config.metainfo.announce.map((url) => ({ url, lastAnnounceAt: null, lastResult: null, peers: 0 })),
    pex: { enabled: false },
  };
}

function fuseStatus(fs: MountedFilesystem | undefined): FuseStatus {
  if (!fs) return { backend: null, nativeReads: null };
  const native = fs.nativeStats?.();
  return {
    backend: fs.backend,
    nativeReads: native
      ? { servedInC: native.hits, splicedFromCache: native.spliced, sentToReader: native.misses, slotReusedDuringRead: native.generationRetries }
      : null,
  };
}
