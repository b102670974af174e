import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { type InfoHash, type PieceIndex, type PieceLayout } from '../metainfo/piece-layout.js';
import { Scheduler, higherPriority, type BlockRequest, type PeerRequest, type Priority, type SchedulerOptions } from '../scheduler/index.js';
import { VerifiedPiece } from '../metainfo/verified-piece.js';
import { type ShareMode } from './share-policy.js';
import { Uploader } from './uploader.js';
import { PieceAssembly, type Charge } from './piece-assembly.js';
import { PeerConnection, type PeerSource, type WireExtension } from './peer-connection.js';
import type { PieceStorage } from './piece-storage.js';
import { TokenBucket } from './rate-limiter.js';
import type { WebPieceSource } from './web-piece-source.js';
import { pickWebSeedFetches, type WantedPieceSupply } from './web-seed-picker.js';


export interface SwarmOptions {
  infoHash: InfoHash;
  layout: PieceLayout;
  storage: PieceStorage;
  log?: Logger;
  /** Listen port; 0 = any free port; undefined = first free of 6881–6889, else any. */
  port?: number;
  /** Listen address (default: all interfaces); a specific one is also where outgoing connections come from. */
  host?: string;
  /** Open connections, both directions (default 50). */
  maxConnections?: number;
  /** Bytes/s, 0 = no limit. */
  uploadLimit?: number;
  downloadLimit?: number;
  /** The bencoded info dictionary, served to peers that ask for it (BEP 9). */
  infoBuffer?: Buffer;
  /** More BEP 10 extensions for every connection (peer discovery adds ut_pex). */
  extensions?: readonly WireExtension[];
  /** Regular unchoke slots; one optimistic slot comes on top (default 8). */
  uploadSlots?: number;
  /** Requests we queue per peer, advertised as reqq (default 1000). */
  requestQueue?: number;
  /** An urgent fetch without a deadline gets one this far ahead (default 3 s). */
  urgentDeadlineMs?: number;
  /** Hash failures a host may cause before it is banned (default 2). */
  banThreshold?: number;
  /**
   * 'distinct' (an origin): while we have every piece, a request for a piece another
   * peer has or is getting from us is rejected once, so the nodes trade it (see
   * SharePolicy). 'all' (default): every valid request is served.
   */
  shareMode?: ShareMode;
  scheduler?: SchedulerOptions;
}

export interface SwarmPeerStats {
  address: string;
  source: string;
  client: string | undefined;
  downloadRate: number;
  uploadRate: number;
  /** The peer chokes us. */
  choked: boolean;
  /** We choke the peer. */
  choking: boolean;
  interested: boolean;
  inflight: number;
}

export interface SwarmStats {
  peers: SwarmPeerStats[];
  downloaded: number;
  uploaded: number;
  hashFailures: number;
  banned: string[];
  wanted: number;
  /** SHA-1 checks of received pieces: how many, and the event-loop time they took. */
  verify: { pieces: number; totalMs: number; maxMs: number };
  /** Bytes moved by where the peer came from (the metrics' per-source counters), web seeds apart; absent kinds moved nothing. */
  bySource: Partial<Record<TransferSource, { downloaded: number; uploaded: number }>>;
  /** One per web seed added, in the order added. */
  webSeeds: SwarmWebSeedStats[];
}

/** Where bytes came from: a peer (by how we found it) or a web seed. */
export type TransferSource = PeerSource | 'webSeed';

export interface SwarmWebSeedStats {
  name: string;
  /** Verified pieces it delivered that the swarm took. */
  piecesFetched: number;
  bytesFetched: number;
  /** Pieces asked of it and not yet settled. */
  inflight: number;
}

type Source = Exclude<PeerSource, 'incoming'>;

interface Candidate {
  host: string;
  port: number;
  source: Source;
  failures: number;
  nextAttemptAt: number;
  lastAttemptAt: number;
  /** Connections to it dropped for stalling reads: it is then re-dialled at its backoff only. */
  stalls: number;
  conn: Conn | undefined;
}

interface Conn {
  key: string;
  pc: PeerConnection;
  candidate: Candidate | undefined;
  peerId: string | undefined;
  /** When its last block came (0: none yet). */
  lastBlockAt: number;
  /**
   * Since when the peer has owed us a block: its last block, or our first
   * request after it owed none. Requests cancelled because another peer was
   * faster do not restart the clock of a peer that has sent nothing since.
   */
  owingSince: number;
}

/** A web seed as the swarm schedules it: the source and the fetches it has running. */
interface WebSeedSlot {
  readonly id: number;
  readonly source: WebPieceSource;
  /** Per piece asked of it: aborts the HTTP fetch when a peer delivers first or nobody wants the piece. */
  readonly inflight: Map<PieceIndex, AbortController>;
  piecesFetched: number;
  bytesFetched: number;
}

interface Waiter {
  priority: Priority;
  deadline: number | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
  cleanup: () => void;
}

const CLIENT_PREFIX = '-BM0100-';
const MAX_UNREQUESTED_BLOCKS = 16;
const IDLE_TIMEOUT_MS = 150_000;
const CONNECT_TIMEOUT_MS = 10_000;
/**
 * Reads starve when urgent pieces are wanted and no block of one has come for
 * this long: no connected peer has them, or those that say so send nothing.
 * Then known addresses are re-dialled every STARVING_REDIAL_MS whatever their
 * backoff (a seeder that comes up is found within a second or two, not after a
 * 16-60 s backoff), an incoming peer may take the place of a useless
 * connection, and 'starving' is emitted each second (discovery re-announces).
 */
