import { BLOCK_SIZE, type PieceIndex, type PieceLayout } from '../metainfo/piece-layout.js';
import { chooseUnchoked } from './choker.js';
import type { UploadResponder } from './peer-connection.js';
import type { PieceStorage } from './piece-storage.js';
import type { TokenBucket } from './rate-limiter.js';
import { SharePolicy, type ShareMode } from './share-policy.js';
import { wireCounters } from './wire-counters.js';

/**
 * What we send: who is unchoked (the choker's decision, applied every round), which
 * requests are served (valid, held, within the queue, the share policy's word for an
 * origin), and the pump that reads blocks from the storage and writes them out within the
 * upload limit and the socket's backpressure. It knows peers only as UploadConnections.
 */

/**
 * The reason given to the wire when the share policy rejects a request: one object, since the
 * wire only reads its message. An origin rejects several requests for each block it sends
 * (9 : 1 in the cluster bench), and a new Error per reject, stack trace and all, was a fifth of
 * the origin's CPU profile.
 */
const ANOTHER_PEER_HAS_IT = new Error('another peer has it');
/** The other reasons for a reject, shared for the same reason. */
const NOT_AVAILABLE = new Error('not available');
const QUEUE_FULL = new Error('request queue full');
const NOT_INTERESTED = new Error('peer said it is not interested');

/** The part of a peer connection uploads use (PeerConnection has it). */
export interface UploadConnection {
  readonly closed: boolean;
  /** We choke the peer. */
  readonly amChoking: boolean;
  readonly peerInterested: boolean;
  /** Both ends speak the fast extension: a request can be rejected. */
  readonly hasFast: boolean;
  /** Bytes queued in the socket. */
  readonly writableLength: number;
  uploadSpeed(): number;
  choke(): void;
  unchoke(): void;
}

export interface UploaderOptions {
  layout: PieceLayout;
  storage: PieceStorage;
  bucket: TokenBucket;
  /** Regular unchoke slots; one optimistic slot comes on top. */
  slots: number;
  /** Requests queued per peer (our advertised reqq); more are rejected. */
  queueLimit: number;
  shareMode?: ShareMode;
  /** Verified, announced, not yet readable from the storage: requests for it wait. */
  announcedEarly(index: PieceIndex): boolean;
  /** Bytes/s the peer sends us (the choker rewards it while we download). */
  downloadRate(key: string, now: number): number;
  /** We want pieces (else the choker ranks by what peers take from us). */
  downloading(): boolean;
  /** Some connected peer other than `except`, not a seed, has the piece (the share policy's question). */
  anotherPeerHas(index: PieceIndex, except: string): boolean;
  /** Some connected peer other than `except` has every piece (another seed). */
  aSeedHas?(index: PieceIndex, except: string): boolean;
  /** A block went out to the peer. */
  uploaded(key: string, bytes: number): void;
}

interface UploadRequest {
  index: PieceIndex;
  offset: number;
  length: number;
  respond: UploadResponder;
}

interface UploadPeer {
  readonly key: string;
  readonly conn: UploadConnection;
  queue: UploadRequest[];
  /** Storage reads under way for it. */
  active: number;
}

const UPLOADS_PER_PEER = 8;
/**
 * Tokens the upload pump waits for when the bucket is short: 64 KiB, four blocks, so that a
 * wake-up sends several blocks (one corked write) instead of one block per millisecond.
 */
const TOKEN_BATCH = 64 * 1024;
const UPLOAD_SOCKET_HIGH_WATER = 2 * 1024 * 1024;
const RECHOKE_EVERY_MS = 10_000;
const OPTIMISTIC_EVERY_MS = 30_000;

export class Uploader {
  readonly #opts: UploaderOptions;
  readonly #peers = new Map<string, UploadPeer>();
  readonly #sharePolicy: SharePolicy | undefined;
  #lastRechoke = 0;
  #lastOptimisticRotation = 0;
  #optimistic: string | undefined;
  #storedCount = 0;
  #storedCountAt = -Infinity;
  #uploaded = 0;
  /**
   * Peers whose next block waits for tokens, in the order they ran short: one timer for all
   * of them, served in that order when it fires (round robin: a peer that runs short again goes
   * to the back). One timer per peer, re-armed by every pump call, was a herd: ~190 timers
   * fired per block sent in an 8-node cluster.
   */
  readonly #waitingForTokens = new Set<string>();
  #tokenTimer: NodeJS.Timeout | undefined;

