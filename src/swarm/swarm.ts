import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { makePeerId } from '../peer-id.js';
import { type InfoHash, type PieceIndex, type PieceLayout } from '../metainfo/piece-layout.js';
import { Scheduler, type BlockRequest, type PeerRequest, type Priority, type SchedulerOptions } from '../scheduler/index.js';
import type { VerifiedPiece } from '../metainfo/verified-piece.js';
import { type ShareMode } from './share-policy.js';
import { Uploader } from './uploader.js';
import { PieceAssembly, type Charge } from './piece-assembly.js';
import { PieceWaiters } from './piece-waiters.js';
import { dialPeer, PeerList, type PeerCandidate } from './peer-list.js';
import { PeerConnection, type PeerSource, type WireExtension } from './peer-connection.js';
import type { PieceStorage } from './piece-storage.js';
import type { Source } from './source.js';
import { PeerWireSource, type SwarmPeerStats } from './source-peer-wire.js';
import { TokenBucket } from './rate-limiter.js';
import { wireCounters, wireCountersEnabled, wireGauges } from './wire-counters.js';
import type { WebPieceSource } from './web-piece-source.js';
import { WebSeedFetches, type WebSeedStats } from './web-seed-fetches.js';
import type { WantedPieceSupply } from './web-seed-picker.js';
import { ConnectionSlots, type SlotHolder } from './connection-slots.js';

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
  /** With every slot taken, a connection with no interest either way this long gives its slot to a new peer (default 30 s). */
  uselessConnectionMs?: number;
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

export type { SwarmPeerStats } from './source-peer-wire.js';

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

export type SwarmWebSeedStats = WebSeedStats;

/** Where a dialled peer came from. */
type DialSource = Exclude<PeerSource, 'incoming'>;

type Candidate = PeerCandidate<PeerWire, DialSource>;

type PeerWire = PeerWireSource<Candidate>;