const STARVING_AFTER_MS = 1000;
const STARVING_REDIAL_MS = 1000;
/**
 * While reads wait, a peer that holds our requests and sends nothing for this
 * long is dropped when another peer with the pieces can serve them: otherwise the
 * blocks it sits on wait for the scheduler's 15 s snub (issue 13: a hostile
 * first peer made a read 5× slower than with the honest seeder alone).
 */
const STALLED_MS = 4000;
/**
 * Verified pieces waiting for the storage beyond this stop new requests (disk
 * slower than the network). Their buffers come back to the assembly's pool afterwards.
 */
const MAX_STORING_BYTES = 64 * 1024 * 1024;
/** Socket read size for outgoing connections. */
const READ_BUFFER_BYTES = 256 * 1024;
/**
 * Wanted non-urgent pieces looked at per web-seed pick (in the order they were wanted): the
 * check is per peer for pieces some peer has, and picks run after most swarm events.
 */
const WEB_SEED_SCAN_LIMIT = 512;

/**
 * The swarm engine for one torrent: connects to peers, asks the scheduler what
 * to request, assembles and verifies pieces, stores them, and serves what the
 * storage holds to other peers. It knows pieces and peers, nothing of paths.
 */
export class Swarm extends EventEmitter {
  readonly infoHash: InfoHash;
  readonly layout: PieceLayout;
  readonly peerId: Buffer;
  readonly #storage: PieceStorage;
  readonly #log: Logger;
  readonly #opts: SwarmOptions;
  readonly #scheduler: Scheduler;
  readonly #maxConnections: number;
  readonly #ourReqq: number;
  readonly #uploader: Uploader;
  readonly #downloadBucket: TokenBucket;
  #server: net.Server | undefined;
  #listenPort = 0;
  readonly #candidates = new Map<string, Candidate>();
  readonly #conns = new Map<string, Conn>();
  #connSeq = 0;
  readonly #fetches = new Map<PieceIndex, Set<Waiter>>();
  /** Verified pieces on their way into storage. */
  readonly #storing = new Set<PieceIndex>();
  readonly #assembly: PieceAssembly;
  #storingBytes = 0;
  readonly #bannedHosts = new Set<string>();
  #downloaded = 0;
  readonly #transferBySource: Partial<Record<TransferSource, { downloaded: number; uploaded: number }>> = {};
  readonly #webSeeds: WebSeedSlot[] = [];
  #scheduled = false;
  #tickTimer: NodeJS.Timeout | undefined;
  #readingPaused = false;
  /** When the current urgent wait began or last received an urgent block (see STARVING_AFTER_MS). */
  #urgentProgressAt = 0;
  /** Waiters of urgent fetches (reads), so that "are reads waiting" costs nothing. */
  readonly #urgentWaiters = new Set<Waiter>();
  #redialTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #onAdded = (index: PieceIndex): void => this.#pieceAvailable(index);
  /** Verified pieces whose HAVE went out before the storage had them (requests for them wait). */
  readonly #announcedEarly = new Set<PieceIndex>();

