import net from 'node:net';

/**
 * The peers we know of and may dial: where each came from, its failures and when it may
 * be tried again (exponential backoff), the connection it has now, and the hosts banned
 * for lying. One list, used by the swarm (piece data) and by the metadata fetch (BEP 9)
 * alike; each keeps its own connections and tells the list how they ended.
 */

export interface PeerListOptions {
  /** Failures after which a peer that is not persistent is forgotten (default 3). */
  retries?: number;
  /** Longest wait between attempts (default 60 s). */
  maxBackoffMs?: number;
  /** Longest wait between attempts at a persistent peer (default: maxBackoffMs). */
  persistentMaxBackoffMs?: number;
  /** The map key and label of an address (default host:port). */
  keyOf?: (host: string, port: number) => string;
}

export interface PeerCandidate<C, S extends string = string> {
  readonly key: string;
  readonly host: string;
  readonly port: number;
  /** Where we heard of it. */
  readonly source: S;
  /** Given by the user (--peer, x.pe): retried with backoff as long as we run. */
  persistent: boolean;
  failures: number;
  nextAttemptAt: number;
  lastAttemptAt: number;
  /** Connections to it dropped for stalling: it is then re-dialled at its backoff only. */
  stalls: number;
  /** The connection to it now, if any. */
  conn: C | undefined;
}

/** How a connection to a candidate ended, for its next attempt. */
export interface ConnectionEnd {
  /** It was our own address (a tracker or the DHT handed it back): forget it. */
  self?: boolean;
  /** Count it as a failure (it never got going, or did not last). */
  failed: boolean;
  /** Keep it however often it failed (reads are waiting: any peer may turn out to have the data). */
  keep?: boolean;
}

/** A dial that has not connected by then is given up. */
export const CONNECT_TIMEOUT_MS = 10_000;

export class PeerList<C, S extends string = string> {
  readonly #candidates = new Map<string, PeerCandidate<C, S>>();
  readonly #banned = new Set<string>();
  /** Addresses that turned out to be our own: trackers and PEX hand them back again and again. */
  readonly #ours = new Set<string>();
  readonly #retries: number;
  readonly #maxBackoffMs: number;
  readonly #persistentMaxBackoffMs: number;
  readonly #keyOf: (host: string, port: number) => string;

  constructor(opts: PeerListOptions = {}) {
    this.#retries = opts.retries ?? 3;
    this.#maxBackoffMs = opts.maxBackoffMs ?? 60_000;
    this.#persistentMaxBackoffMs = opts.persistentMaxBackoffMs ?? this.#maxBackoffMs;
    this.#keyOf = opts.keyOf ?? ((host, port) => `${host}:${port}`);
  }

  get size(): number {
    return this.#candidates.size;
  }

  get bannedHosts(): ReadonlySet<string> {
    return this.#banned;
  }

  isBanned(host: string): boolean {
    return this.#banned.has(host);
  }

  values(): IterableIterator<PeerCandidate<C, S>> {
    return this.#candidates.values();
  }

  /**
   * A new candidate, or undefined when the host is banned, the address is our own or already
   * known (a known one becomes persistent if this one is).
   */
  add(host: string, port: number, source: S, persistent: boolean): PeerCandidate<C, S> | undefined {
    if (this.#banned.has(host)) return undefined;
    const key = this.#keyOf(host, port);
    if (this.#ours.has(key)) return undefined;
    const known = this.#candidates.get(key);
    if (known) {
      known.persistent ||= persistent;
      return undefined;
    }
    const cand: PeerCandidate<C, S> = { key, host, port, source, persistent, failures: 0, nextAttemptAt: 0, lastAttemptAt: 0, stalls: 0, conn: undefined };
    this.#candidates.set(key, cand);
    return cand;
  }

  /**
   * Candidates without a connection whose next attempt is due, in the order they were
   * learnt. With `redialAfterMs` (reads starve), one that never stalled is due that long
   * after its last attempt, whatever its backoff.
   */
  *due(now: number, redialAfterMs?: number): Generator<PeerCandidate<C, S>> {
    for (const cand of this.#candidates.values()) {
      if (cand.conn) continue;
      const at = redialAfterMs !== undefined && cand.stalls === 0 ? Math.min(cand.nextAttemptAt, cand.lastAttemptAt + redialAfterMs) : cand.nextAttemptAt;
      if (at <= now) yield cand;
    }
  }

  /** We dialled it: `conn` is its connection until `ended`. */
  dialled(cand: PeerCandidate<C, S>, conn: C, now: number): void {
    cand.lastAttemptAt = now;
    cand.conn = conn;
  }

  /** Its handshake went through: the failures so far are forgiven. */
  connected(cand: PeerCandidate<C, S>): void {
    cand.failures = 0;
  }

  /** The connection `conn` to it ended: forget it, or set when to try again. Returns whether it is still known. */
  ended(cand: PeerCandidate<C, S>, conn: C, end: ConnectionEnd, now: number): boolean {
    if (cand.conn !== conn) return this.#candidates.get(cand.key) === cand; // an older connection of it
    cand.conn = undefined;
    if (end.failed) cand.failures++;
    if (end.self) this.#ours.add(cand.key);
    if (end.self || (!cand.persistent && cand.failures >= this.#retries && !end.keep)) {
      this.#candidates.delete(cand.key);
      return false;
    }
    cand.nextAttemptAt = now + this.backoffMs(cand);
    return true;
  }

  /** How long to wait before the next attempt: 0.5 s doubling per failure, capped. */
  backoffMs(cand: PeerCandidate<C, S>): number {
    return Math.min(cand.persistent ? this.#persistentMaxBackoffMs : this.#maxBackoffMs, 500 * 2 ** Math.min(cand.failures, 7));
  }

  /** Bans the host (every port of it): its candidates are forgotten. Returns false if it was banned already. */
  ban(host: string): boolean {
    if (this.#banned.has(host)) return false;
    this.#banned.add(host);
    for (const [key, cand] of this.#candidates) if (cand.host === host) this.#candidates.delete(key);
    return true;
  }
}

/** A TCP connection to a peer that gives up after CONNECT_TIMEOUT_MS if it has not connected. */
export function dialPeer(opts: net.TcpNetConnectOpts, timeoutMs = CONNECT_TIMEOUT_MS): net.Socket {
  const socket = net.connect(opts);
  const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), timeoutMs);
  timer.unref();
  socket.once('connect', () => clearTimeout(timer));
  socket.once('close', () => clearTimeout(timer));
  return socket;
}
