import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { AnnounceCounters } from 'bittorrent-tracker';
import type { Logger } from '../log.js';
import type { Swarm } from '../swarm/index.js';
import type { WireExtension } from '../swarm/peer-connection.js';
import type { DhtDiscovery } from './dht-discovery.js';
import { formatPeerAddress, type PeerAddress } from './peer-address.js';
import { PEX_EXTENSION, PeerExchange } from './pex.js';
import { makePeerId } from '../peer-id.js';
import type { TrackerAnnouncer, TrackerStatus } from './tracker-announcer.js';

export type DiscoverySource = 'dht' | 'tracker' | 'pex';

export interface DiscoveryOptions {
  infoHash: string;
  cacheRoot: string;
  /** HTTP(S) and UDP tracker URLs: the torrent's or magnet's, then --tracker ones. */
  trackers: readonly string[];
  /** DHT bootstrap nodes, or false for no DHT. */
  dht: false | { bootstrap: readonly PeerAddress[] };
  /** Peer exchange (BEP 11) with the swarm's peers. */
  pex: boolean;
  /** Peers given as --peer or x.pe (shown in status only; the caller adds them). */
  staticPeers: number;
  /** Our own address when bound to one (--host): trackers are announced to from it. */
  localAddress?: string;
  log: Logger;
}

/** Peer discovery as `btmount status` shows it. */
export interface DiscoveryReport {
  staticPeers: number;
  dht: { enabled: boolean; nodes: number };
  trackers: TrackerStatus[];
  pex: { enabled: boolean };
}

/** Addresses remembered for a swarm that is not there yet: enough for any start. */
const MAX_PENDING = 2000;
/** While fewer peers than this are connected, the DHT looks up more often. */
const FEW_PEERS = 5;
/**
 * Before the swarm exists (a magnet waiting for its metadata) trackers are asked
 * again this often: their own interval (often 30 min) is far too long to wait.
 */
const WAITING_REANNOUNCE_MS = 30_000;
/**
 * While the swarm's reads starve (nothing arrives for them), trackers are asked
 * again early, at most this often, and the DHT looks up at its fast pace: a
 * seeder that just came up is in the next answer.
 */
const STARVING_REANNOUNCE_MS = 5_000;

/**
 * Every way a mount finds peers besides --peer: trackers (HTTP, UDP), the
 * DHT, and peer exchange. Started with our port before the torrent's info is
 * known (peers then go to whoever listens to 'peer'(PeerAddress, source));
 * once the swarm exists, attach() hands it every peer found so far and from
 * then on. Private torrents (BEP 27) use trackers only: restrictToTrackers().
 */
