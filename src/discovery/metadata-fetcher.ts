import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Logger } from '../log.js';
import { dialPeer, PeerList, type PeerCandidate } from '../swarm/peer-list.js';
import { formatPeerAddress, usableAddress } from './peer-address.js';
import { MetadataWire } from './metadata-wire.js';

export interface MetadataFetcherOptions {
  infoHash: string;
  peerId: Buffer;
  /** Our peer port (told to peers in the extended handshake). */
  listenPort: number;
  log: Logger;
  /** Connections open at once (default 25). */
  maxConnections?: number;
  /** A peer that sends no metadata piece for this long is dropped (default 20 s). */
  stallTimeoutMs?: number;
}

export interface MetadataProgress {
  /** Peers connected now (handshake done). */
  connected: number;
  /** Addresses known from every source. */
  known: number;
  /** Peers that sent metadata not matching the infohash (banned). */
  rejected: number;
}

export class MetadataTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetadataTimeoutError';
  }
}

/** Static peers (--peer, x.pe) are retried for as long as we wait, at least every 5 s; others a few times. */
type Candidate = PeerCandidate<MetadataWire>;
/** Bytes of dictionaries being downloaded at once (several small ones, or one large one). */
const MAX_ACTIVE_BYTES = 128 * 1024 * 1024;
const MAX_ACTIVE_DOWNLOADS = 3;

/**
 * Fetches a torrent's info dictionary from peers (BEP 9) and accepts it only if
 * its SHA-1 is the infohash. A peer whose dictionary does not match is banned
 * (every port of its host) and another peer is asked. Peers come from any
 * source via addPeer, or connect to us (accept).
 *
 * Emits 'progress'(MetadataProgress) when the counts change, and
 * 'rejected'(address, reason) for each liar.
 */
export class MetadataFetcher extends EventEmitter {
  readonly #peers = new PeerList<MetadataWire>({ persistentMaxBackoffMs: 5_000, keyOf: (host, port) => formatPeerAddress({ host, port }) });
  readonly #wires = new Set<MetadataWire>();
  readonly #maxConnections: number;
  readonly #stallTimeoutMs: number;
  readonly #timer: NodeJS.Timeout;
  #rejected = 0;
  #sawMetadataPeer = false;
  #lastProgress = '';
  #result: Buffer | undefined;
  #closed = false;
  readonly #waiters: Array<{ resolve: (b: Buffer) => void; reject: (e: unknown) => void }> = [];

  readonly #opts: MetadataFetcherOptions;
  constructor(opts: MetadataFetcherOptions) {
    super();
    this.#opts = opts;
    this.#maxConnections = opts.maxConnections ?? 25;
    this.#stallTimeoutMs = opts.stallTimeoutMs ?? 20_000;
    this.#timer = setInterval(() => this.#tick(), 500);
    this.#timer.unref();
  }

  /** Hosts banned for lying about the metadata. */
  get bannedHosts(): ReadonlySet<string> {
    return this.#peers.bannedHosts;
  }

