import type { AnnounceCounters } from 'bittorrent-tracker';
import type { Discovery } from '../discovery/index.js';
import type { Logger } from '../log.js';
import type { Metainfo } from '../metainfo/index.js';
import type { PieceIndex } from '../metainfo/piece-layout.js';
import { DirectoryPieceStorage, type VerifyProgress } from '../store/directory-storage.js';
import { Swarm, type SwarmStats } from '../swarm/index.js';
import type { ShareMode } from '../swarm/share-policy.js';
import { UserError } from '../user-error.js';
import { WebSeedSet } from '../webseed/index.js';
import { FilledSeedStorage, type FillResult } from './seed-fill.js';

export interface SeedConfig {
  metainfo: Metainfo;
  /** The dataset folder given to create (for a single-file torrent: the file). */
  dataset: string;
  port: number | undefined;
  host: string | undefined;
  uploadLimit: number | undefined;
  maxConnections: number | undefined;
  /** How the origin answers requests for pieces other peers have (see SharePolicy). */
  shareMode: ShareMode;
  /** host:port of peers to connect to. */
  peers: ReadonlyArray<{ host: string; port: number }>;
  /** Trackers, DHT and PEX for this torrent; the session starts and stops it. */
  discovery: Discovery;
  /** url-list and --web-seed: where pieces missing from the dataset are fetched from (see fillMissing). */
  webSeeds?: ReadonlyArray<readonly string[]>;
  /** --web-seed-limit: bytes/s from all web seeds together; 0 = none. */
  webSeedLimit?: number;
  /** --cache: the fill cache lives in <cacheRoot>/seed-fill/. */
  cacheRoot: string;
  log: Logger;
}

const ACTION = 'cannot seed';

/**
 * A running `btmount seed`: the dataset read in place (DirectoryPieceStorage),
 * verified first, then served by a Swarm that discovery announces. The
 * composition root of the seeding process, as MountSession is of a mount.
 */
export class SeedSession {
  readonly storage: DirectoryPieceStorage;
  readonly webSeeds: WebSeedSet;
  #swarm: Swarm | undefined;
  /** The dataset plus the pieces filled from web seeds, once fillMissing ran. */
  #filled: FilledSeedStorage | undefined;

  constructor(readonly config: SeedConfig) {
    this.storage = new DirectoryPieceStorage(config.metainfo, config.dataset);
    this.webSeeds = new WebSeedSet(config.metainfo, { urls: config.webSeeds ?? [], rateLimit: config.webSeedLimit ?? 0, log: config.log });
  }

  /** Pieces served: the dataset's good ones and those filled from web seeds. */
  get pieceCountHeld(): number {
    return this.#filled?.pieceCountHeld ?? this.storage.pieceCountHeld;
  }

  /**
   * After verify: fetches the pieces the dataset lacks (missing or damaged files) from the
   * web seeds into a cache of their own, never into the dataset. Undefined when there is
   * nothing to fill or no web seed to fill it from.
   */
  async fillMissing(signal: AbortSignal, onPiece?: (r: FillResult) => void): Promise<FillResult | undefined> {
    const { metainfo, log } = this.config;
    if (this.webSeeds.size === 0 || this.storage.pieceCountHeld === metainfo.layout.pieceCount) return undefined;
    this.#filled = await FilledSeedStorage.open(metainfo, this.storage, this.config.cacheRoot, log);
    const result = await this.#filled.fillFrom(this.webSeeds, signal, onPiece);
    log.info(result, `filled ${result.filled} of ${result.missing} missing pieces from web seeds`);
    return result;
  }

  /** Hashes every piece of the dataset; only the good ones are served. */
  verify(onProgress: (p: VerifyProgress) => void, signal: AbortSignal): Promise<VerifyProgress> {
    return this.storage.verify(onProgress, signal);
  }

  /** Listens, connects to --peer addresses and starts announcing; returns the port. */
  async serve(): Promise<number> {
    const { metainfo, discovery, log } = this.config;
    const swarm = new Swarm({
      infoHash: metainfo.infoHash,
      layout: metainfo.layout,
      storage: this.#filled ?? this.storage,
      log,
      ...(this.config.port !== undefined ? { port: this.config.port } : {}),
      ...(this.config.host ? { host: this.config.host } : {}),
      ...(this.config.uploadLimit !== undefined ? { uploadLimit: this.config.uploadLimit } : {}),
      ...(this.config.maxConnections !== undefined ? { maxConnections: this.config.maxConnections } : {}),
      shareMode: this.config.shareMode,
      infoBuffer: metainfo.infoBuffer,
      extensions: discovery.wireExtensions(),
    });
    this.#swarm = swarm;
    let port: number;
    try {
      port = await swarm.listen();
    } catch (err) {
      throw new UserError(ACTION, `cannot listen on port ${this.config.port ?? '6881-6889'}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    for (const p of this.config.peers) swarm.addPeer(p.host, p.port, 'static');
    // A full seed lacks nothing: left = 0 from the first announce, so trackers count it as a seeder.
    let left = 0;
    const served = this.#filled ?? this.storage;
    for (let i = 0; i < metainfo.layout.pieceCount; i++) if (!served.has(i as PieceIndex)) left += metainfo.layout.pieceSize(i as PieceIndex);
    const counters = (): AnnounceCounters => ({ uploaded: swarm.stats().uploaded, downloaded: 0, left });
    await discovery.start(port, counters);
    discovery.attach(swarm, counters);
    return port;
  }

  /** Peers and transfer totals; undefined before serve. */
  stats(): SwarmStats | undefined {
    return this.#swarm?.stats();
  }

  async close(): Promise<void> {
    this.webSeeds.close();
    await this.config.discovery.stop();
    await this.#swarm?.close();
    // The filled storage closes the dataset's too.
    await (this.#filled ?? this.storage).close();
  }
}