const MAX_UNREQUESTED_BLOCKS = 16;
const IDLE_TIMEOUT_MS = 150_000;
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
 * The swarm engine for one torrent: it keeps the sources (source.ts) — the peer wires
 * (PeerWireSource) and the web seeds (WebSeedSource) — and feeds the units that decide:
 * the Scheduler (which block from which peer), WebSeedFetches (which piece from which web
 * seed: what peers cannot deliver), PieceAssembly (blocks to verified pieces, blame), the
 * Uploader (what we send), the PeerList (whom to dial). Every verified piece, from either
 * kind of source, goes into the storage on one path. It knows pieces and sources, nothing of paths.
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
  readonly #slots: ConnectionSlots;
  readonly #ourReqq: number;
  readonly #uploader: Uploader;
  readonly #downloadBucket: TokenBucket;
  #server: net.Server | undefined;
  #listenPort = 0;
  readonly #peerList = new PeerList<PeerWire, DialSource>();
  /** The peer sources, connecting or connected, by key; the web seeds are in #webSeeds. */
  readonly #peers = new Map<string, PeerWire>();
  /**
   * Incoming connections by the address their peer listens on (`host:p`, its extended
   * handshake's `p`): that address is not dialled while one lasts. Else a node dials every
   * peer that already connected to it, and the far side hangs up on the duplicate, again
   * and again (dozens of times per node in an 8-node cluster).
   */
  readonly #incomingByListenAddress = new Map<string, PeerWire>();
  #connSeq = 0;
  readonly #waiters = new PieceWaiters((index) => this.#rewant(index));
  /** Verified pieces on their way into storage. */
  readonly #storing = new Set<PieceIndex>();
  readonly #assembly: PieceAssembly;
  #storingBytes = 0;
  #downloaded = 0;
  readonly #transferBySource: Partial<Record<TransferSource, { downloaded: number; uploaded: number }>> = {};
  readonly #webSeeds = new WebSeedFetches({
    deliver: (piece) => this.#onWebSeedPiece(piece),
    failed: (seed, index, err) => this.#onWebSeedFailure(seed, index, err),
  });
  #scheduled = false;
  #tickTimer: NodeJS.Timeout | undefined;
  #readingPaused = false;
  /** When the current urgent wait began or last received an urgent block (see STARVING_AFTER_MS). */
  #urgentProgressAt = 0;
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
    this.peerId = makePeerId();
    // Random among equally rare pieces: nodes reading the same window then fetch different pieces and trade;
    // our peer id: first copies from an origin are spread over the btmount peers by it (rendezvous hashing).
    this.#scheduler = new Scheduler(opts.layout, { random: Math.random, selfId: this.peerId.toString('hex'), ...opts.scheduler });
    this.#assembly = new PieceAssembly(opts.layout, { banThreshold: opts.banThreshold ?? 2 });
    this.#maxConnections = opts.maxConnections ?? 50;
    this.#slots = new ConnectionSlots(opts.uselessConnectionMs);
    this.#ourReqq = opts.requestQueue ?? 1000;
    this.#uploader = new Uploader({
      layout: opts.layout,
      storage: opts.storage,
      bucket: new TokenBucket(opts.uploadLimit ?? 0),
      slots: opts.uploadSlots ?? 8,
      // Twice what we advertise: a requester at its cap (reqq in flight, as a fast one keeps) was
      // seen to overshoot it (our queue full with nothing being read; the cause is not found),
      // and each reject of that overshoot made it hold the piece back for seconds (a lone node
      // with 64 MiB of read-ahead at a 20 MiB/s seed: 121 rejects in one second, then 2 s with
      // nothing in flight).
      queueLimit: 2 * this.#ourReqq,
      ...(opts.shareMode ? { shareMode: opts.shareMode } : {}),
      announcedEarly: (index) => this.#announcedEarly.has(index),
      downloadRate: (key, now) => this.#scheduler.rate(key, now),
      downloading: () => this.#waiters.size > 0,
      anotherPeerHas: (index, except) => this.#anotherPeerHas(index, except),
      aSeedHas: (_index, except) => this.#anotherSeed(except),
      uploaded: (key, bytes) => {
        const conn = this.#peers.get(key);
        if (conn) this.#totals(conn.pc.source).uploaded += bytes;
      },
    });
    this.#downloadBucket = new TokenBucket(opts.downloadLimit ?? 0);
    this.#storage.on('added', this.#onAdded);
    this.#tickTimer = setInterval(() => this.#tick(), 1000);
    this.#tickTimer.unref();
    if (wireCountersEnabled) wireGauges.swarm = () => this.#gauges();
  }

  /** What the debug counters sample each second (wire-counters.ts). */
  #gauges(): Record<string, number> {
    let unchokedBy = 0;
    let interestedIn = 0;
    let inflightSeeds = 0;
    let maxPeerInflight = 0;
    let peerRequests = 0;
    for (const p of this.#peers.values()) {
      if (!p.usable) continue;
      // The wire's own list of the peer's pending requests, beside the uploader's queue: where
      // they disagree, a request was dropped without an answer.
      peerRequests += p.pc.pendingPeerRequests;
      if (!p.pc.peerChoking) unchokedBy++;
      if (p.pc.amInterested) interestedIn++;
      const n = p.inflight;
      if (this.#scheduler.peerIsSeed(p.key)) inflightSeeds += n;
      else maxPeerInflight = Math.max(maxPeerInflight, n);
    }
    return {
      gPeers: this.#peers.size,
      gWanted: this.#scheduler.wantedCount(),
      gWaiting: this.#waiters.size,
      gInflight: this.#scheduler.inflightCount(),
      gInflightSeeds: inflightSeeds,
      gMaxPeerInflight: maxPeerInflight,
      gUnchokedBy: unchokedBy,
      gInterestedIn: interestedIn,
      gStoringKiB: Math.round(this.#storingBytes / 1024),
      gUploadQueued: this.#uploader.queued,
      gUploadReading: this.#uploader.reading,
      gPeerRequests: peerRequests,
    };
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
  addPeer(host: string, port: number, source: DialSource = 'static'): void {
    if (this.#closed || !Number.isInteger(port) || port <= 0 || port > 65535) return;
    if (this.#peerList.add(normalizeHost(host), port, source, source === 'static')) this.#connectSome();
  }

  /**
   * A source of whole verified pieces (an HTTP origin). It is asked only for what the
   * connected peers cannot deliver (see web-seed-picker.ts); the swarm closes it in close().
   */
  addWebSeed(source: WebPieceSource): void {
    if (this.#closed) return source.close();
    this.#webSeeds.add(source);
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
    if (priority === 'urgent' && this.#waiters.urgentCount === 0) this.#urgentProgressAt = Date.now();
    return this.#waiters.wait(index, priority, deadline, signal);
  }

  stats(): SwarmStats {
    const now = Date.now();
    return {
      peers: [...this.#peers.values()].filter((p) => p.usable).map((p) => p.stats(now)),
      downloaded: this.#downloaded,
      uploaded: this.#uploader.uploaded,
      hashFailures: this.#assembly.hashFailures,
      banned: [...this.#peerList.bannedHosts],
      wanted: this.#waiters.size,
      verify: this.#assembly.verifyTime,
      bySource: Object.fromEntries(Object.entries(this.#transferBySource).map(([k, v]) => [k, { ...v }])),
      webSeeds: this.#webSeeds.stats(),
    };
  }

  /** How many connected peers have the piece (choking or not). */
  sourcesOf(index: PieceIndex): number {
    return this.#scheduler.peersWith(index).total;
  }

  /** Why wanted pieces are not arriving, in a few words (for EIO log lines). */
  waitingReason(): string {
    if (this.#closed) return 'swarm closed';
    const ready = [...this.#peers.values()].filter((p) => p.usable);
    const parts: string[] = [];
    if (ready.length === 0) {
      parts.push(this.#peerList.size > 0 ? `no peers connected (${this.#peerList.size} known)` : 'no peers');
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
    const webSeeds = this.#webSeeds.summary();
    if (webSeeds) parts.push(webSeeds);
    if (this.#assembly.hashFailures > 0) parts.push(`${this.#assembly.hashFailures} hash failures`);
    if (this.#peerList.bannedHosts.size > 0) parts.push(`${this.#peerList.bannedHosts.size} banned`);
    return parts.join('; ');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#tickTimer);
    clearTimeout(this.#redialTimer);
    this.#uploader.close();
    this.#storage.off('added', this.#onAdded);
    this.#waiters.rejectAll((index) => new Error(`swarm closed before piece ${index} arrived`));
    for (const source of this.#sources()) source.close('swarm closing');
    const server = this.#server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ── connections ────────────────────────────────────────────────────────────

  #connectSome(): void {
    if (this.#closed) return;
    const now = Date.now();
    for (const cand of this.#peerList.due(now, this.#starving(now) ? STARVING_REDIAL_MS : undefined)) {
      if (this.#incomingByListenAddress.has(cand.key)) continue;
      if (this.#peers.size >= this.#maxConnections && !this.#freeUselessSlot(now)) return;
      this.#dial(cand, now);
    }
  }

  #starving(now: number): boolean {
    return this.#waiters.urgentCount > 0 && now - this.#urgentProgressAt >= STARVING_AFTER_MS;
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

  /** Pieces blocked reads wait for that are being fetched (not those verified and being stored). */
  #urgentPieces(): PieceIndex[] {
    return [...this.#waiters.urgentPieces()].filter((i) => this.#scheduler.priorityOf(i) === 'urgent');
  }

  /** While reads starve, an incoming peer takes the place of a connection that has none of their pieces. */
  #makeRoom(now: number): boolean {
    if (!this.#starving(now)) return false;
    const urgent = this.#urgentPieces();
    for (const p of this.#peers.values()) {
      if (p.hasAny(urgent)) continue;
      p.close('making room for an incoming peer while reads wait');
      return true;
    }
    return false;
  }

  /** With every slot taken: the connection of no use the longest (see ConnectionSlots) makes way. */
  #freeUselessSlot(now: number): boolean {
    const key = this.#slots.leastUseful(this.#slotHolders(), now);
    if (key === undefined) return false;
    this.#peers.get(key)?.close('no interest either way while another peer wanted its connection slot');
    return true;
  }

  *#slotHolders(): Generator<SlotHolder> {
    for (const p of this.#peers.values()) yield { key: p.key, inUse: p.pc.amInterested || p.pc.peerInterested };
  }

  /** See STALLED_MS. */
  #dropStalled(now: number): void {
    if (this.#readingPaused || this.#waiters.urgentCount === 0) return; // paused by --download-limit: nobody can deliver
    const urgent = this.#urgentPieces();
    const withPieces = [...this.#peers.values()].filter((p) => p.hasAny(urgent));
    // Someone to give the blocks to: unchoking us, or sending (allowed-fast pieces) while it chokes.
    const better = withPieces.filter((p) => !p.stalled(now, STALLED_MS) && (!p.pc.peerChoking || now - p.lastBlockAt < STALLED_MS));
    if (better.length === 0) return;
    for (const p of withPieces) {
      if (!p.stalled(now, STALLED_MS)) continue;
      if (p.candidate) p.candidate.stalls++;
      p.close(`sent nothing for ${STALLED_MS / 1000} s while reads waited on its blocks`);
    }
  }

  #dial(cand: Candidate, now: number): void {
    // One read buffer per connection, reused for every read (see PeerConnection.receive).
    let conn: PeerWire | undefined;
    const socket = dialPeer({
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
    conn = this.#attach(socket, 'out', cand.host, cand.port, cand.source, cand, true);
    this.#peerList.dialled(cand, conn, now);
  }

  #accept(socket: net.Socket): void {
    const host = normalizeHost(socket.remoteAddress ?? '');
    if (this.#closed || this.#peerList.isBanned(host) || (this.#peers.size >= this.#maxConnections && !this.#makeRoom(Date.now()) && !this.#freeUselessSlot(Date.now()))) {
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
  ): PeerWire {
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
    const conn: PeerWire = new PeerWireSource(key, pc, candidate, this.#scheduler);
    this.#peers.set(key, conn);
    this.#slots.opened(key, Date.now());
    if (this.#readingPaused) pc.pauseReading();
    pc.once('ready', (peerId: string) => this.#onReady(conn, peerId));
    pc.once('close', (reason: string) => this.#onClose(conn, reason));
    return conn;
  }

  #onReady(conn: PeerWire, peerId: string): void {
    for (const other of this.#peers.values()) {
      if (other !== conn && other.peerId === peerId) return conn.pc.destroy('already connected to this peer');
    }
    conn.peerId = peerId;
    const { pc } = conn;
    const key = conn.key;
    this.#log.debug({ peer: pc.address, direction: pc.direction, fast: pc.hasFast }, 'peer connected');
    wireCounters.peersReady++;
    this.#scheduler.addPeer(key, Date.now(), { fast: pc.hasFast, peerId });
    if (conn.candidate) this.#peerList.connected(conn.candidate);
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
      have: (index) => update(() => this.#scheduler.peerHave(key, index as PieceIndex, Date.now())),
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
    pc.on('extended-handshake', () => {
      if (pc.closed || !live()) return;
      this.#scheduler.setReqq(key, pc.peerReqq);
      if (pc.direction === 'in') this.#noteListenAddress(conn);
    });
    pc.on('drain', () => this.#uploader.pump(key));
    this.#requestSchedule();
    this.emit('peer-ready', pc);
  }

  /** An incoming peer says where it listens: that address counts as connected (see #incomingByListenAddress). */
  #noteListenAddress(conn: PeerWire): void {
    const p = conn.pc.peerExtendedHandshake?.['p'];
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) return;
    // pc.address is `${host}:${port}`, as the peer list's keys are (an IPv6 host unbracketed).
    const host = conn.pc.address.slice(0, conn.pc.address.lastIndexOf(':'));
    const listenAddress = `${host}:${p}`;
    if (!this.#incomingByListenAddress.has(listenAddress)) this.#incomingByListenAddress.set(listenAddress, conn);
  }

  #onClose(conn: PeerWire, reason: string): void {
    this.#peers.delete(conn.key);
    if (conn.peerId !== undefined) wireCounters.peersClosed++;
    for (const [address, incoming] of this.#incomingByListenAddress) {
      if (incoming === conn) this.#incomingByListenAddress.delete(address);
    }
    if (this.#scheduler.hasPeer(conn.key)) this.#scheduler.removePeer(conn.key);
    this.#uploader.removePeer(conn.key);
    this.#slots.closed(conn.key);
    this.#log.debug({ peer: conn.pc.address, reason }, 'peer disconnected');
    const cand = conn.candidate;
    if (cand && cand.conn === conn) {
      const now = Date.now();
      const self = reason === 'connected to ourselves';
      // While reads starve every address is kept and re-dialled soon: any may turn out to have the data.
      const starving = this.#starving(now);
      this.#peerList.ended(cand, conn, { self, failed: !conn.pc.ready || now - conn.pc.connectedAt < 30_000, keep: starving }, now);
      if (starving && !self) this.#redialSoon();
    }
    if (!this.#closed) {
      this.emit('peer-closed', conn.pc.address, reason);
      this.#requestSchedule();
    }
  }

  // ── downloading ────────────────────────────────────────────────────────────

  #rewant(index: PieceIndex): void {
    const want = this.#waiters.want(index);
    if (!want) {
      this.#assembly.discard(index);
      this.#stopFetching(index, this.#scheduler.unwant(index), 'nobody wants the piece any more');
      this.#requestSchedule();
      return;
    }
    if (!this.#storing.has(index)) this.#scheduler.want(index, want.priority, want.deadline, Date.now());
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

  /**
   * Some connected peer other than `except`, itself still downloading, has the piece (for the
   * share policy). A peer with every piece is an origin as much as we are: rejecting in its
   * favour only moves the load onto its one upload (the policy bounds what we send beside it). In an 8-node cluster the first node to
   * finish was asked for the last pieces by the seven others (~70 requests queued each,
   * 8 MiB/s shared seven ways) for 10–15 s while the origin, rejecting every request because
   * that node had the piece, sent nothing.
   */
  #anotherPeerHas(index: PieceIndex, except: string): boolean {
    for (const p of this.#peers.values()) if (p.key !== except && p.has(index) && !this.#scheduler.peerIsSeed(p.key)) return true;
    return false;
  }

  /** Some connected peer other than `except` has every piece. */
  #anotherSeed(except: string): boolean {
    for (const p of this.#peers.values()) if (p.key !== except && p.usable && this.#scheduler.peerIsSeed(p.key)) return true;
    return false;
  }

  /** Bytes moved by one kind of source (a peer by how we found it, or the web seeds). */
  #totals(source: TransferSource): { downloaded: number; uploaded: number } {
    return (this.#transferBySource[source] ??= { downloaded: 0, uploaded: 0 });
  }

  #onBlock(conn: PeerWire, index: PieceIndex, offset: number, block: Uint8Array): void {
    const now = Date.now();
    conn.delivered(now);
    this.#downloaded += block.length;
    this.#totals(conn.pc.source).downloaded += block.length;
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
    if (!conn.usable) return;
    // Top up in batches (one write for several requests), keeping the pipeline at least 7/8 full.
    if (this.#storingBytes > MAX_STORING_BYTES) return;
    const depth = this.#scheduler.depth(conn.key, now);
    const batch = Math.min(32, Math.max(1, depth >> 3));
    if (conn.inflight <= depth - batch) conn.take(this.#scheduler.fill(conn.key, now), now);
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
    this.#stopFetching(index, this.#scheduler.pieceVerified(index), 'the piece came from another source');
    this.#applyCharges(this.#assembly.convict(piece));
    this.#storing.add(index);
    // HAVE the moment the hash checks, not after the disk write: peers waiting for this piece can ask for it now.
    this.#announcedEarly.add(index);
    wireCounters.piecesVerified++;
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
          this.#waiters.reject(index, new Error(`piece ${index} was verified but the cache had no room for it`));
        }
      },
      (err: unknown) => {
        settled();
        this.#uploader.pumpAll();
        this.#log.error({ err, index }, 'storing a verified piece failed');
        this.#waiters.reject(index, err);
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
    if (!this.#peerList.ban(host)) return;
    this.#log.warn({ host, reason }, 'peer banned');
    for (const p of [...this.#peers.values()]) if (p.pc.host === host) p.close(`banned: ${reason}`);
    this.emit('ban', host, reason);
  }

  #pieceAvailable(index: PieceIndex): void {
    if (this.#closed) return;
    this.#assembly.discard(index);
    this.#stopFetching(index, this.#scheduler.isWanted(index) ? this.#scheduler.unwant(index) : [], 'the piece is here');
    if (!this.#announcedEarly.has(index)) this.#announce(index); // ours went out at verify (the put's 'added' and its promise both land here)
    this.#uploader.pumpAll();
    this.#waiters.resolve(index);
    this.#requestSchedule();
  }

  /** HAVE to every connected peer (PeerWireSource.announce says which are told). */
  #announce(index: PieceIndex): void {
    for (const p of this.#peers.values()) p.announce(index);
  }

  /** No source fetches the piece any more: the peers' requests the scheduler gave back are cancelled, the web seeds' fetches aborted. */
  #stopFetching(index: PieceIndex, peerCancels: readonly PeerRequest[], why: string): void {
    this.#sendCancels(peerCancels);
    this.#webSeeds.stop(index, why);
  }

  #sendCancels(cancels: readonly PeerRequest[]): void {
    for (const c of cancels) this.#peers.get(c.peer)?.cancel(c);
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
      wireCounters.scheduleRuns++;
      const { requests, cancels } = this.#scheduler.schedule(Date.now());
      this.#sendCancels(cancels);
      for (const [key, list] of requests) this.#peers.get(key)?.take(list, Date.now());
      if (this.#webSeeds.canStart && this.#waiters.size > 0) this.#webSeeds.start(this.#webSeedCandidates(Date.now()), Date.now());
    }
    for (const p of this.#peers.values()) if (p.usable) p.pc.setInterested(this.#scheduler.isInteresting(p.key));
  }

  #pauseReading(ms: number): void {
    if (this.#readingPaused) return;
    this.#readingPaused = true;
    for (const c of this.#peers.values()) c.pc.pauseReading();
    const resume = (): void => {
      // Blocks parsed after the pause began (the rest of the read that began it) are owed too:
      // resuming before they are paid for let one more read in per pause, and the rate overshot.
      const owed = this.#downloadBucket.waitFor(0);
      if (owed > 0) return void setTimeout(resume, owed).unref();
      this.#readingPaused = false;
      // What a connection held while paused is parsed as it resumes, and may pause reading again: the rest then wait for that pause.
      for (const c of this.#peers.values()) if (!this.#readingPaused) c.pc.resumeReading();
    };
    setTimeout(resume, ms).unref();
  }

  #tick(): void {
    if (this.#closed) return;
    const now = Date.now();
    const timedOut = this.#scheduler.tick(now);
    wireCounters.timedOutRequests += timedOut.length;
    this.#sendCancels(timedOut);
    for (const p of [...this.#peers.values()]) if (now - p.pc.lastReceivedAt > IDLE_TIMEOUT_MS) p.close('idle');
    this.#slots.observe(this.#slotHolders(), now);
    this.#uploader.tick(now);
    this.#assembly.trimPool(now);
    if (this.#starving(now)) this.emit('starving');
    this.#dropStalled(now);
    this.#connectSome();
    this.#runSchedule();
  }

  /** Every source: the peer wires, then the web seeds. */
  *#sources(): Generator<Source<BlockRequest> | Source<PieceIndex>> {
    yield* [...this.#peers.values()];
    yield* this.#webSeeds.sources;
  }

  // ── web seeds ──────────────────────────────────────────────────────────────

  /**
   * Wanted pieces no web seed is fetching, with what the peers can do for each: every urgent
   * one, then the first WEB_SEED_SCAN_LIMIT others in the order they were wanted.
   */
  *#webSeedCandidates(now: number): Generator<WantedPieceSupply> {
    const open = (index: PieceIndex): boolean => !this.#storing.has(index) && !this.#webSeeds.isFetching(index);
    for (const index of this.#urgentPieces()) {
      if (open(index)) yield { index, priority: 'urgent', deadline: this.#waiters.want(index)?.deadline, ...this.#scheduler.peerSupply(index, now, true) };
    }
    let others = 0;
    for (const index of this.#scheduler.wantedPieces()) {
      const priority = this.#scheduler.priorityOf(index)!;
      if (priority === 'urgent' || !open(index)) continue;
      if (++others > WEB_SEED_SCAN_LIMIT) return;
      yield { index, priority, deadline: undefined, ...this.#scheduler.peerSupply(index, now, false) };
    }
  }

  /** A web seed's verified piece: counted, then taken like a peer-assembled one if it is still wanted. */
  #onWebSeedPiece(piece: VerifiedPiece): void {
    const { index } = piece;
    this.#downloaded += piece.data.length;
    this.#totals('webSeed').downloaded += piece.data.length;
    if (!this.#closed && !this.#storing.has(index) && !this.#storage.has(index) && this.#scheduler.isWanted(index)) {
      if (this.#scheduler.priorityOf(index) === 'urgent') this.#urgentProgressAt = Date.now();
      this.#assembly.discard(index); // blocks peers sent of it are not needed now
      this.#takeVerified(piece);
    }
    this.#requestSchedule();
  }

  /** The piece stays with the peers (the scheduler never let go of it); a blocked read keeps its deadline. */
  #onWebSeedFailure(seed: string, index: PieceIndex, err: unknown): void {
    this.#log.info({ webSeed: seed, index, reason: (err as Error)?.message ?? String(err) }, 'web seed did not deliver a piece; peers may');
    this.emit('web-seed-failure', seed, index, err);
    this.#requestSchedule();
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