  constructor(opts: UploaderOptions) {
    this.#opts = opts;
    this.#sharePolicy = opts.shareMode === 'distinct' ? new SharePolicy() : undefined;
  }

  /** Payload bytes sent, all peers. */
  get uploaded(): number {
    return this.#uploaded;
  }

  /** Requests queued, all peers. */
  get queued(): number {
    let n = 0;
    for (const p of this.#peers.values()) n += p.queue.length;
    return n;
  }

  /** Storage reads under way for blocks to send, all peers. */
  get reading(): number {
    let n = 0;
    for (const p of this.#peers.values()) n += p.active;
    return n;
  }

  /** A peer whose handshake is done. */
  addPeer(key: string, conn: UploadConnection): void {
    this.#peers.set(key, { key, conn, queue: [], active: 0 });
  }

  removePeer(key: string): void {
    const peer = this.#peers.get(key);
    if (peer) peer.queue.length = 0;
    this.#peers.delete(key);
    this.#waitingForTokens.delete(key);
    this.#sharePolicy?.peerLeft(key);
    if (this.#optimistic === key) this.#optimistic = undefined;
  }

  /** An interested peer is unchoked at once while a slot (regular or optimistic) is free. */
  interested(key: string): void {
    const peer = this.#peers.get(key);
    if (!peer) return;
    let unchoked = 0;
    for (const p of this.#peers.values()) if (!p.conn.amChoking) unchoked++;
    if (unchoked < this.#opts.slots + 1) peer.conn.unchoke();
  }

  /**
   * Its queue is dropped, each request answered (a reject, with the fast extension): a request
   * dropped silently stayed in flight at the peer until its request timeout (15 s) snubbed us.
   */
  uninterested(key: string): void {
    const peer = this.#peers.get(key);
    if (!peer) return;
    const dropped = peer.queue;
    peer.queue = [];
    for (const r of dropped) r.respond(NOT_INTERESTED);
  }

  request(key: string, index: PieceIndex, offset: number, length: number, respond: UploadResponder): void {
    const peer = this.#peers.get(key);
    if (!peer) return;
    const { layout, storage } = this.#opts;
    const valid =
      layout.isValidPiece(index) &&
      length > 0 &&
      length <= 2 * BLOCK_SIZE &&
      offset >= 0 &&
      offset + length <= layout.pieceSize(index) &&
      (storage.has(index) || this.#opts.announcedEarly(index));
    wireCounters.requestsReceived++;
    if (!valid) {
      wireCounters.rejectsOther++;
      respond(NOT_AVAILABLE);
      return;
    }
    if (peer.queue.length >= this.#opts.queueLimit) {
      wireCounters.rejectsOther++;
      respond(QUEUE_FULL);
      return;
    }
    if (this.#sharePolicy && peer.conn.hasFast && this.#seedingAll()) {
      const now = Date.now();
      const othersHave = (piece: number, other: string): boolean => this.#opts.anotherPeerHas(piece as PieceIndex, other);
      const seedHas = (piece: number, other: string): boolean => this.#opts.aSeedHas?.(piece as PieceIndex, other) ?? false;
      if (this.#sharePolicy.decide(key, index, now, othersHave, seedHas) === 'reject') {
        wireCounters.rejectsShare++;
        respond(ANOTHER_PEER_HAS_IT); // a reject message: the peer asks that one
        return;
      }
      this.#sharePolicy.serving(key, index, now);
    }
    peer.queue.push({ index, offset, length, respond });
    this.pump(key);
  }

  /** One cancel takes back one request (the oldest match), as the wire does: a block asked twice stays asked once. */
  cancel(key: string, index: number, offset: number, length: number): void {
    const peer = this.#peers.get(key);
    if (!peer) return;
    const at = peer.queue.findIndex((r) => r.index === index && r.offset === offset && r.length === length);
    if (at >= 0) peer.queue.splice(at, 1);
  }

  /** Every round (RECHOKE_EVERY_MS), the choker's decision; call about once a second. */
  tick(now: number): void {
    if (now - this.#lastRechoke >= RECHOKE_EVERY_MS) this.#rechoke(now);
  }

  /** Something changed for every queue (a piece became readable, or will not): serve what can be. */
  pumpAll(): void {
    for (const p of this.#peers.values()) if (p.queue.length > 0) this.pump(p.key);
  }

  /** Stops the token timer (the swarm is closing). */
  close(): void {
    clearTimeout(this.#tokenTimer);
    this.#tokenTimer = undefined;
    this.#waitingForTokens.clear();
  }

  /** Serves the peer's queue as far as the limits allow (again on the socket's 'drain', and when tokens return). */
  pump(key: string): void {
    const peer = this.#peers.get(key);
    if (!peer) return;
    if (this.#waitingForTokens.has(key)) return; // its turn comes when the token timer fires
    const { conn } = peer;
    const { storage, bucket } = this.#opts;
    wireCounters.uploadPumps++;
    while (peer.queue.length > 0 && peer.active < UPLOADS_PER_PEER && !conn.closed) {
      if (conn.writableLength > UPLOAD_SOCKET_HIGH_WATER) return; // resumed on 'drain'
      const next = peer.queue[0]!;
      if (!storage.has(next.index)) {
        if (this.#opts.announcedEarly(next.index)) return; // verified, being written: pumped again when it is readable
        peer.queue.shift();
        next.respond(NOT_AVAILABLE);
        continue;
      }
      if (bucket.waitFor(next.length) > 0) {
        this.#waitForTokens(key);
        return;
      }
      bucket.take(next.length);
      peer.queue.shift();
      peer.active++;
      storage.readBlock(next.index, next.offset, next.length).then(
        (buf) => {
          peer.active--;
          if (conn.closed || conn.amChoking) return;
          // Counted only if it went out: the peer may have cancelled the request meanwhile.
          if (next.respond(null, buf)) {
            this.#uploaded += buf.length;
            wireCounters.blocksSent++;
            wireCounters.bytesSent += buf.length;
            this.#opts.uploaded(key, buf.length);
          }
          this.pump(key);
        },
        (err: unknown) => {
          peer.active--;
          next.respond(err instanceof Error ? err : new Error(String(err)));
          this.pump(key);
        },
      );
    }
  }

  #waitForTokens(key: string): void {
    this.#waitingForTokens.add(key);
    this.#armTokenTimer();
  }

  #armTokenTimer(): void {
    if (this.#tokenTimer || this.#waitingForTokens.size === 0) return;
    wireCounters.uploadTimersArmed++;
    const { bucket } = this.#opts;
    const batch = Math.min(TOKEN_BATCH, bucket.burst);
    const wait = Math.max(1, bucket.waitFor(batch));
    this.#tokenTimer = setTimeout(() => {
      this.#tokenTimer = undefined;
      // The event loop's clock can run a little behind Date.now(), so a timer may fire before a
      // whole batch is back; wait for the rest rather than serve a short turn.
      if (bucket.waitFor(batch) > 0) {
        this.#armTokenTimer();
        return;
      }
      // In turn while tokens last: a served peer that runs short again goes to the back (and
      // re-arms the timer); the ones not reached keep their place at the front.
      for (const k of [...this.#waitingForTokens]) {
        if (bucket.waitFor(BLOCK_SIZE) > 0) break;
        this.#waitingForTokens.delete(k);
        this.pump(k);
      }
      this.#armTokenTimer();
    }, wait);
    this.#tokenTimer.unref();
  }

  #rechoke(now: number): void {
    this.#lastRechoke = now;
    const rotate = now - this.#lastOptimisticRotation >= OPTIMISTIC_EVERY_MS;
    if (rotate) this.#lastOptimisticRotation = now;
    const peers = [...this.#peers.values()];
    const decision = chooseUnchoked(
      peers.map((p) => ({
        key: p.key,
        interested: p.conn.peerInterested,
        downloadRate: this.#opts.downloadRate(p.key, now),
        uploadRate: p.conn.uploadSpeed(),
      })),
      { slots: this.#opts.slots, seeding: !this.#opts.downloading(), optimistic: this.#optimistic, rotateOptimistic: rotate },
    );
    this.#optimistic = decision.optimistic;
    for (const p of peers) {
      if (decision.unchoke.has(p.key)) p.conn.unchoke();
      else if (!p.conn.amChoking) {
        p.conn.choke();
        p.queue.length = 0;
      }
    }
  }

  /** Whether we hold every piece (the share policy is for an origin, not for a node still downloading). */
  #seedingAll(): boolean {
    const now = Date.now();
    const { layout, storage } = this.#opts;
    if (this.#storedCount < layout.pieceCount && now - this.#storedCountAt >= 1000) {
      this.#storedCountAt = now;
      let n = 0;
      for (const _ of storage.haveIndices()) n++;
      this.#storedCount = n;
    }
    return this.#storedCount === layout.pieceCount;
  }
}