export class Discovery extends EventEmitter {
  readonly peerId = makePeerId();
  #trackers: TrackerAnnouncer | undefined;
  #dht: DhtDiscovery | undefined;
  #pexEnabled: boolean;
  #pex: PeerExchange | undefined;
  #swarm: Swarm | undefined;
  readonly #pending = new Map<string, { address: PeerAddress; source: DiscoverySource }>();
  readonly #ignored = new Set<string>();
  #counters: () => AnnounceCounters = () => ({ uploaded: 0, downloaded: 0 });
  #healthTimer: NodeJS.Timeout | undefined;
  #waitingTimer: NodeJS.Timeout | undefined;
  #started: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  #lastStarvingAnnounceAt = 0;
  readonly #onStarving = (): void => {
    const now = Date.now();
    if ((!this.#trackers && !this.#dht) || now - this.#lastStarvingAnnounceAt < STARVING_REANNOUNCE_MS) return;
    this.#lastStarvingAnnounceAt = now;
    this.#opts.log.debug('reads are waiting and no peer serves them: asking trackers and the DHT again');
    this.#trackers?.update();
    this.#dht?.setPace('fewPeers');
  };

  readonly #opts: DiscoveryOptions;
  constructor(opts: DiscoveryOptions) {
    super();
    this.#opts = opts;
    this.#pexEnabled = opts.pex;
  }

  /**
   * Announces `port` to the trackers and starts DHT lookups. Idempotent.
   * `counters`, when the caller knows them already (a seed: left = 0), go
   * into the first announce; otherwise trackers hear none until attach().
   */
  start(port: number, counters?: () => AnnounceCounters): Promise<void> {
    if (counters) this.#counters = counters;
    this.#started ??= this.#doStart(port);
    return this.#started;
  }

  /** BEP 27: a private torrent's peers come from its trackers only. */
  async restrictToTrackers(): Promise<void> {
    if (this.#pexEnabled || this.#dht) this.#opts.log.info('private torrent: trackers only (no DHT, no peer exchange)');
    this.#pexEnabled = false;
    const dht = this.#dht;
    this.#dht = undefined;
    await dht?.stop();
  }

  /** Never hand out this host again (it lied about the metadata). */
  ignoreHost(host: string): void {
    this.#ignored.add(host);
    for (const [key, { address }] of this.#pending) if (address.host === host) this.#pending.delete(key);
  }

  /** Wire extensions the swarm should offer on each connection (ut_pex when PEX is on). */
  wireExtensions(): WireExtension[] {
    return this.#pexEnabled ? [PEX_EXTENSION] : [];
  }

  /**
   * From now on peers go to the swarm, starting with those found so far; the
   * DHT starts announcing us. `counters` feeds tracker announces.
   */
  attach(swarm: Swarm, counters: () => AnnounceCounters): void {
    this.#swarm = swarm;
    this.#counters = counters;
    clearInterval(this.#waitingTimer);
    for (const { address, source } of this.#pending.values()) swarm.addPeer(address.host, address.port, source);
    this.#pending.clear();
    if (this.#pexEnabled) this.#pex = new PeerExchange(swarm, this.#opts.log);
    swarm.on('starving', this.#onStarving);
    this.#dht?.startAnnouncing();
    const pace = (): void => this.#dht?.setPace(swarm.stats().peers.length < FEW_PEERS ? 'fewPeers' : 'relaxed');
    pace();
    this.#healthTimer = setInterval(pace, 30_000);
    this.#healthTimer.unref();
  }

  status(): DiscoveryReport {
    return {
      staticPeers: this.#opts.staticPeers,
      dht: { enabled: this.#dht !== undefined, nodes: this.#dht?.nodeCount ?? 0 },
      trackers: this.#trackers?.status() ?? this.#opts.trackers.map((url) => ({ url, lastAnnounceAt: null, lastResult: null, peers: 0 })),
      pex: { enabled: this.#pexEnabled },
    };
  }

  /** Tells the trackers we leave (`stopped`), saves the DHT routing table. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      clearInterval(this.#healthTimer);
      clearInterval(this.#waitingTimer);
      this.#swarm?.off('starving', this.#onStarving);
      this.#pex?.close();
      await this.#started?.catch(() => undefined);
      await Promise.all([
        this.#trackers?.stop().catch((err: unknown) => this.#opts.log.warn({ err }, 'stopping the tracker announces failed')),
        this.#dht?.stop().catch((err: unknown) => this.#opts.log.warn({ err }, 'stopping the dht failed')),
      ]);
      this.#swarm = undefined;
    })();
    return this.#stopped;
  }

  async #doStart(port: number): Promise<void> {
    const { log } = this.#opts;
    // bittorrent-tracker and bittorrent-dht take a good half second to load: only when used.
    if (this.#opts.trackers.length > 0) {
      const { TrackerAnnouncer } = await import('./tracker-announcer.js');
      const trackers = new TrackerAnnouncer({
        infoHash: this.#opts.infoHash,
        peerId: this.peerId,
        port,
        urls: this.#opts.trackers,
        counters: () => this.#counters(),
        ...(this.#opts.localAddress ? { localAddress: this.#opts.localAddress } : {}),
        log,
      });
      trackers.on('peer', (address: PeerAddress) => this.#found(address, 'tracker'));
      this.#trackers = trackers;
      trackers.start();
      if (!this.#swarm) {
        this.#waitingTimer = setInterval(() => trackers.update(), WAITING_REANNOUNCE_MS);
        this.#waitingTimer.unref();
      }
    }
    if (this.#opts.dht) {
      const { DhtDiscovery } = await import('./dht-discovery.js');
      const dht = new DhtDiscovery({
        infoHash: this.#opts.infoHash,
        port,
        bootstrap: this.#opts.dht.bootstrap,
        stateFile: path.join(path.resolve(this.#opts.cacheRoot), 'dht', 'state.json'),
        log,
      });
      dht.on('peer', (address: PeerAddress) => this.#found(address, 'dht'));
      this.#dht = dht;
      await dht.start();
    }
    log.info(
      { port, trackers: this.#trackers?.urls.length ?? 0, dht: this.#dht !== undefined, pex: this.#pexEnabled },
      'peer discovery started',
    );
  }

  #found(address: PeerAddress, source: DiscoverySource): void {
    if (this.#stopped || this.#ignored.has(address.host)) return;
    if (this.#swarm) {
      this.#swarm.addPeer(address.host, address.port, source);
    } else {
      const key = formatPeerAddress(address);
      if (!this.#pending.has(key) && this.#pending.size < MAX_PENDING) this.#pending.set(key, { address, source });
    }
    this.emit('peer', address, source);
  }
}
