import { BLOCK_SIZE, type PieceIndex, type PieceLayout } from '../metainfo/piece-layout.js';
import { AvailabilityBuckets } from './availability.js';
import { FirstCopyOwners, followsFirstCopyRule } from './first-copies.js';
import { PRIORITIES_HIGH_FIRST, PRIORITY_RANK, type Priority } from './priority.js';
import { RateMeter } from './rate-meter.js';

/**
 * Which block to request from which peer, and when. A pure unit: no sockets,
 * no timers, no buffers. Time comes in as `now` (ms) so every decision can be
 * replayed in a test. The Swarm feeds it peer events and sends what it returns.
 *
 * Rules, in order of precedence:
 * 1. Priorities: urgent > readahead > warm. A peer's free request slots go to
 *    the highest priority it can serve.
 * 2. Pre-emption (`schedule`): pending urgent blocks go to the peers with the
 *    shortest expected queue time; a peer whose pipeline is full of lower
 *    priority requests has the most recent of them cancelled to make room.
 * 3. Deadlines: within `duplicateLeadMs` of an urgent piece's deadline, each of its
 *    outstanding blocks is also requested from a second peer; when one copy
 *    arrives the other is cancelled.
 * 4. Among equals: pieces already started by this peer first (one piece, one
 *    source, so a hash failure names its culprit), then new pieces rarest first.
 * 5. Pipelining: requests in flight per peer = measured rate × target queue time,
 *    within the peer's reqq; slow start before the rate is known.
 * 6. A peer that delivers nothing for `requestTimeoutMs` is snubbed: its blocks go
 *    back to the pool and it gets one request at a time until it delivers.
 * 7. Sharing (the origin is spent once): a piece another, non-seed peer has is not
 *    asked of a seed (a peer with every piece) unless that peer cannot deliver it
 *    in time (by an urgent piece's deadline, else within 4 × targetQueueMs);
 *    endgame may still duplicate from a seed. Among equally rare read-ahead pieces the choice is
 *    random (`random`), so nodes reading the same window fetch different pieces
 *    and trade; a piece a peer rejected (a seed handing out distinct pieces says
 *    so: someone else is getting it) is not asked of that peer again for
 *    `declineMs`, or until its deadline is near, so a blocked read still gets it.
 * 8. First copies (with `selfId`): a seed is asked only for the read-ahead and
 *    warm pieces this node owns (FirstCopyOwners: rendezvous hashing over this node
 *    and the connected btmount peers still downloading), in the order they were
 *    wanted, and for those whose owner turned out to read other pieces than we do
 *    (it announced nothing for `firstCopyIdleMs`, or its HAVEs are of pieces we
 *    never wanted: sharded reads) or that have been wanted for `firstCopyGraceMs`
 *    (see firstCopyHere). Urgent pieces keep rules 1-3, so a blocked read never
 *    waits for an owner. So the nodes' requests to an origin are distinct in the
 *    first place: in the simulated 8-node cluster (test/scheduler-sharing.test.ts),
 *    taking another member's piece whenever none of ours was left cost the origin
 *    1.6x the dataset and 2.5x the bound; asking only for ours, 1.02x and 1.6x.
 */

export type PeerKey = string;

export interface BlockRequest {
  readonly index: PieceIndex;
  readonly offset: number;
  readonly length: number;
}

export interface PeerRequest extends BlockRequest {
  readonly peer: PeerKey;
}

export interface SchedulerOptions {
  /** Seconds of transfer to keep queued at each peer (bandwidth-delay). Default 1 s. */
  targetQueueMs?: number;
  /** Requests in flight for a new peer, before its rate is known. Default 32. */
  initialDepth?: number;
  /** Lower bound on requests in flight per (non-snubbed) peer. Default 4. */
  minDepth?: number;
  /** Our own upper bound per peer, whatever its reqq. Default 1024. */
  maxDepth?: number;
  /** reqq assumed when a peer does not advertise one. Default 250. */
  defaultReqq?: number;
  /** A peer with requests outstanding that delivers nothing this long is snubbed. Default 15 s. */
  requestTimeoutMs?: number;
  /** How close to an urgent piece's deadline its blocks get a second requester. Default 1 s. */
  duplicateLeadMs?: number;
  /** A block outstanding this long may be duplicated by an idle peer (endgame). Default 2 s. */
  endgameAgeMs?: number;
  /** Bytes of started, unfinished pieces beyond which no new non-urgent piece is started. Default 256 MiB. */
  maxPartialBytes?: number;
  /** All requests in flight, all peers together. Default 8192 (128 MiB). */
  maxTotalInflight?: number;
  /** Rate assumed for a peer with no measurement yet, bytes/s (queue-time estimates). Default 1 MiB/s. */
  assumedRate?: number;
  /**
   * A piece a peer rejected is not asked of it again for this long (or until its deadline is near).
   * Default 3 s: an origin that hands out distinct pieces rejects a piece it is sending another
   * peer for 3 s (SharePolicy's holdMs) and serves the whole piece to a repeat, so a read-ahead
   * piece asked again sooner took a second copy from the origin (1 s: origin factor up to 1.5 at
   * N = 8); by then the other peer has it, or the read is blocked and its deadline decides.
   */
  declineMs?: number;
  /**
   * Not even near its deadline (nor as a deadline or endgame duplicate) is a rejected piece asked
   * of that peer again sooner than this. An origin that hands out distinct pieces serves a request
   * repeated 250 ms after its reject (SharePolicy's repeatAfterMs), and rejects one repeated
   * sooner: asking again at once bounced thousands of requests a second off it. Default 300 ms.
   */
  rejectRetryMs?: number;
  /** Picks among equally rare read-ahead pieces ([0, 1)). Default: none, the lowest index first (deterministic). */
  random?: () => number;
  /**
   * This node's peer id (hex, as peers see it): turns on first-copy ownership (rule 8) over it and
   * the peers added with a btmount `peerId`. Default: none (every piece is ours to take).
   */
  selfId?: string;
  /**
   * A wanted piece another member owns counts as ours once it has been wanted this long and nobody
   * has it (its owner lags, or sees another member set). Default 10 s (longer than a read-ahead
   * window takes to fill: a shorter grace let every node take the owners' pieces).
   */
  firstCopyGraceMs?: number;
  /**
   * A member that has announced no piece for this long (since it connected, or its last HAVE) reads
   * nothing: the pieces it owns are ours. Default 1 s.
   */
  firstCopyIdleMs?: number;
}

type Tunables = Required<Omit<SchedulerOptions, 'random' | 'selfId'>>;

