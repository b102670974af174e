import { EventEmitter } from 'node:events';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import DHT, { type DhtContact } from 'bittorrent-dht';
import type { Logger } from '../log.js';
import { usableAddress, type PeerAddress } from './peer-address.js';

export interface DhtDiscoveryOptions {
  infoHash: string;
  /** Our peer port, announced for the infohash; the DHT's UDP socket tries the same number. */
  port: number;
  /** Nodes to start from (default: the public routers). */
  bootstrap: readonly PeerAddress[];
  /** Where the routing table is kept between runs. */
  stateFile: string;
  log: Logger;
}

interface SavedState {
  version: 1;
  nodeId: string;
  nodes: Array<{ host: string; port: number }>;
}

/** Lookups: how often while we wait for metadata, while peers are few, and otherwise; announces as BEP 5 suggests. */
export const LOOKUP_PACE = { waiting: 15_000, fewPeers: 60_000, relaxed: 5 * 60_000 } as const;
export type LookupPace = keyof typeof LOOKUP_PACE;
const ANNOUNCE_EVERY_MS = 15 * 60_000;
/** Nodes kept in the saved routing table. */
const SAVED_NODES = 256;

/**
 * Finds peers for one infohash on the mainline DHT (BEP 5) with bittorrent-dht,
 * and announces our port there. The routing table and node id are saved to
 * `stateFile` at stop and used as extra starting points next time, so a
 * restart does not depend on the bootstrap routers. Emits 'peer'(PeerAddress).
 */
export class DhtDiscovery extends EventEmitter {
  #dht: DHT | undefined;
  #lookupTimer: NodeJS.Timeout | undefined;
  #announceTimer: NodeJS.Timeout | undefined;
  #pace: LookupPace = 'waiting';
  #announcing = false;
  #stopped = false;
  /** Nodes we started from (bootstrap + saved), for the log. */
  #savedNodes = 0;

  readonly #opts: DhtDiscoveryOptions;
  constructor(opts: DhtDiscoveryOptions) {
    super();
    this.#opts = opts;
  }