  progress(): MetadataProgress {
    let connected = 0;
    for (const w of this.#wires) if (w.ready) connected++;
    return { connected, known: this.#peers.size, rejected: this.#rejected };
  }

  /** `persistent` (--peer, x.pe) peers may be host names; discovered ones must be IP addresses. */
  addPeer(host: string, port: number, persistent = false): void {
    const address = persistent && net.isIP(host) === 0 && Number.isInteger(port) && port > 0 && port < 65536 ? { host, port } : usableAddress(host, port);
    if (!address || this.#closed || !this.#peers.add(address.host, address.port, 'peer', persistent)) return;
    this.#reportProgress();
    this.#connectSome();
  }

  /** A peer that connected to us while we wait for the metadata. */
  accept(socket: net.Socket): void {
    const host = usableAddress(socket.remoteAddress ?? '', 1)?.host;
    if (this.#closed || !host || this.#peers.isBanned(host) || this.#wires.size >= this.#maxConnections) {
      socket.destroy();
      return;
    }
    this.#attach(socket, 'in', host, undefined);
  }

  /**
   * Resolves with the verified info dictionary; rejects with a
   * MetadataTimeoutError saying what was tried when `timeoutMs` passes, or
   * with the signal's reason when it aborts.
   */
  fetch(timeoutMs: number, signal?: AbortSignal): Promise<Buffer> {
    if (this.#result) return Promise.resolve(this.#result);
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Buffer>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
      };
      const timer = setTimeout(() => {
        done();
        reject(new MetadataTimeoutError(this.#explainTimeout(timeoutMs)));
      }, timeoutMs);
      const onAbort = (): void => {
        done();
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const waiter = {
        resolve: (b: Buffer) => {
          done();
          resolve(b);
        },
        reject: (e: unknown) => {
          done();
          reject(e);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const w of [...this.#wires]) w.destroy('metadata fetch over');
    for (const w of this.#waiters.splice(0)) w.reject(new Error('metadata fetch stopped'));
  }

  // ── connections ────────────────────────────────────────────────────────────

  #connectSome(): void {
    if (this.#closed || this.#result) return;
    const now = Date.now();
    for (const cand of this.#peers.due(now)) {
      if (this.#wires.size >= this.#maxConnections) return;
      const socket = dialPeer({ host: cand.host, port: cand.port });
      this.#peers.dialled(cand, this.#attach(socket, 'out', cand.host, cand), now);
    }
  }

  #attach(socket: net.Socket, direction: 'in' | 'out', host: string, cand: Candidate | undefined): MetadataWire {
    const { log } = this.#opts;
    const wire = new MetadataWire({ socket, direction, host, infoHash: this.#opts.infoHash, peerId: this.#opts.peerId, listenPort: this.#opts.listenPort });
    const label = cand?.key ?? `${host} (incoming)`;
    this.#wires.add(wire);
    wire.on('ready', () => {
      if (cand) this.#peers.connected(cand);
      this.#reportProgress();
    });
    wire.on('size', (size: number) => {
      this.#sawMetadataPeer = true;
      log.debug({ peer: label, size }, 'peer has the metadata');
      this.#startDownloads();
    });
    wire.on('unavailable', (why: string) => {
      log.debug({ peer: label, why }, 'peer cannot give the metadata');
      wire.destroy(why);
    });
    wire.on('metadata', (buf: Buffer) => this.#onMetadata(wire, host, label, buf));
    wire.once('close', (reason: string) => {
      this.#wires.delete(wire);
      log.debug({ peer: label, reason }, 'metadata connection closed');
      // Our own address (handed back by a tracker or the DHT) is forgotten; others back off.
      if (cand) this.#peers.ended(cand, wire, { self: reason === 'connected to ourselves', failed: true }, Date.now());
      this.#reportProgress();
      if (!this.#closed) {
        this.#startDownloads();
        this.#connectSome();
      }
    });
    return wire;
  }

  /** Starts downloads from peers that have the metadata, within the memory bound. */
  #startDownloads(): void {
    if (this.#closed || this.#result) return;
    let activeBytes = 0;
    let active = 0;
    for (const w of this.#wires) {
      if (w.fetching) {
        active++;
        activeBytes += w.size!;
      }
    }
    for (const w of this.#wires) {
      if (active >= MAX_ACTIVE_DOWNLOADS) return;
      if (w.fetching || w.closed || w.size === undefined) continue;
      if (active > 0 && activeBytes + w.size > MAX_ACTIVE_BYTES) continue;
      w.startFetch();
      active++;
      activeBytes += w.size;
    }
  }

  #onMetadata(wire: MetadataWire, host: string, label: string, buf: Buffer): void {
    if (this.#closed || this.#result) return;
    const digest = createHash('sha1').update(buf).digest('hex');
    if (digest !== this.#opts.infoHash) {
      const reason = `sent metadata whose SHA-1 is ${digest}, not the infohash`;
      this.#opts.log.warn({ peer: label, reason }, 'rejected metadata from a peer; banning it');
      this.#rejected++;
      this.#ban(host);
      this.emit('rejected', label, reason);
      this.#reportProgress();
      return;
    }
    this.#opts.log.info({ peer: label, bytes: buf.length }, 'fetched the metadata');
    this.#result = buf;
    wire.destroy('metadata received');
    clearInterval(this.#timer);
    for (const w of [...this.#wires]) w.destroy('metadata received elsewhere');
    for (const w of this.#waiters.splice(0)) w.resolve(buf);
  }

  #ban(host: string): void {
    this.#peers.ban(host);
    for (const w of [...this.#wires]) if (w.host === host) w.destroy('banned: sent metadata that does not match the infohash');
  }

  #tick(): void {
    if (this.#closed || this.#result) return;
    const now = Date.now();
    for (const w of [...this.#wires]) {
      if (w.fetching && now - w.lastProgressAt > this.#stallTimeoutMs) w.destroy('metadata transfer stalled');
    }
    this.#connectSome();
  }

  #reportProgress(): void {
    if (this.#closed) return;
    const p = this.progress();
    const key = `${p.connected}/${p.known}/${p.rejected}`;
    if (key === this.#lastProgress) return;
    this.#lastProgress = key;
    this.emit('progress', p);
  }

  #explainTimeout(timeoutMs: number): string {
    const secs = Math.round(timeoutMs / 1000);
    const p = this.progress();
    if (this.#peers.size === 0 && this.#wires.size === 0) return `no peers found in ${secs} s (check --tracker, --dht-bootstrap or --peer)`;
    const parts = [`no peer gave the metadata in ${secs} s`, `${p.known} peers known`];
    if (!this.#sawMetadataPeer) parts.push('none of those reached had it');
    if (this.#rejected > 0) parts.push(`${this.#rejected} sent metadata that does not match the infohash`);
    return parts.join('; ');
  }
}