const DEFAULTS: Tunables = {
  targetQueueMs: 1000,
  initialDepth: 32,
  minDepth: 4,
  maxDepth: 1024,
  defaultReqq: 250,
  requestTimeoutMs: 15_000,
  duplicateLeadMs: 1000,
  endgameAgeMs: 2000,
  maxPartialBytes: 256 * 1024 * 1024,
  maxTotalInflight: 8192,
  assumedRate: 1024 * 1024,
  declineMs: 3000,
  rejectRetryMs: 300,
  firstCopyGraceMs: 10_000,
  firstCopyIdleMs: 1000,
};

/** Equally rare candidates looked at for a random pick (bounds the scan). */
const TIE_SAMPLE = 32;
/**
 * Queued pieces a peer may pass over before a fill gives up on new pieces: a seed
 * gives way on every piece the others have, and the queue can hold a whole torrent.
 * Rarest first, so the pieces only the seed has come before these.
 */
const PASS_OVER_LIMIT = 1024;
/** A member's HAVEs remembered to tell whether it reads what we read (rule 8). */
const HAVE_HISTORY = 8;

/** What became of a block a peer sent. Only `accepted` data belongs in the piece. */
export type BlockVerdict =
  | 'accepted' // store these bytes
  | 'duplicate' // we asked, but another copy got there first, or nobody wants the piece any more
  | 'late' // we asked, then cancelled; harmless
  | 'unrequested' // never asked for: the peer is misbehaving
  | 'invalid'; // not a block of this torrent

export interface BlockOutcome {
  verdict: BlockVerdict;
  /** All blocks of the piece are in: hash it, then call `pieceVerified` or `pieceFailed`. */
  pieceComplete: boolean;
  /** Duplicate requests for this block on other peers: send them a cancel. */
  cancels: PeerRequest[];
}

export interface Assignment {
  requests: Map<PeerKey, BlockRequest[]>;
  cancels: PeerRequest[];
}

interface InFlight {
  readonly index: PieceIndex;
  readonly block: number;
  readonly offset: number;
  readonly length: number;
  readonly rank: number;
  readonly sentAt: number;
  readonly duplicate: boolean;
}

const blockKey = (index: number, block: number): number => index * 0x100000 + block;

class PeerState {
  reqq: number;
  /** BitTorrent-order bitfield of the pieces the peer has. */
  pieces: Uint8Array;
  haveAll = false;
  /** Bits set in `pieces`. */
  haveCount = 0;
  choked = true;
  fast = false;
  readonly allowedFast = new Set<number>();
  /** Requests sent and not answered, oldest first. */
  readonly inflight = new Map<number, InFlight>();
  /** Requests we cancelled recently (a copy may still arrive): key → time. */
  readonly cancelled = new Map<number, number>();
  readonly meter: RateMeter;
  lastBlockAt: number;
  snubbed = false;
  slowStart = true;
  slowStartDepth: number;
  lastTickRate = 0;
  lastTickAt: number;
  /** Wanted, unfinished pieces this peer has: > 0 means we are interested. */
  interesting = 0;
  lastEndgameScan = -Infinity;
  /** Pieces the peer rejected: index → until when we do not ask it again. */
  readonly declined = new Map<number, number>();

  constructor(
    readonly key: PeerKey,
    pieceCount: number,
    reqq: number,
    initialDepth: number,
    now: number,
  ) {
    this.reqq = reqq;
    this.pieces = new Uint8Array(Math.ceil(pieceCount / 8));
    this.meter = new RateMeter(now);
    this.lastBlockAt = now;
    this.lastTickAt = now;
    this.slowStartDepth = initialDepth;
  }

  has(index: number): boolean {
    return this.haveAll || (this.pieces[index >> 3]! & (0x80 >> (index & 7))) !== 0;
  }

  /** Has every piece: the origin, or a node that is done (its upload is best kept for what nobody else has). */
  isSeed(pieceCount: number): boolean {
    return this.haveAll || this.haveCount === pieceCount;
  }
}

class WantedPiece {
  started = false;
  verifying = false;
  /** Per block: received yet? */
  received: Uint8Array | undefined;
  /** Per block: peers it is requested from (normally one; two near a deadline). */
  requesters: Array<PeerKey[] | undefined> = [];
  /** Per block: peer whose copy was accepted. */
  sources: Array<PeerKey | undefined> = [];
  receivedCount = 0;
  /** Blocks neither received nor requested from anyone. */
  needed = 0;
  /** Lowest block that may be needed. */
  cursor = 0;
  /** The peer that started the piece (whole pieces from one source where possible). */
  owner: PeerKey | undefined;

  constructor(
    readonly index: PieceIndex,
    public priority: Priority,
    public deadline: number | undefined,
    readonly size: number,
    readonly blockCount: number,
    /** When it was first wanted (ms; -Infinity when the caller did not say). */
    readonly wantedAt: number,
  ) {}

  start(owner: PeerKey | undefined): void {
    this.started = true;
    this.received = new Uint8Array(this.blockCount);
    this.requesters = new Array(this.blockCount);
    this.sources = new Array(this.blockCount);
    this.receivedCount = 0;
    this.needed = this.blockCount;
    this.cursor = 0;
    this.owner = owner;
  }

  blockLength(block: number): number {
    return Math.min(BLOCK_SIZE, this.size - block * BLOCK_SIZE);
  }
}