  constructor(opts: SwarmOptions) {
    super();
    this.#opts = opts;
    this.infoHash = opts.infoHash;
    this.layout = opts.layout;
    this.#storage = opts.storage;
    this.#log = (opts.log ?? silentLogger).child({ swarm: opts.infoHash.slice(0, 8) });
    // Random among equally rare pieces: nodes reading the same window then fetch different pieces and trade.
    this.#scheduler = new Scheduler(opts.layout, { random: Math.random, ...opts.scheduler });
    this.#assembly = new PieceAssembly(opts.layout, { banThreshold: opts.banThreshold ?? 2 });
    this.#maxConnections = opts.maxConnections ?? 50;
    this.#ourReqq = opts.requestQueue ?? 1000;
    this.#uploader = new Uploader({
      layout: opts.layout,
      storage: opts.storage,
      bucket: new TokenBucket(opts.uploadLimit ?? 0),
      slots: opts.uploadSlots ?? 8,
      queueLimit: this.#ourReqq,
      ...(opts.shareMode ? { shareMode: opts.shareMode } : {}),
      announcedEarly: (index) => this.#announcedEarly.has(index),
      downloadRate: (key, now) => this.#scheduler.rate(key, now),
      downloading: () => this.#fetches.size > 0,
      anotherPeerHas: (index, except) => this.#anotherPeerHas(index, except),
      uploaded: (key, bytes) => {
        const conn = this.#conns.get(key);
        if (conn) this.#sourceTotals(conn).uploaded += bytes;
      },
    });
    this.#downloadBucket = new TokenBucket(opts.downloadLimit ?? 0);
    this.peerId = Buffer.concat([Buffer.from(CLIENT_PREFIX, 'latin1'), randomBytes(12)]);
    this.#storage.on('added', this.#onAdded);
    this.#tickTimer = setInterval(() => this.#tick(), 1000);
    this.#tickTimer.unref();
  }

  // ── public API ─────────────────────────────────────────────────────────────

  /** Starts accepting peers; resolves with the bound port. */
  async listen(): Promise<number> {
    if (this.#server) return this.#listenPort;
    const host = this.#opts.host;
    const ports = this.#opts.port === undefined ? [6881, 6882, 6883, 6884, 6885, 6886, 6887, 6888, 6889, 0] : [this.#opts.port];
    let lastError: unknown;
    for (const port of ports) {
      const server = net.createServer((socket) => this.#accept(socket));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port, ...(host ? { host } : {}) }, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        lastError = err;
        server.close();
        continue;
      }
      server.on('error', (err) => this.#log.error({ err }, 'listen socket error'));
      this.#server = server;
      this.#listenPort = (server.address() as net.AddressInfo).port;
      this.#log.info({ port: this.#listenPort }, 'listening for peers');
      return this.#listenPort;
    }
    throw lastError instanceof Error ? lastError : new Error('cannot listen');
  }

  get port(): number {
    return this.#listenPort;
  }

  /** A peer to connect to. Static peers are retried for ever (with backoff); others three times. */
  addPeer(host: string, port: number, source: Source = 'static'): void {
    if (this.#closed || !Number.isInteger(port) || port <= 0 || port > 65535) return;
    host = normalizeHost(host);
    if (this.#bannedHosts.has(host)) return;
    const address = `${host}:${port}`;
    if (this.#candidates.has(address)) return;
    this.#candidates.set(address, { host, port, source, failures: 0, nextAttemptAt: 0, lastAttemptAt: 0, stalls: 0, conn: undefined });
    this.#connectSome();
  }

  /**
   * A source of whole verified pieces (an HTTP origin). It is asked only for what the
   * connected peers cannot deliver (see web-seed-picker.ts); the swarm closes it in close().
   */
  addWebSeed(source: WebPieceSource): void {
    if (this.#closed) {
      source.close();
      return;
    }
    this.#webSeeds.push({ id: this.#webSeeds.length, source, inflight: new Map(), piecesFetched: 0, bytesFetched: 0 });
    this.#requestSchedule();
  }

  /**
   * Resolves once the storage holds the piece. Callers asking for the same
   * piece share one fetch; the highest priority among them wins. An aborted
   * caller is rejected with the signal's reason; when none are left the piece
   * is no longer wanted (its requests are cancelled). `deadline` (ms since the
   * epoch, urgent only, default now + urgentDeadlineMs): within a second of it,
   * blocks still missing are also requested from a second peer. Rejects if the
   * storage drops the verified piece (no room) or the swarm closes.
   */
  fetch(index: PieceIndex, priority: Priority, signal?: AbortSignal, deadline?: number): Promise<void> {
    if (!this.layout.isValidPiece(index)) return Promise.reject(new RangeError(`no piece ${index} in this torrent`));
    if (this.#storage.has(index)) return Promise.resolve();
    if (this.#closed) return Promise.reject(new Error('swarm is closed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (priority === 'urgent' && deadline === undefined) deadline = Date.now() + (this.#opts.urgentDeadlineMs ?? 3000);
    if (priority === 'urgent' && this.#urgentWaiters.size === 0) this.#urgentProgressAt = Date.now();
    let waiters = this.#fetches.get(index);
    if (!waiters) {
      waiters = new Set();
      this.#fetches.set(index, waiters);
    }
    const set = waiters;
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        set.delete(waiter);
        this.#urgentWaiters.delete(waiter);
        reject(signal!.reason);
        this.#rewant(index);
      };
      const waiter: Waiter = {
        priority,
        deadline,
        resolve,
        reject,
        cleanup: () => {
          signal?.removeEventListener('abort', onAbort);
          this.#urgentWaiters.delete(waiter);
        },
      };
      set.add(waiter);
      if (priority === 'urgent') this.#urgentWaiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#rewant(index);
    });
  }

  stats(): SwarmStats {
    const now = Date.now();
    const peers: SwarmPeerStats[] = [];
    for (const c of this.#conns.values()) {
      if (!c.pc.ready) continue;
      peers.push({
        address: c.pc.address,
        source: c.pc.source,
        client: c.pc.peerClient,
        downloadRate: Math.round(this.#scheduler.rate(c.key, now)),
        uploadRate: Math.round(c.pc.uploadSpeed()),
        choked: c.pc.peerChoking,
        choking: c.pc.amChoking,
        interested: c.pc.peerInterested,
        inflight: this.#scheduler.inflightCount(c.key),
      });
    }
    return {
      peers,
      downloaded: this.#downloaded,
      uploaded: this.#uploader.uploaded,
      hashFailures: this.#assembly.hashFailures,
      banned: [...this.#bannedHosts],
      wanted: this.#fetches.size,
      verify: this.#assembly.verifyTime,
      bySource: Object.fromEntries(Object.entries(this.#transferBySource).map(([k, v]) => [k, { ...v }])),
      webSeeds: this.#webSeeds.map((w) => ({ name: w.source.name, piecesFetched: w.piecesFetched, bytesFetched: w.bytesFetched, inflight: w.inflight.size })),
    };
  }

  /** How many connected peers have the piece (choking or not). */
  sourcesOf(index: PieceIndex): number {
    return this.#scheduler.peersWith(index).total;
  }

  /** Why wanted pieces are not arriving, in a few words (for EIO log lines). */
  waitingReason(): string {
    if (this.#closed) return 'swarm closed';
    const ready = [...this.#conns.values()].filter((c) => c.pc.ready);
    const parts: string[] = [];
    if (ready.length === 0) {
      parts.push(this.#candidates.size > 0 ? `no peers connected (${this.#candidates.size} known)` : 'no peers');
    } else {
      const index = this.#mostWantedPiece();
      if (index === undefined) parts.push(`nothing wanted (${ready.length} peers)`);
      else {
        const { total, unchoked } = this.#scheduler.peersWith(index);
        if (total === 0) parts.push(`no peer has piece ${index}`);
        else if (unchoked === 0) parts.push(total === ready.length ? `all ${total} peers choking us` : `all ${total} peers with piece ${index} choking us`);
        else parts.push(`piece ${index} requested from ${unchoked} of ${ready.length} peers`);
      }
    }
    if (this.#webSeeds.length > 0) {
      const fetching = this.#webSeeds.reduce((n, w) => n + w.inflight.size, 0);
      const backingOff = this.#webSeeds.filter((w) => !w.source.ready).length;
      parts.push(
        `${this.#webSeeds.length} web seed${this.#webSeeds.length === 1 ? '' : 's'}: ${fetching} pieces in flight` + (backingOff > 0 ? `, ${backingOff} backing off` : ''),
      );
    }
    if (this.#assembly.hashFailures > 0) parts.push(`${this.#assembly.hashFailures} hash failures`);
    if (this.#bannedHosts.size > 0) parts.push(`${this.#bannedHosts.size} banned`);
    return parts.join('; ');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#tickTimer);
    clearTimeout(this.#redialTimer);
    this.#storage.off('added', this.#onAdded);
    for (const [index, waiters] of this.#fetches) {
      for (const w of waiters) {
        w.cleanup();
        w.reject(new Error(`swarm closed before piece ${index} arrived`));
      }
    }
    this.#fetches.clear();
    for (const w of this.#webSeeds) {
      for (const ac of w.inflight.values()) ac.abort(new Error('swarm closing'));
      w.inflight.clear();
      w.source.close();
    }
    for (const c of [...this.#conns.values()]) c.pc.destroy('swarm closing');
    const server = this.#server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ── connections ────────────────────────────────────────────────────────────

  #connectSome(): void {
    if (this.#closed) return;
    const now = Date.now();
    const starving = this.#starving(now);
    for (const cand of this.#candidates.values()) {
      if (this.#conns.size >= this.#maxConnections) return;
      const due = starving && cand.stalls === 0 ? Math.min(cand.nextAttemptAt, cand.lastAttemptAt + STARVING_REDIAL_MS) : cand.nextAttemptAt;
      if (cand.conn || due > now) continue;
      this.#dial(cand);
    }
  }

  #starving(now: number): boolean {
    return this.#urgentWaiters.size > 0 && now - this.#urgentProgressAt >= STARVING_AFTER_MS;
  }

  /** One timer for all failed dials while reads starve (the 1 s tick alone would make it up to 2 s). */
  #redialSoon(): void {
    if (this.#redialTimer || this.#closed) return;
    this.#redialTimer = setTimeout(() => {
      this.#redialTimer = undefined;
      this.#connectSome();
    }, STARVING_REDIAL_MS);
    this.#redialTimer.unref();
  }

  #urgentPieces(): PieceIndex[] {
    return [...this.#scheduler.wantedPieces()].filter((i) => this.#scheduler.priorityOf(i) === 'urgent');
  }

  /** The connection is a peer that has some of the pieces reads wait for. */
  #hasAny(c: Conn, pieces: readonly PieceIndex[]): boolean {
    return c.pc.ready && this.#scheduler.hasPeer(c.key) && pieces.some((i) => this.#scheduler.peerHas(c.key, i));
  }

  /** While reads starve, an incoming peer takes the place of a connection that has none of their pieces. */
  #makeRoom(now: number): boolean {
    if (!this.#starving(now)) return false;
    const urgent = this.#urgentPieces();
    for (const c of this.#conns.values()) {
      if (this.#hasAny(c, urgent)) continue;
      c.pc.destroy('making room for an incoming peer while reads wait');
      return true;
    }
    return false;
  }

  /** See STALLED_MS. */
  #dropStalled(now: number): void {
    if (this.#readingPaused || this.#urgentWaiters.size === 0) return; // paused by --download-limit: nobody can deliver
    const urgent = this.#urgentPieces();
    const withPieces = [...this.#conns.values()].filter((c) => this.#hasAny(c, urgent));
    const stalled = (c: Conn): boolean => this.#scheduler.inflightCount(c.key) > 0 && now - c.owingSince >= STALLED_MS;
    // Someone to give the blocks to: unchoking us, or sending (allowed-fast pieces) while it chokes.
    const better = withPieces.filter((c) => !stalled(c) && (!c.pc.peerChoking || now - c.lastBlockAt < STALLED_MS));
    if (better.length === 0) return;
    for (const c of withPieces) {
      if (!stalled(c)) continue;
      if (c.candidate) c.candidate.stalls++;
      c.pc.destroy(`sent nothing for ${STALLED_MS / 1000} s while reads waited on its blocks`);
    }
  }

  #dial(cand: Candidate): void {
    cand.lastAttemptAt = Date.now();
    // One read buffer per connection, reused for every read (see PeerConnection.receive).
    let conn: Conn | undefined;
    const socket = net.connect({
      host: cand.host,
      port: cand.port,
      ...(this.#opts.host && !isWildcardHost(this.#opts.host) ? { localAddress: this.#opts.host } : {}),
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
        callback: (n: number, buf: Uint8Array) => {
          conn?.pc.receive((buf as Buffer).subarray(0, n));
          return true;
        },
      },
    });
    const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), CONNECT_TIMEOUT_MS);
    timer.unref();
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
    conn = this.#attach(socket, 'out', cand.host, cand.port, cand.source, cand, true);
    cand.conn = conn;
  }

  #accept(socket: net.Socket): void {
    const host = normalizeHost(socket.remoteAddress ?? '');
    if (this.#closed || this.#bannedHosts.has(host) || (this.#conns.size >= this.#maxConnections && !this.#makeRoom(Date.now()))) {
      socket.destroy();
      return;
    }
    this.#attach(socket, 'in', host, socket.remotePort ?? 0, 'incoming', undefined);
  }

  #attach(
    socket: net.Socket,
    direction: 'in' | 'out',
    host: string,
    port: number,
    source: PeerSource,
    candidate: Candidate | undefined,
    readsViaOnread = false,
  ): Conn {
    const key = `${host}:${port}#${++this.#connSeq}`;
    const pc = new PeerConnection({
      socket,
      direction,
      host,
      port,
      source,
      infoHash: this.infoHash,
      peerId: this.peerId,
      pieceCount: this.layout.pieceCount,
      reqq: this.#ourReqq,
      readsViaOnread,
      ...(this.#listenPort ? { listenPort: this.#listenPort } : {}),
      ...(this.#opts.infoBuffer ? { infoBuffer: this.#opts.infoBuffer } : {}),
      ...(this.#opts.extensions ? { extensions: this.#opts.extensions } : {}),
    });
    const conn: Conn = { key, pc, candidate, peerId: undefined, lastBlockAt: 0, owingSince: 0 };
    this.#conns.set(key, conn);
    if (this.#readingPaused) pc.pauseReading();
    pc.once('ready', (peerId: string) => this.#onReady(conn, peerId));
    pc.once('close', (reason: string) => this.#onClose(conn, reason));
    return conn;
  }

  #onReady(conn: Conn, peerId: string): void {
    for (const other of this.#conns.values()) {
      if (other !== conn && other.peerId === peerId) return conn.pc.destroy('already connected to this peer');
    }
    conn.peerId = peerId;
    const { pc } = conn;
    const key = conn.key;
    this.#log.debug({ peer: pc.address, direction: pc.direction, fast: pc.hasFast }, 'peer connected');
    this.#scheduler.addPeer(key, Date.now(), { fast: pc.hasFast });
    if (conn.candidate && conn.candidate.failures > 0) conn.candidate.failures = 0;
    pc.sendPieceSet([...this.#storage.haveIndices()], this.layout.pieceCount);

    // A closed connection calls no handler; one the scheduler dropped (closing) neither.
    const live = (): boolean => this.#scheduler.hasPeer(key);
    /** A change to what the peer has or allows: the scheduler learns it, then runs. */
    const update = (change: () => void): void => {
      if (!live()) return;
      change();
      this.#requestSchedule();
    };
    this.#uploader.addPeer(key, pc);
    pc.handle({
      bitfield: (bits) => update(() => this.#scheduler.peerBitfield(key, bits)),
      have: (index) => update(() => this.#scheduler.peerHave(key, index as PieceIndex)),
      haveAll: () => update(() => this.#scheduler.peerHaveAll(key)),
      choke: () => live() && this.#scheduler.setChoked(key, true),
      unchoke: () => update(() => this.#scheduler.setChoked(key, false)),
      interested: () => live() && this.#uploader.interested(key),
      uninterested: () => live() && this.#uploader.uninterested(key),
      piece: (index, offset, block) => live() && this.#onBlock(conn, index as PieceIndex, offset, block),
      reject: (index, offset) => update(() => this.#scheduler.onReject(key, index as PieceIndex, offset, Date.now())),
      allowedFast: (index) => live() && this.#scheduler.allowedFast(key, index as PieceIndex),
      request: (index, offset, length, respond) => live() && this.#uploader.request(key, index as PieceIndex, offset, length, respond),
      cancel: (index, offset, length) => live() && this.#uploader.cancel(key, index, offset, length),
    });
    pc.on('extended-handshake', () => !pc.closed && live() && this.#scheduler.setReqq(key, pc.peerReqq));
    pc.on('drain', () => this.#uploader.pump(key));
    this.#requestSchedule();
    this.emit('peer-ready', pc);
  }

  #onClose(conn: Conn, reason: string): void {
    this.#conns.delete(conn.key);
    if (this.#scheduler.hasPeer(conn.key)) this.#scheduler.removePeer(conn.key);
    this.#uploader.removePeer(conn.key);
    this.#log.debug({ peer: conn.pc.address, reason }, 'peer disconnected');
    const cand = conn.candidate;
    if (cand && cand.conn === conn && reason === 'connected to ourselves') {
      this.#candidates.delete(`${cand.host}:${cand.port}`);
    } else if (cand && cand.conn === conn) {
      cand.conn = undefined;
      const now = Date.now();
      const lived = now - conn.pc.connectedAt;
      if (!conn.pc.ready || lived < 30_000) cand.failures++;
      const starving = this.#starving(now);
      if (cand.source !== 'static' && cand.failures >= 3 && !starving) this.#candidates.delete(`${cand.host}:${cand.port}`);
      else cand.nextAttemptAt = now + Math.min(60_000, 500 * 2 ** Math.min(cand.failures, 7));
      if (starving) this.#redialSoon();
    }
    if (!this.#closed) {
      this.emit('peer-closed', conn.pc.address, reason);
      this.#requestSchedule();
    }
  }

  // ── downloading ────────────────────────────────────────────────────────────

  #rewant(index: PieceIndex): void {
    const waiters = this.#fetches.get(index);
    if (!waiters || waiters.size === 0) {
      this.#fetches.delete(index);
      this.#assembly.discard(index);
      this.#abortWebFetches(index, 'nobody wants the piece any more');
      this.#sendCancels(this.#scheduler.unwant(index));
      this.#requestSchedule();
      return;
    }
    let priority: Priority = 'warm';
    let deadline: number | undefined;
    for (const w of waiters) {
      priority = higherPriority(priority, w.priority);
      if (w.priority === 'urgent' && w.deadline !== undefined) deadline = Math.min(deadline ?? Infinity, w.deadline);
    }
    if (!this.#storing.has(index)) this.#scheduler.want(index, priority, priority === 'urgent' ? deadline : undefined);
    this.#requestSchedule();
  }

  #mostWantedPiece(): PieceIndex | undefined {
    let best: PieceIndex | undefined;
    let bestRank = -1;
    for (const index of this.#scheduler.wantedPieces()) {
      const p = this.#scheduler.priorityOf(index)!;
      const rank = p === 'urgent' ? 3 : p === 'readahead' ? 2 : 1;
      if (rank > bestRank) {
        best = index;
        bestRank = rank;
      }
    }
    return best;
  }

  /** Some connected peer other than `except` has the piece (for the share policy). */
  #anotherPeerHas(index: PieceIndex, except: string): boolean {
    for (const c of this.#conns.values()) {
      if (c.key !== except && c.pc.ready && this.#scheduler.hasPeer(c.key) && this.#scheduler.peerHas(c.key, index)) return true;
    }
    return false;
  }

  #sourceTotals(conn: Conn): { downloaded: number; uploaded: number } {
    return (this.#transferBySource[conn.pc.source] ??= { downloaded: 0, uploaded: 0 });
  }

  #onBlock(conn: Conn, index: PieceIndex, offset: number, block: Uint8Array): void {
    const now = Date.now();
    conn.lastBlockAt = conn.owingSince = now;
    this.#downloaded += block.length;
    this.#sourceTotals(conn).downloaded += block.length;
    const wait = this.#downloadBucket.take(block.length, now);
    if (wait > 0) this.#pauseReading(wait);
    if (!this.#scheduler.hasPeer(conn.key)) return;
    const out = this.#scheduler.onBlock(conn.key, index, offset, block.length, now);
    this.#sendCancels(out.cancels);
    switch (out.verdict) {
      case 'accepted': {
        this.#assembly.write(index, offset, block, now);
        if (this.#scheduler.priorityOf(index) === 'urgent') this.#urgentProgressAt = now;
        if (out.pieceComplete) this.#verify(index);
        break;
      }
      case 'unrequested':
        if (++conn.pc.unrequestedBlocks > MAX_UNREQUESTED_BLOCKS) return conn.pc.destroy('sent blocks nobody asked for');
        break;
      case 'invalid':
        return conn.pc.destroy(`sent an invalid block (piece ${index}, offset ${offset}, ${block.length} bytes)`);
      default:
        break;
    }
    // Verifying may have banned this very peer (and closed it).
    if (conn.pc.closed || !this.#scheduler.hasPeer(conn.key)) return;
    // Top up in batches (one write for several requests), keeping the pipeline at least 7/8 full.
    if (this.#storingBytes > MAX_STORING_BYTES) return;
    const depth = this.#scheduler.depth(conn.key, now);
    const batch = Math.min(32, Math.max(1, depth >> 3));
    if (this.#scheduler.inflightCount(conn.key) <= depth - batch) this.#sendRequests(conn, this.#scheduler.fill(conn.key, now));
  }

  /** All blocks of a piece are in: a good piece goes in, a bad one charges the peers that sent it. */
  #verify(index: PieceIndex): void {
    let hosts: string[] = [];
    const outcome = this.#assembly.verify(index, () => {
      const byHost = new Map<string, number[]>();
      for (const [key, blocks] of this.#scheduler.pieceFailed(index)) {
        const host = hostOfKey(key);
        byHost.set(host, [...(byHost.get(host) ?? []), ...blocks]);
      }
      hosts = [...byHost.keys()];
      return byHost;
    });
    if (!outcome) return;
    if (outcome.ok) return this.#takeVerified(outcome.piece);
    this.#log.warn({ index, sources: hosts }, 'piece failed its hash check');
    this.emit('hash-failure', index, hosts);
    this.#applyCharges(outcome.charges);
    this.#requestSchedule();
  }

  /**
   * A verified piece, from peers' blocks or a web seed, into the storage: HAVE to every
   * peer, other sources for it stopped, waiters resolved once stored. Its buffer goes back
   * to the assembly's pool when the storage is done with it (a web seed's is not pooled).
   */
  #takeVerified(piece: VerifiedPiece): void {
    const { index, data } = piece;
    this.#sendCancels(this.#scheduler.pieceVerified(index));
    this.#abortWebFetches(index, 'the piece came from another source');
    this.#applyCharges(this.#assembly.convict(piece));
    this.#storing.add(index);
    // HAVE the moment the hash checks, not after the disk write: peers waiting for this piece can ask for it now.
    this.#announcedEarly.add(index);
    this.#announce(index);
    this.#storingBytes += data.length;
    const settled = (): void => {
      this.#storing.delete(index);
      this.#announcedEarly.delete(index);
      this.#storingBytes -= data.length;
      this.#assembly.release(data); // the storage has written or copied it
    };
    this.#storage.put(piece).then(
      (stored) => {
        const available = stored || this.#storage.has(index);
        if (available) this.#pieceAvailable(index); // before settled(): its HAVE went out at verify
        settled();
        if (!available) {
          this.#uploader.pumpAll(); // requests waiting for it are now rejected
          this.#failFetch(index, new Error(`piece ${index} was verified but the cache had no room for it`));
        }
      },
      (err: unknown) => {
        settled();
        this.#uploader.pumpAll();
        this.#log.error({ err, index }, 'storing a verified piece failed');
        this.#failFetch(index, err);
      },
    );
    this.emit('verified', index);
  }

  #applyCharges(charges: readonly Charge[]): void {
    for (const c of charges) {
      this.#log.warn({ host: c.host, strikes: c.strikes, reason: c.reason }, 'peer charged');
      if (c.ban) this.#ban(c.host, c.reason);
    }
  }

  #ban(host: string, reason: string): void {
    if (this.#bannedHosts.has(host)) return;
    this.#bannedHosts.add(host);
    this.#log.warn({ host, reason }, 'peer banned');
    for (const [address, cand] of this.#candidates) if (cand.host === host) this.#candidates.delete(address);
    for (const c of [...this.#conns.values()]) if (c.pc.host === host) c.pc.destroy(`banned: ${reason}`);
    this.emit('ban', host, reason);
  }

  #pieceAvailable(index: PieceIndex): void {
    if (this.#closed) return;
    this.#assembly.discard(index);
    this.#abortWebFetches(index, 'the piece is here');
    if (this.#scheduler.isWanted(index)) this.#sendCancels(this.#scheduler.unwant(index));
    if (!this.#announcedEarly.has(index)) this.#announce(index); // ours went out at verify (the put's 'added' and its promise both land here)
    this.#uploader.pumpAll();
    const waiters = this.#fetches.get(index);
    this.#fetches.delete(index);
    for (const w of waiters ?? []) {
      w.cleanup();
      w.resolve();
    }
    this.#requestSchedule();
  }

  /**
   * HAVE to every connected peer, even a btmount seed that has the piece: an
   * origin learns from it who can serve what (and hands out other pieces). Other
   * clients' seeds are not told: they gain nothing, and some (aria2c) hang up on
   * a peer that turns out complete.
   */
  #announce(index: PieceIndex): void {
    for (const c of this.#conns.values()) {
      if (!c.pc.ready || !this.#scheduler.hasPeer(c.key)) continue;
      if (this.#scheduler.peerIsSeed(c.key) && !c.pc.peerClient?.startsWith('btmount')) continue;
      c.pc.have(index);
    }
  }

  #failFetch(index: PieceIndex, err: unknown): void {
    const waiters = this.#fetches.get(index);
    this.#fetches.delete(index);
    for (const w of waiters ?? []) {
      w.cleanup();
      w.reject(err);
    }
  }

  #sendRequests(conn: Conn | undefined, requests: readonly BlockRequest[]): void {
    if (!conn || conn.pc.closed) return;
    // The scheduler has counted these already: if they are all it has in flight, the peer owed nothing until now.
    if (requests.length > 0 && conn.lastBlockAt >= conn.owingSince && this.#scheduler.inflightCount(conn.key) === requests.length) conn.owingSince = Date.now();
    for (const r of requests) conn.pc.request(r.index, r.offset, r.length);
  }

  #sendCancels(cancels: readonly PeerRequest[]): void {
    for (const c of cancels) {
      const conn = this.#conns.get(c.peer);
      if (conn && !conn.pc.closed) conn.pc.cancel(c.index, c.offset, c.length);
    }
  }

  /** Runs the scheduler soon, once, however many events asked for it. */
  #requestSchedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#runSchedule();
    });
  }

  #runSchedule(): void {
    if (this.#closed) return;
    if (this.#storingBytes <= MAX_STORING_BYTES) {
      const { requests, cancels } = this.#scheduler.schedule(Date.now());
      this.#sendCancels(cancels);
      for (const [key, list] of requests) this.#sendRequests(this.#conns.get(key), list);
      this.#startWebSeedFetches(Date.now());
    }
    for (const c of this.#conns.values()) {
      if (!c.pc.ready || !this.#scheduler.hasPeer(c.key)) continue;
      c.pc.setInterested(this.#scheduler.isInteresting(c.key));
    }
  }

  #pauseReading(ms: number): void {
    if (this.#readingPaused) return;
    this.#readingPaused = true;
    for (const c of this.#conns.values()) c.pc.pauseReading();
    setTimeout(() => {
      this.#readingPaused = false;
      for (const c of this.#conns.values()) c.pc.resumeReading();
    }, ms).unref();
  }

  #tick(): void {
    if (this.#closed) return;
    const now = Date.now();
    this.#sendCancels(this.#scheduler.tick(now));
    for (const c of [...this.#conns.values()]) {
      if (now - c.pc.lastReceivedAt > IDLE_TIMEOUT_MS) c.pc.destroy('idle');
    }
    this.#uploader.tick(now);
    this.#assembly.trimPool(now);
    if (this.#starving(now)) this.emit('starving');
    this.#dropStalled(now);
    this.#connectSome();
    this.#runSchedule();
  }

  // ── web seeds ──────────────────────────────────────────────────────────────

  /** Asks the web seeds for what the peers cannot deliver (see web-seed-picker.ts). */
  #startWebSeedFetches(now: number): void {
    if (this.#webSeeds.length === 0 || this.#fetches.size === 0) return;
    const seeds = this.#webSeeds.map((w) => ({ id: w.id, ready: w.source.ready, freeSlots: w.source.parallelPieces - w.inflight.size }));
    if (!seeds.some((s) => s.ready && s.freeSlots > 0)) return;
    const picks = pickWebSeedFetches(this.#webSeedCandidates(now), seeds, now, { random: Math.random });
    for (const pick of picks) this.#fetchFromWebSeed(this.#webSeeds[pick.seed]!, pick.index);
  }

  /** Wanted pieces no web seed is fetching, with what the peers can do for each: every urgent one, the first others. */
  *#webSeedCandidates(now: number): Generator<WantedPieceSupply> {
    let others = 0;
    for (const index of this.#scheduler.wantedPieces()) {
      if (this.#storing.has(index) || this.#webSeeds.some((w) => w.inflight.has(index))) continue;
      const priority = this.#scheduler.priorityOf(index)!;
      const urgent = priority === 'urgent';
      if (!urgent && ++others > WEB_SEED_SCAN_LIMIT) continue; // keep going: urgent pieces may come later in the order
      const supply = this.#scheduler.peerSupply(index, now, urgent);
      yield { index, priority, deadline: urgent ? this.#deadlineOf(index) : undefined, ...supply };
    }
  }

  /** The soonest deadline among an urgent piece's waiters. */
  #deadlineOf(index: PieceIndex): number | undefined {
    let deadline: number | undefined;
    for (const w of this.#fetches.get(index) ?? []) if (w.priority === 'urgent' && w.deadline !== undefined) deadline = Math.min(deadline ?? Infinity, w.deadline);
    return deadline;
  }

  #fetchFromWebSeed(seed: WebSeedSlot, index: PieceIndex): void {
    const ac = new AbortController();
    seed.inflight.set(index, ac);
    let fetched: Promise<VerifiedPiece>;
    try {
      fetched = seed.source.fetchVerifiedPiece(index, ac.signal);
    } catch (err) {
      fetched = Promise.reject(err);
    }
    fetched.then(
      (piece) => {
        if (seed.inflight.get(index) === ac) seed.inflight.delete(index);
        if (piece.index !== index) return this.#webSeedFailed(seed, index, new Error(`sent piece ${piece.index} when asked for ${index}`));
        const size = piece.data.length;
        seed.piecesFetched++;
        seed.bytesFetched += size;
        this.#downloaded += size;
        (this.#transferBySource.webSeed ??= { downloaded: 0, uploaded: 0 }).downloaded += size;
        if (this.#closed || ac.signal.aborted || this.#storing.has(index) || this.#storage.has(index) || !this.#scheduler.isWanted(index)) {
          this.#requestSchedule();
          return;
        }
        if (this.#scheduler.priorityOf(index) === 'urgent') this.#urgentProgressAt = Date.now();
        this.#assembly.discard(index); // blocks peers sent of it are not needed now
        this.#takeVerified(piece);
        this.#requestSchedule();
      },
      (err: unknown) => {
        if (seed.inflight.get(index) === ac) seed.inflight.delete(index);
        if (this.#closed || ac.signal.aborted) return;
        this.#webSeedFailed(seed, index, err);
      },
    );
  }

  /** The piece stays with the peers (the scheduler never let go of it); a blocked read keeps its deadline. */
  #webSeedFailed(seed: WebSeedSlot, index: PieceIndex, err: unknown): void {
    this.#log.info({ webSeed: seed.source.name, index, reason: (err as Error)?.message ?? String(err) }, 'web seed did not deliver a piece; peers may');
    this.emit('web-seed-failure', seed.source.name, index, err);
    this.#requestSchedule();
  }

  #abortWebFetches(index: PieceIndex, why: string): void {
    for (const w of this.#webSeeds) {
      const ac = w.inflight.get(index);
      if (!ac) continue;
      w.inflight.delete(index);
      ac.abort(new Error(why));
    }
  }
}

/** 0.0.0.0 or :: listens everywhere: outgoing connections then use the kernel's choice. */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

function normalizeHost(host: string): string {
  return host.startsWith('::ffff:') ? host.slice(7) : host;
}

function hostOfKey(key: string): string {
  const at = key.lastIndexOf('#');
  const address = at >= 0 ? key.slice(0, at) : key;
  return address.slice(0, address.lastIndexOf(':'));
}