  async start(): Promise<void> {
    const { log } = this.#opts;
    const saved = await this.#loadState();
    if (this.#stopped) return;
    this.#savedNodes = saved?.nodes.length ?? 0;
    const bootstrap = [...this.#opts.bootstrap, ...(saved?.nodes ?? [])].map(({ host, port }) => ({ host, port }));
    const dht = new DHT({ bootstrap, host: false, ...(saved ? { nodeId: saved.nodeId } : {}) });
    this.#dht = dht;
    dht.on('peer', (peer, infoHash) => {
      if (Buffer.from(infoHash).toString('hex') !== this.#opts.infoHash) return;
      const address = usableAddress(peer.host, peer.port);
      if (address) this.emit('peer', address);
    });
    dht.on('warning', (err: Error) => log.debug({ reason: err.message }, 'dht warning'));
    dht.on('error', (err: Error) => log.warn({ reason: err.message }, 'dht error'));
    await this.#listen(dht);
    log.info({ udpPort: dht.listening ? dht.address().port : null, bootstrap: this.#opts.bootstrap.length, savedNodes: this.#savedNodes }, 'dht started');
    this.#lookup();
    if (this.#announcing) this.#announce();
  }

  /** How many nodes the routing table holds. */
  get nodeCount(): number {
    return this.#dht && !this.#dht.destroyed ? this.#dht.nodes.count() : 0;
  }

  get running(): boolean {
    return this.#dht !== undefined && !this.#stopped;
  }

  /** How often to look the infohash up from now on. */
  setPace(pace: LookupPace): void {
    if (this.#pace === pace) return;
    this.#pace = pace;
    if (this.#dht && !this.#stopped) this.#scheduleLookup();
  }

  /**
   * Tells the DHT we are in this swarm, now and every 15 minutes. Until then
   * we only look up (a magnet may turn out to be a private torrent, BEP 27).
   */
  startAnnouncing(): void {
    if (this.#announcing) return;
    this.#announcing = true;
    this.#announce();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#lookupTimer);
    clearTimeout(this.#announceTimer);
    const dht = this.#dht;
    if (!dht) return;
    await this.#saveState(dht).catch((err: unknown) => this.#opts.log.warn({ err }, 'saving the dht routing table failed'));
    await new Promise<void>((resolve) => dht.destroy(() => resolve()));
  }

  #listen(dht: DHT): Promise<void> {
    // The same number as the peer port is conventional; any port if it is taken.
    return new Promise<void>((resolve) => {
      const tryPort = (port: number): void => {
        const onError = (err: NodeJS.ErrnoException): void => {
          if (port !== 0 && (err.code === 'EADDRINUSE' || err.code === 'EACCES')) return tryPort(0);
          this.#opts.log.warn({ reason: err.message }, 'dht cannot listen; lookups only');
          resolve();
        };
        dht.once('error', onError);
        dht.listen(port, () => {
          dht.off('error', onError);
          resolve();
        });
      };
      tryPort(this.#opts.port);
    });
  }

  #lookup(): void {
    const dht = this.#dht;
    if (!dht || this.#stopped) return;
    dht.lookup(this.#opts.infoHash, (err) => {
      if (err && !this.#stopped) this.#opts.log.debug({ reason: err.message }, 'dht lookup failed');
    });
    this.#scheduleLookup();
  }

  #scheduleLookup(): void {
    clearTimeout(this.#lookupTimer);
    this.#lookupTimer = setTimeout(() => this.#lookup(), LOOKUP_PACE[this.#pace]);
    this.#lookupTimer.unref();
  }

  #announce(): void {
    const dht = this.#dht;
    if (!dht || this.#stopped || !this.#announcing) return;
    dht.announce(this.#opts.infoHash, this.#opts.port, (err) => {
      if (this.#stopped) return;
      if (err) this.#opts.log.debug({ reason: err.message }, 'dht announce failed');
      else this.#opts.log.info({ nodes: dht.nodes.count() }, 'announced on the dht');
    });
    clearTimeout(this.#announceTimer);
    this.#announceTimer = setTimeout(() => this.#announce(), ANNOUNCE_EVERY_MS);
    this.#announceTimer.unref();
  }

  async #loadState(): Promise<SavedState | undefined> {
    let raw: string;
    try {
      raw = await readFile(this.#opts.stateFile, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const data = JSON.parse(raw) as Partial<SavedState>;
      if (data.version !== 1 || typeof data.nodeId !== 'string' || !/^[0-9a-f]{40}$/.test(data.nodeId) || !Array.isArray(data.nodes)) throw new Error('unknown format');
      const nodes = data.nodes
        .map((n) => (n && typeof n.host === 'string' && typeof n.port === 'number' ? usableAddress(n.host, n.port) : undefined))
        .filter((n): n is PeerAddress => n !== undefined)
        .slice(0, SAVED_NODES);
      return { version: 1, nodeId: data.nodeId, nodes };
    } catch (err) {
      this.#opts.log.warn({ file: this.#opts.stateFile, reason: (err as Error).message }, 'ignoring a damaged dht state file');
      return undefined;
    }
  }

  async #saveState(dht: DHT): Promise<void> {
    const nodes = dht
      .toJSON()
      .nodes.map((n: DhtContact) => usableAddress(n.host, n.port))
      .filter((n): n is PeerAddress => n !== undefined)
      .slice(0, SAVED_NODES);
    if (nodes.length === 0) return; // keep what we had rather than forget everything after an offline run
    const state: SavedState = { version: 1, nodeId: Buffer.from(dht.nodeId).toString('hex'), nodes };
    const file = this.#opts.stateFile;
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(state));
    await rename(tmp, file);
  }
}