export class Scheduler {
  readonly #opts: Tunables;
  readonly #random: (() => number) | undefined;
  readonly #peers = new Map<PeerKey, PeerState>();
  readonly #wanted = new Map<PieceIndex, WantedPiece>();
  /** Wanted pieces not started, rarest first, one set per priority. */
  readonly #queued: Record<Priority, AvailabilityBuckets> = {
    urgent: new AvailabilityBuckets(),
    readahead: new AvailabilityBuckets(),
    warm: new AvailabilityBuckets(),
  };
  /** Started pieces with blocks nobody has been asked for yet. */
  readonly #active: Record<Priority, Set<PieceIndex>> = { urgent: new Set(), readahead: new Set(), warm: new Set() };
  /** Started pieces not yet verified (for endgame and the memory bound). */
  readonly #started = new Map<PieceIndex, WantedPiece>();
  /** Per piece: peers with a bitfield bit set (have-all peers are counted apart). */
  readonly #availability: Uint32Array;
  #haveAllPeers = 0;
  #totalInflight = 0;
  #partialBytes = 0;
  /** First-copy owners (rule 8), with `selfId`. */
  readonly #firstCopies: FirstCopyOwners | undefined;
  /** Peers that follow the first-copy rule: key → peer id. */
  readonly #memberIds = new Map<PeerKey, string>();
  /**
   * Per member: of its last HAVEs (up to HAVE_HISTORY, newest in bit 0), which were of pieces we
   * want or wanted, and how many it sent; a member most of whose HAVEs are of pieces we never
   * wanted reads other pieces than we do (rule 8).
   */
  readonly #memberHaves = new Map<PeerKey, { wanted: number; count: number; lastAt: number }>();
  /** Per piece: 1 once it was wanted (with first copies only). */
  readonly #everWanted: Uint8Array;

  readonly #layout: PieceLayout;

  constructor(
    layout: PieceLayout,
    options: SchedulerOptions = {},
  ) {
    this.#layout = layout;
    const { random, selfId, ...tunables } = options;
    this.#opts = { ...DEFAULTS, ...stripUndefined(tunables) };
    this.#random = random;
    this.#availability = new Uint32Array(layout.pieceCount);
    this.#firstCopies = selfId === undefined ? undefined : new FirstCopyOwners(selfId, layout.pieceCount);
    this.#everWanted = new Uint8Array(selfId === undefined ? 0 : layout.pieceCount);
  }

  // ── wanted pieces ──────────────────────────────────────────────────────────

  /**
   * Wants a piece at this priority (replacing an earlier priority) with an optional deadline (ms).
   * `now` (ms) dates the first want, for firstCopyGraceMs; without it the piece counts as waited.
   */
  want(index: PieceIndex, priority: Priority, deadline?: number, now = -Infinity): void {
    if (!this.#layout.isValidPiece(index)) throw new RangeError(`no piece ${index}`);
    const existing = this.#wanted.get(index);
    if (existing) {
      existing.deadline = deadline;
      if (existing.priority === priority) return;
      const old = existing.priority;
      existing.priority = priority;
      if (this.#queued[old].delete(index)) this.#queued[priority].add(index, this.#availability[index]!);
      if (this.#active[old].delete(index)) this.#active[priority].add(index);
      return;
    }
    const piece = new WantedPiece(index, priority, deadline, this.#layout.pieceSize(index), this.#layout.blockCount(index), now);
    this.#wanted.set(index, piece);
    if (this.#firstCopies) this.#everWanted[index] = 1;
    this.#queued[priority].add(index, this.#availability[index]!);
    for (const peer of this.#peers.values()) if (peer.has(index)) peer.interesting++;
  }

  /** Stops wanting a piece; returns the requests to cancel. Partial data is dropped. */
  unwant(index: PieceIndex): PeerRequest[] {
    const piece = this.#wanted.get(index);
    if (!piece) return [];
    const cancels = this.#dropInflightOf(piece);
    this.#forget(piece);
    return cancels;
  }

  isWanted(index: PieceIndex): boolean {
    return this.#wanted.has(index);
  }

  priorityOf(index: PieceIndex): Priority | undefined {
    return this.#wanted.get(index)?.priority;
  }

  wantedCount(): number {
    return this.#wanted.size;
  }

  *wantedPieces(): Iterable<PieceIndex> {
    yield* this.#wanted.keys();
  }

  /** The piece passed its hash and is stored: it is no longer wanted. Returns leftover duplicates to cancel. */
  pieceVerified(index: PieceIndex): PeerRequest[] {
    return this.unwant(index);
  }

  /**
   * The piece failed its hash. It goes back to the queue (whole, to be fetched
   * again). Returns which peer sent which blocks, for charging.
   */
  pieceFailed(index: PieceIndex): Map<PeerKey, number[]> {
    const piece = this.#wanted.get(index);
    const byPeer = new Map<PeerKey, number[]>();
    if (!piece || !piece.started) return byPeer;
    piece.sources.forEach((peer, block) => {
      if (peer === undefined) return;
      const list = byPeer.get(peer) ?? [];
      list.push(block);
      byPeer.set(peer, list);
    });
    this.#dropInflightOf(piece);
    this.#unstart(piece);
    this.#queued[piece.priority].add(index, this.#availability[index]!);
    return byPeer;
  }

  // ── peers ──────────────────────────────────────────────────────────────────

  /** `peerId` (hex): a btmount peer's id makes it a first-copy member while it downloads (rule 8). */
  addPeer(key: PeerKey, now: number, opts: { reqq?: number; fast?: boolean; peerId?: string } = {}): void {
    if (this.#peers.has(key)) throw new Error(`peer ${key} already added`);
    const peer = new PeerState(key, this.#layout.pieceCount, this.#clampReqq(opts.reqq), this.#opts.initialDepth, now);
    peer.fast = opts.fast ?? false;
    this.#peers.set(key, peer);
    if (this.#firstCopies && followsFirstCopyRule(opts.peerId)) {
      this.#memberIds.set(key, opts.peerId!);
      this.#memberHaves.set(key, { wanted: 0, count: 0, lastAt: now });
      this.#firstCopies.setMember(key, opts.peerId!, true);
    }
  }

  /**
   * This node takes the piece's first copy from an origin now (rule 8): it owns it, or nobody
   * else could (no members, or no ownership), or its owner does not read what we read (it
   * announced nothing for firstCopyIdleMs, or most of its HAVEs are of pieces we never wanted:
   * each node reads its own shard), or the piece has been wanted for firstCopyGraceMs (its owner
   * lags, or sees another member set) and `graceApplies`.
   */
  firstCopyHere(index: PieceIndex, now: number, graceApplies = true): boolean {
    const owner = this.#firstCopies?.ownerOf(index);
    if (owner === undefined) return true;
    const piece = this.#wanted.get(index);
    if (piece === undefined) return false;
    if (!this.#readsWithUs(owner, now)) return true;
    return graceApplies && now - piece.wantedAt >= this.#opts.firstCopyGraceMs;
  }

  /**
   * The member reads what we read: it announced a piece (or connected) within firstCopyIdleMs (a
   * mount that reads nothing is no owner), and at least half of its last HAVEs were of pieces we
   * want or wanted, or it has sent too few to tell (then it is left its first copies, for
   * firstCopyGraceMs at most).
   */
  #readsWithUs(key: PeerKey, now: number): boolean {
    const h = this.#memberHaves.get(key);
    if (!h || now - h.lastAt > this.#opts.firstCopyIdleMs) return false;
    if (h.count < HAVE_HISTORY / 2) return true;
    const n = Math.min(h.count, HAVE_HISTORY);
    let wanted = 0;
    for (let bits = h.wanted & ((1 << n) - 1); bits !== 0; bits &= bits - 1) wanted++;
    return 2 * wanted >= n;
  }

  /** A member that turned seed (or back) leaves (or rejoins) the first-copy members. */
  #memberChanged(peer: PeerState): void {
    const id = this.#memberIds.get(peer.key);
    if (id !== undefined) this.#firstCopies!.setMember(peer.key, id, !peer.isSeed(this.#layout.pieceCount));
  }

  hasPeer(key: PeerKey): boolean {
    return this.#peers.has(key);
  }

  /** The peer's advertised request queue length (extended handshake `reqq`). */
  setReqq(key: PeerKey, reqq: number | undefined): void {
    this.#peer(key).reqq = this.#clampReqq(reqq);
  }

  setFast(key: PeerKey, fast: boolean): void {
    this.#peer(key).fast = fast;
  }

  /** Replaces the peer's piece set with a BitTorrent bitfield (MSB = piece 0). */
  peerBitfield(key: PeerKey, bitfield: Uint8Array): void {
    const peer = this.#peer(key);
    this.#forgetPieces(peer);
    const count = this.#layout.pieceCount;
    const bytes = Math.min(bitfield.length, peer.pieces.length);
    for (let i = 0; i < bytes; i++) {
      const byte = bitfield[i]!;
      if (byte === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        const index = i * 8 + bit;
        if (index < count && byte & (0x80 >> bit)) this.#addHave(peer, index as PieceIndex);
      }
    }
    this.#memberChanged(peer);
  }

  /** `now` (ms): when, for first copies (a member that announces nothing for long reads nothing). */
  peerHave(key: PeerKey, index: PieceIndex, now = -Infinity): void {
    const peer = this.#peer(key);
    if (!this.#layout.isValidPiece(index) || peer.has(index)) return;
    this.#addHave(peer, index);
    if (peer.haveCount === this.#layout.pieceCount) this.#memberChanged(peer);
    const h = this.#memberHaves.get(key);
    if (h) {
      h.wanted = ((h.wanted << 1) | this.#everWanted[index]!) & ((1 << HAVE_HISTORY) - 1);
      h.count++;
      h.lastAt = Math.max(h.lastAt, now);
    }
  }

  peerHaveAll(key: PeerKey): void {
    const peer = this.#peer(key);
    if (peer.haveAll) return;
    this.#forgetPieces(peer);
    peer.haveAll = true;
    this.#haveAllPeers++;
    peer.interesting = this.#wanted.size - this.#countVerifying();
    this.#memberChanged(peer);
  }

  /** The peer has every piece (have-all, or a full bitfield). */
  peerIsSeed(key: PeerKey): boolean {
    return this.#peers.get(key)?.isSeed(this.#layout.pieceCount) ?? false;
  }

  peerHas(key: PeerKey, index: PieceIndex): boolean {
    return this.#peers.get(key)?.has(index) ?? false;
  }

  /** True when the peer has a wanted piece: send `interested`. */
  isInteresting(key: PeerKey): boolean {
    const peer = this.#peers.get(key);
    return peer !== undefined && peer.interesting > 0;
  }

  allowedFast(key: PeerKey, index: PieceIndex): void {
    const peer = this.#peer(key);
    if (peer.allowedFast.size < 64) peer.allowedFast.add(index);
  }

  /**
   * The peer choked or unchoked us. Without the fast extension a choke discards
   * our requests at the peer, so they go back to the pool; with it, the peer
   * rejects each one explicitly.
   */
  setChoked(key: PeerKey, choked: boolean): void {
    const peer = this.#peer(key);
    peer.choked = choked;
    if (choked && !peer.fast) for (const f of [...peer.inflight.values()]) this.#release(peer, f, false);
  }

  isChoked(key: PeerKey): boolean {
    return this.#peer(key).choked;
  }

  removePeer(key: PeerKey): void {
    const peer = this.#peers.get(key);
    if (!peer) return;
    for (const f of [...peer.inflight.values()]) this.#release(peer, f, false);
    this.#forgetPieces(peer);
    this.#peers.delete(key);
    this.#memberIds.delete(key);
    this.#memberHaves.delete(key);
    this.#firstCopies?.remove(key);
  }

  // ── blocks ─────────────────────────────────────────────────────────────────

  onBlock(key: PeerKey, index: PieceIndex, offset: number, length: number, now: number): BlockOutcome {
    const peer = this.#peer(key);
    const none: BlockOutcome = { verdict: 'invalid', pieceComplete: false, cancels: [] };
    if (!this.#layout.isValidPiece(index) || offset % BLOCK_SIZE !== 0) return none;
    const block = offset / BLOCK_SIZE;
    if (block >= this.#layout.blockCount(index)) return none;
    const expectedLength = Math.min(BLOCK_SIZE, this.#layout.pieceSize(index) - offset);
    if (length !== expectedLength) return none;

    const k = blockKey(index, block);
    const flight = peer.inflight.get(k);
    const piece = this.#wanted.get(index);
    if (!flight) {
      const verdict: BlockVerdict = peer.cancelled.delete(k) ? 'late' : 'unrequested';
      return { verdict, pieceComplete: false, cancels: [] };
    }

    peer.inflight.delete(k);
    this.#totalInflight--;
    peer.meter.add(now, length);
    peer.lastBlockAt = now;
    peer.snubbed = false;
    if (peer.slowStart && peer.slowStartDepth < this.#hardCap(peer)) peer.slowStartDepth++;

    if (!piece || !piece.started || piece.verifying || piece.received![block]) {
      return { verdict: 'duplicate', pieceComplete: false, cancels: [] };
    }
    const requesters = piece.requesters[block] ?? [];
    const cancels: PeerRequest[] = [];
    for (const other of requesters) {
      if (other === key) continue;
      const otherPeer = this.#peers.get(other);
      const f = otherPeer?.inflight.get(k);
      if (otherPeer && f) {
        this.#unsend(otherPeer, f, now);
        cancels.push({ peer: other, index, offset, length });
      }
    }
    piece.requesters[block] = undefined;
    piece.received![block] = 1;
    piece.sources[block] = key;
    piece.receivedCount++;
    if (piece.receivedCount === piece.blockCount) {
      piece.verifying = true;
      this.#active[piece.priority].delete(index);
      for (const p of this.#peers.values()) if (p.has(index)) p.interesting--;
      return { verdict: 'accepted', pieceComplete: true, cancels };
    }
    return { verdict: 'accepted', pieceComplete: false, cancels };
  }

  /**
   * The peer rejected a request (fast extension): the block goes back to the
   * pool, and the piece is not asked of this peer again for `declineMs` (a seed
   * that hands out distinct pieces rejects one another peer is getting).
   */
  onReject(key: PeerKey, index: PieceIndex, offset: number, now: number): void {
    const peer = this.#peer(key);
    const f = peer.inflight.get(blockKey(index, offset / BLOCK_SIZE));
    if (!f) return;
    this.#release(peer, f, false);
    if (peer.declined.size < 4 * this.#opts.maxDepth) peer.declined.set(index, now + this.#opts.declineMs);
  }

  /** Which of the piece's blocks are in, for a caller that assembles it. */
  isBlockReceived(index: PieceIndex, offset: number): boolean {
    const piece = this.#wanted.get(index);
    return piece?.received?.[offset / BLOCK_SIZE] === 1;
  }

  // ── picking ────────────────────────────────────────────────────────────────

  /** Requests in flight the peer should have now. */
  depth(key: PeerKey, now: number): number {
    const peer = this.#peer(key);
    if (peer.snubbed) return 1;
    const byRate = Math.ceil((peer.meter.rate(now) * this.#opts.targetQueueMs) / 1000 / BLOCK_SIZE);
    const depth = Math.max(byRate, peer.slowStart ? peer.slowStartDepth : 0, this.#opts.minDepth);
    return Math.min(depth, this.#hardCap(peer));
  }

  rate(key: PeerKey, now: number): number {
    return this.#peers.get(key)?.meter.rate(now) ?? 0;
  }

  inflightCount(key?: PeerKey): number {
    if (key === undefined) return this.#totalInflight;
    return this.#peers.get(key)?.inflight.size ?? 0;
  }

  /** The peer's outstanding requests, oldest first. */
  outstanding(key: PeerKey): BlockRequest[] {
    const peer = this.#peers.get(key);
    if (!peer) return [];
    return [...peer.inflight.values()].map((f) => ({ index: f.index, offset: f.offset, length: f.length }));
  }

  /** Milliseconds until the peer would deliver a block requested now. */
  expectedQueueMs(key: PeerKey, now: number): number {
    const peer = this.#peer(key);
    return this.#etaMs(peer, now, this.#inflightBytes(peer) + BLOCK_SIZE);
  }

  /** Tops up one peer's pipeline. Called after each block it delivers. */
  fill(key: PeerKey, now: number): BlockRequest[] {
    const peer = this.#peers.get(key);
    if (!peer) return [];
    const out: BlockRequest[] = [];
    let budget = Math.min(this.depth(key, now) - peer.inflight.size, this.#opts.maxTotalInflight - this.#totalInflight);
    if (budget <= 0 || peer.interesting <= 0) return out;

    for (const priority of PRIORITIES_HIGH_FIRST) {
      const rank = PRIORITY_RANK[priority];
      // Pieces this peer started: finish them.
      for (const index of this.#active[priority]) {
        if (budget <= 0) return out;
        const piece = this.#wanted.get(index)!;
        if (piece.owner === key && this.#mayAsk(peer, piece, now)) budget -= this.#take(peer, piece, budget, rank, now, out);
      }
      // Urgent pieces others started: help them.
      if (priority === 'urgent') budget = this.#helpActive(peer, priority, budget, rank, now, out);
      // New pieces, rarest first.
      budget = this.#startNew(peer, priority, budget, rank, now, out);
      // Others' pieces, so that no piece waits on one slow peer.
      if (priority !== 'urgent') budget = this.#helpActive(peer, priority, budget, rank, now, out);
      if (budget <= 0) return out;
    }
    this.#endgame(peer, budget, now, out);
    return out;
  }

  /**
   * Assigns pending urgent blocks across peers by expected queue time,
   * pre-empting lower priorities; adds deadline duplicates; then tops up every
   * peer. Call when wants change, a peer unchokes, or on each tick.
   */
  schedule(now: number): Assignment {
    const requests = new Map<PeerKey, BlockRequest[]>();
    const cancels: PeerRequest[] = [];
    const add = (key: PeerKey, r: BlockRequest): void => {
      const list = requests.get(key);
      if (list) list.push(r);
      else requests.set(key, [r]);
    };
    this.#assignUrgent(now, add, cancels);
    this.#duplicateNearDeadline(now, add);
    for (const key of this.#peers.keys()) for (const r of this.fill(key, now)) add(key, r);
    return { requests, cancels };
  }

  /**
   * Periodic upkeep (about once a second): ends slow start when a peer's rate
   * stops growing; snubs peers that deliver nothing. Returns requests to cancel.
   */
  tick(now: number): PeerRequest[] {
    const cancels: PeerRequest[] = [];
    for (const peer of this.#peers.values()) {
      if (now - peer.lastTickAt >= 1000) {
        const rate = peer.meter.rate(now);
        if (peer.slowStart && peer.lastTickRate > 0 && rate < peer.lastTickRate * 1.1) peer.slowStart = false;
        peer.lastTickRate = rate;
        peer.lastTickAt = now;
      }
      const oldest = peer.inflight.values().next().value as InFlight | undefined;
      if (oldest && now - Math.max(peer.lastBlockAt, oldest.sentAt) > this.#opts.requestTimeoutMs) {
        peer.snubbed = true;
        peer.slowStart = false;
        for (const f of [...peer.inflight.values()]) {
          this.#release(peer, f, true, now);
          cancels.push({ peer: peer.key, index: f.index, offset: f.offset, length: f.length });
        }
      }
      for (const [k, at] of peer.cancelled) {
        if (now - at < 60_000 && peer.cancelled.size <= 2 * this.#opts.maxDepth) break;
        peer.cancelled.delete(k);
      }
    }
    return cancels;
  }

  isSnubbed(key: PeerKey): boolean {
    return this.#peer(key).snubbed;
  }

  /** How many connected peers have the piece (for "why are we waiting"). */
  peersWith(index: PieceIndex): { total: number; unchoked: number } {
    let total = 0;
    let unchoked = 0;
    for (const peer of this.#peers.values()) {
      if (!peer.has(index)) continue;
      total++;
      if (this.#canRequest(peer, index)) unchoked++;
    }
    return { total, unchoked };
  }

  /**
   * What the connected peers can do for a piece, for a source the scheduler does not drive
   * (a web seed): how many have it, how many of those may be asked now (not choking us, or
   * allowed-fast, and not snubbed), and when the soonest of those would deliver what is
   * missing of it (ms since the epoch; only with `withDelivery`, else the count stops at the
   * first usable peer); with first-copy members, whether this node takes its first copy
   * (firstCopyHere).
   */
  peerSupply(
    index: PieceIndex,
    now: number,
    withDelivery: boolean,
  ): { availability: number; usablePeers: number; peerDeliveryAt: number; firstCopyHere?: boolean } {
    const availability = this.#availability[index]! + this.#haveAllPeers;
    let usablePeers = 0;
    let peerDeliveryAt = Infinity;
    // For a web seed the grace is for a blocked read only. A web seed cannot reject a second
    // copy, and read-ahead far ahead at a slow origin waits past the grace as a matter of course
    // (8 nodes, 4 MiB/s, each wanting ~100 pieces: every node then fetched every piece, 3.6x).
    const piece = this.#wanted.get(index);
    const graceApplies = piece?.priority === 'urgent';
    const firstCopy = this.#firstCopies && this.#firstCopies.size > 0 ? { firstCopyHere: this.firstCopyHere(index, now, graceApplies) } : {};
    if (availability === 0) return { availability, usablePeers, peerDeliveryAt, ...firstCopy };
    const missing = piece?.started ? (piece.blockCount - piece.receivedCount) * BLOCK_SIZE : this.#layout.pieceSize(index);
    for (const p of this.#peers.values()) {
      if (p.snubbed || !this.#canRequest(p, index)) continue;
      usablePeers++;
      if (!withDelivery) break;
      peerDeliveryAt = Math.min(peerDeliveryAt, now + this.#etaMs(p, now, p.inflight.size * BLOCK_SIZE + missing));
    }
    return { availability, usablePeers, peerDeliveryAt, ...firstCopy };
  }

  // ── internals ──────────────────────────────────────────────────────────────

  #peer(key: PeerKey): PeerState {
    const peer = this.#peers.get(key);
    if (!peer) throw new Error(`unknown peer ${key}`);
    return peer;
  }

  #clampReqq(reqq: number | undefined): number {
    if (reqq === undefined || !Number.isFinite(reqq) || reqq < 1) return this.#opts.defaultReqq;
    return Math.floor(reqq);
  }

  #hardCap(peer: PeerState): number {
    return Math.max(1, Math.min(peer.reqq, this.#opts.maxDepth));
  }

  #canRequest(peer: PeerState, index: number): boolean {
    return peer.has(index) && (!peer.choked || (peer.fast && peer.allowedFast.has(index)));
  }

  /**
   * canRequest, and the sharing rules: not a piece the peer declined lately
   * (unless its deadline is near), and not, from a seed, a piece another peer
   * can give (urgent: in time for its deadline).
   */
  #mayAsk(peer: PeerState, piece: WantedPiece, now: number): boolean {
    const index = piece.index;
    if (!this.#canRequest(peer, index)) return false;
    const until = peer.declined.get(index);
    if (until !== undefined) {
      if (now >= until) peer.declined.delete(index);
      else if (!this.#deadlineNear(piece, now) || this.#rejectedLately(peer, index, now)) return false;
    }
    return !(peer.isSeed(this.#layout.pieceCount) && this.#otherSourceInTime(peer, piece, now));
  }

  /** The peer rejected the piece less than rejectRetryMs ago. */
  #rejectedLately(peer: PeerState, index: PieceIndex, now: number): boolean {
    const until = peer.declined.get(index);
    return until !== undefined && now < until - this.#opts.declineMs + this.#opts.rejectRetryMs;
  }

  #deadlineNear(piece: WantedPiece, now: number): boolean {
    return piece.priority === 'urgent' && piece.deadline !== undefined && now >= piece.deadline - this.#opts.duplicateLeadMs;
  }

  /**
   * A peer other than `seed`, not a seed itself, that can be asked for the piece
   * and deliver it in time: by an urgent piece's deadline, else within
   * 4 × targetQueueMs (a busy peer does not hold the piece hostage while the seed idles).
   */
  #otherSourceInTime(seed: PeerState, piece: WantedPiece, now: number): boolean {
    const index = piece.index;
    // Quick no: nobody but (perhaps) the seed itself has announced the piece in a bitfield or HAVE.
    if (this.#availability[index]! - (seed.haveAll ? 0 : 1) <= 0) return false;
    for (const p of this.#peers.values()) {
      if (p === seed || p.snubbed || p.isSeed(this.#layout.pieceCount) || !this.#canRequest(p, index)) continue;
      const until = p.declined.get(index);
      if (until !== undefined && now < until) continue;
      const by = piece.priority === 'urgent' && piece.deadline !== undefined ? piece.deadline - this.#opts.duplicateLeadMs : now + 4 * this.#opts.targetQueueMs;
      // Requests in flight × a block's size: an estimate is enough, and this runs per candidate piece.
      if (now + this.#etaMs(p, now, p.inflight.size * BLOCK_SIZE + piece.size) <= by) return true;
    }
    return false;
  }

  #inflightBytes(peer: PeerState): number {
    let bytes = 0;
    for (const f of peer.inflight.values()) bytes += f.length;
    return bytes;
  }

  #etaMs(peer: PeerState, now: number, bytes: number): number {
    const rate = Math.max(peer.meter.rate(now), this.#opts.assumedRate * (peer.snubbed ? 0.01 : 1));
    return (bytes * 1000) / rate;
  }

  #addHave(peer: PeerState, index: PieceIndex): void {
    peer.pieces[index >> 3]! |= 0x80 >> (index & 7);
    peer.haveCount++;
    this.#availability[index]!++;
    const piece = this.#wanted.get(index);
    if (piece) {
      if (!piece.verifying) peer.interesting++;
      if (!piece.started) this.#queued[piece.priority].update(index, this.#availability[index]!);
    }
  }

  /** Takes the peer's pieces out of the availability counts. */
  #forgetPieces(peer: PeerState): void {
    if (peer.haveAll) {
      peer.haveAll = false;
      this.#haveAllPeers--;
    } else {
      for (let i = 0; i < peer.pieces.length; i++) {
        const byte = peer.pieces[i]!;
        if (byte === 0) continue;
        for (let bit = 0; bit < 8; bit++) {
          if (!(byte & (0x80 >> bit))) continue;
          const index = (i * 8 + bit) as PieceIndex;
          this.#availability[index]!--;
          const piece = this.#wanted.get(index);
          if (piece && !piece.started) this.#queued[piece.priority].update(index, this.#availability[index]!);
        }
      }
    }
    peer.pieces.fill(0);
    peer.haveCount = 0;
    peer.interesting = 0;
  }

  #countVerifying(): number {
    let n = 0;
    for (const piece of this.#started.values()) if (piece.verifying) n++;
    return n;
  }

  #send(peer: PeerState, piece: WantedPiece, block: number, rank: number, now: number, duplicate: boolean): BlockRequest {
    const offset = block * BLOCK_SIZE;
    const length = piece.blockLength(block);
    const f: InFlight = { index: piece.index, block, offset, length, rank, sentAt: now, duplicate };
    peer.inflight.set(blockKey(piece.index, block), f);
    peer.cancelled.delete(blockKey(piece.index, block));
    this.#totalInflight++;
    const requesters = piece.requesters[block];
    if (requesters) requesters.push(peer.key);
    else {
      piece.requesters[block] = [peer.key];
      piece.needed--;
      if (piece.needed === 0) this.#active[piece.priority].delete(piece.index);
    }
    return { index: piece.index, offset, length };
  }

  /** Forgets a request we cancel at the peer (a late copy is then 'late', not 'unrequested'). */
  #unsend(peer: PeerState, f: InFlight, now: number): void {
    const k = blockKey(f.index, f.block);
    peer.inflight.delete(k);
    this.#totalInflight--;
    peer.cancelled.set(k, now);
  }

  /** A request is gone (rejected, choked, timed out, peer left): the block may be needed again. */
  #release(peer: PeerState, f: InFlight, cancelled: boolean, now = 0): void {
    const k = blockKey(f.index, f.block);
    if (!peer.inflight.delete(k)) return;
    this.#totalInflight--;
    if (cancelled) peer.cancelled.set(k, now);
    const piece = this.#wanted.get(f.index);
    if (!piece || !piece.started || piece.verifying) return;
    const requesters = piece.requesters[f.block];
    if (!requesters) return;
    const rest = requesters.filter((p) => p !== peer.key);
    if (rest.length > 0) {
      piece.requesters[f.block] = rest;
      return;
    }
    piece.requesters[f.block] = undefined;
    if (piece.received![f.block]) return;
    piece.needed++;
    piece.cursor = Math.min(piece.cursor, f.block);
    this.#active[piece.priority].add(piece.index);
  }

  #dropInflightOf(piece: WantedPiece): PeerRequest[] {
    const cancels: PeerRequest[] = [];
    if (!piece.started) return cancels;
    piece.requesters.forEach((requesters, block) => {
      for (const key of requesters ?? []) {
        const peer = this.#peers.get(key);
        const f = peer?.inflight.get(blockKey(piece.index, block));
        if (!peer || !f) continue;
        this.#unsend(peer, f, f.sentAt);
        cancels.push({ peer: key, index: piece.index, offset: f.offset, length: f.length });
      }
    });
    return cancels;
  }

  #unstart(piece: WantedPiece): void {
    if (!piece.started) return;
    if (piece.verifying) for (const p of this.#peers.values()) if (p.has(piece.index)) p.interesting++;
    this.#active[piece.priority].delete(piece.index);
    this.#started.delete(piece.index);
    this.#partialBytes -= piece.size;
    piece.started = false;
    piece.verifying = false;
    piece.received = undefined;
    piece.requesters = [];
    piece.sources = [];
  }

  #forget(piece: WantedPiece): void {
    this.#unstart(piece); // counts the piece as interesting again if it was verifying
    this.#queued[piece.priority].delete(piece.index);
    this.#wanted.delete(piece.index);
    for (const p of this.#peers.values()) if (p.has(piece.index)) p.interesting--;
  }

  #startPiece(piece: WantedPiece, owner: PeerKey | undefined): void {
    this.#queued[piece.priority].delete(piece.index);
    piece.start(owner);
    this.#started.set(piece.index, piece);
    this.#partialBytes += piece.size;
    this.#active[piece.priority].add(piece.index);
  }

  /** Requests up to `budget` needed blocks of `piece` from `peer`; returns how many. */
  #take(peer: PeerState, piece: WantedPiece, budget: number, rank: number, now: number, out: BlockRequest[]): number {
    let taken = 0;
    for (let b = piece.cursor; b < piece.blockCount && taken < budget && piece.needed > 0; b++) {
      if (piece.received![b] || piece.requesters[b]) {
        if (b === piece.cursor) piece.cursor++;
        continue;
      }
      out.push(this.#send(peer, piece, b, rank, now, false));
      taken++;
      if (b === piece.cursor) piece.cursor++;
    }
    return taken;
  }

  #helpActive(peer: PeerState, priority: Priority, budget: number, rank: number, now: number, out: BlockRequest[]): number {
    if (budget <= 0) return budget;
    const order = priority === 'urgent' ? this.#byDeadline(this.#active[priority]) : this.#active[priority];
    for (const index of order) {
      if (budget <= 0) break;
      const piece = this.#wanted.get(index)!;
      if (this.#mayAsk(peer, piece, now)) budget -= this.#take(peer, piece, budget, rank, now, out);
    }
    return budget;
  }

  #startNew(peer: PeerState, priority: Priority, budget: number, rank: number, now: number, out: BlockRequest[]): number {
    const queued = this.#queued[priority];
    while (budget > 0 && queued.size > 0) {
      // Scan whichever is shorter: the queue (rarest first) or the pieces this peer has.
      // Random among equally rare read-ahead pieces (nodes reading the same window spread over it); urgent and warm keep
      // the order they were asked in (a warm list is fetched in list order).
      const random = priority === 'readahead' ? this.#random : undefined;
      let index: PieceIndex | undefined;
      if (peer.haveAll || peer.haveCount >= queued.size) {
        // A seed (rule 8): only our own first copies, in the order they were wanted.
        const firstCopies = priority !== 'urgent' && this.#firstCopies !== undefined && this.#firstCopies.size > 0 && peer.isSeed(this.#layout.pieceCount);
        if (firstCopies) index = this.#firstQueuedFor(peer, queued, now, undefined, (i) => this.firstCopyHere(i, now));
        else index = this.#firstQueuedFor(peer, queued, now, random);
      } else index = this.#rarestQueuedAmong(peer, priority, now, random);
      if (index === undefined) break;
      const piece = this.#wanted.get(index)!;
      if (priority !== 'urgent' && this.#partialBytes + piece.size > this.#opts.maxPartialBytes && this.#partialBytes > 0) break;
      this.#startPiece(piece, peer.key);
      budget -= this.#take(peer, piece, budget, rank, now, out);
    }
    return budget;
  }

  /**
   * The rarest queued piece the peer may be asked for (ties: the first filed, or a random one of
   * the first few), among those `only` accepts.
   */
  #firstQueuedFor(
    peer: PeerState,
    queued: AvailabilityBuckets,
    now: number,
    random: (() => number) | undefined,
    only?: (index: PieceIndex) => boolean,
  ): PieceIndex | undefined {
    let ties: PieceIndex[] | undefined;
    let tieAvailability = 0;
    let passedOver = 0;
    for (const index of queued.inOrder()) {
      if (ties && (this.#availability[index] !== tieAvailability || ties.length >= TIE_SAMPLE)) break;
      if ((only && !only(index)) || !this.#mayAsk(peer, this.#wanted.get(index)!, now)) {
        if (++passedOver >= PASS_OVER_LIMIT) break;
        continue;
      }
      if (!random) return index;
      if (!ties) {
        ties = [];
        tieAvailability = this.#availability[index]!;
      }
      ties.push(index);
    }
    return ties ? ties[Math.floor(random!() * ties.length)] : undefined;
  }

  /** The rarest queued piece of this priority among the peer's pieces (ties: lowest index, or a random one). */
  #rarestQueuedAmong(peer: PeerState, priority: Priority, now: number, random: (() => number) | undefined): PieceIndex | undefined {
    let best: PieceIndex | undefined;
    let bestAvailability = Infinity;
    let ties = 0;
    const bits = peer.pieces;
    for (let i = 0; i < bits.length; i++) {
      const byte = bits[i]!;
      if (byte === 0) continue;
      for (let bit = 0; bit < 8; bit++) {
        if (!(byte & (0x80 >> bit))) continue;
        const index = (i * 8 + bit) as PieceIndex;
        const piece = this.#wanted.get(index);
        if (!piece || piece.started || piece.priority !== priority || !this.#mayAsk(peer, piece, now)) continue;
        const a = this.#availability[index]!;
        if (a < bestAvailability) {
          bestAvailability = a;
          best = index;
          ties = 1;
        } else if (a === bestAvailability && random && random() * ++ties < 1) {
          best = index; // reservoir sampling: each tie kept with probability 1/ties
        }
      }
    }
    return best;
  }

  #byDeadline(indices: Iterable<PieceIndex>): PieceIndex[] {
    return [...indices].sort((a, b) => {
      const da = this.#wanted.get(a)!.deadline ?? Infinity;
      const db = this.#wanted.get(b)!.deadline ?? Infinity;
      return da - db || a - b;
    });
  }

  /**
   * With nothing left to ask for, an idle peer duplicates blocks outstanding for
   * long elsewhere. The scan is over every started block, so a peer does it at
   * most every quarter of endgameAgeMs.
   */
  #endgame(peer: PeerState, budget: number, now: number, out: BlockRequest[]): void {
    if (now - peer.lastEndgameScan < this.#opts.endgameAgeMs / 4) return;
    peer.lastEndgameScan = now;
    for (const piece of this.#started.values()) {
      if (budget <= 0) return;
      if (piece.verifying || !this.#canRequest(peer, piece.index) || this.#rejectedLately(peer, piece.index, now)) continue;
      for (let b = 0; b < piece.blockCount && budget > 0; b++) {
        const requesters = piece.requesters[b];
        if (!requesters || requesters.length !== 1 || requesters[0] === peer.key) continue;
        const f = this.#peers.get(requesters[0]!)?.inflight.get(blockKey(piece.index, b));
        if (!f || now - f.sentAt < this.#opts.endgameAgeMs) continue;
        out.push(this.#send(peer, piece, b, PRIORITY_RANK[piece.priority], now, true));
        budget--;
      }
    }
  }

  #assignUrgent(now: number, add: (key: PeerKey, r: BlockRequest) => void, cancels: PeerRequest[]): void {
    const candidates = [...this.#active.urgent, ...this.#queued.urgent.inOrder()];
    if (candidates.length === 0) return;
    const queuedBytes = new Map<PeerState, number>();
    const bytesAhead = (p: PeerState): number => {
      let b = queuedBytes.get(p);
      if (b === undefined) queuedBytes.set(p, (b = this.#inflightBytes(p)));
      return b;
    };
    const rank = PRIORITY_RANK.urgent;
    for (const index of this.#byDeadline(candidates)) {
      const piece = this.#wanted.get(index)!;
      const peers = [...this.#peers.values()].filter((p) => !p.snubbed && this.#mayAsk(p, piece, now));
      if (peers.length === 0) continue;
      if (!piece.started) this.#startPiece(piece, undefined);
      for (let b = piece.cursor; b < piece.blockCount && piece.needed > 0; b++) {
        if (piece.received![b] || piece.requesters[b]) continue;
        if (this.#totalInflight >= this.#opts.maxTotalInflight) return;
        let best: PeerState | undefined;
        let bestEta = Infinity;
        for (const p of peers) {
          if (p.inflight.size >= this.#hardCap(p)) continue;
          const full = p.inflight.size >= this.depth(p.key, now);
          if (full && !this.#hasLowerPriority(p, rank)) continue;
          const eta = this.#etaMs(p, now, bytesAhead(p) + piece.blockLength(b));
          if (eta < bestEta) {
            bestEta = eta;
            best = p;
          }
        }
        if (!best) break;
        if (best.inflight.size >= this.depth(best.key, now)) {
          const victim = this.#newestLowerPriority(best, rank)!;
          this.#release(best, victim, true, now);
          cancels.push({ peer: best.key, index: victim.index, offset: victim.offset, length: victim.length });
        }
        add(best.key, this.#send(best, piece, b, rank, now, false));
        queuedBytes.set(best, bytesAhead(best) + piece.blockLength(b));
      }
    }
  }

  #hasLowerPriority(peer: PeerState, rank: number): boolean {
    return this.#newestLowerPriority(peer, rank) !== undefined;
  }

  #newestLowerPriority(peer: PeerState, rank: number): InFlight | undefined {
    let found: InFlight | undefined;
    for (const f of peer.inflight.values()) if (f.rank < rank) found = f;
    return found;
  }

  #duplicateNearDeadline(now: number, add: (key: PeerKey, r: BlockRequest) => void): void {
    for (const piece of this.#started.values()) {
      if (piece.priority !== 'urgent' || piece.verifying || piece.deadline === undefined) continue;
      if (now < piece.deadline - this.#opts.duplicateLeadMs) continue;
      for (let b = 0; b < piece.blockCount; b++) {
        const requesters = piece.requesters[b];
        if (!requesters || requesters.length !== 1) continue;
        let best: PeerState | undefined;
        let bestEta = Infinity;
        for (const p of this.#peers.values()) {
          if (p.key === requesters[0] || p.snubbed || !this.#canRequest(p, piece.index) || this.#rejectedLately(p, piece.index, now)) continue;
          if (p.inflight.size >= this.#hardCap(p)) continue;
          const eta = this.expectedQueueMs(p.key, now);
          if (eta < bestEta) {
            bestEta = eta;
            best = p;
          }
        }
        if (!best) continue;
        add(best.key, this.#send(best, piece, b, PRIORITY_RANK.urgent, now, true));
      }
    }
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
