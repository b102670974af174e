import { EventEmitter } from 'node:events';
import { Client, type AnnounceCounters } from 'bittorrent-tracker';
import { Agent } from 'undici';
import type { Logger } from '../log.js';
import { parsePeerAddress, type PeerAddress } from './peer-address.js';

export interface TrackerStatus {
  url: string;
  /** When the last announce ended, or null if none has. */
  lastAnnounceAt: string | null;
  /** 'ok', or why the announce failed; null if none has ended. */
  lastResult: string | null;
  /** Peers the last announce returned. */
  peers: number;
}

export interface TrackerAnnouncerOptions {
  infoHash: string;
  peerId: Buffer;
  /** The port peers reach us on. */
  port: number;
  /** Announce from this local address (HTTP trackers record the sender's address as ours). */
  localAddress?: string;
  urls: readonly string[];
  /** What we tell trackers we have uploaded, downloaded and still lack. */
  counters: () => AnnounceCounters;
  log: Logger;
}

/** How long `stopped` may take per tracker before we leave anyway. */
const STOP_WAIT_MS = 3_000;
/** Bounds for the re-announce interval a tracker asks for (it is a stranger's number). */
const MIN_INTERVAL_S = 5;
const MAX_INTERVAL_S = 24 * 3600;
/** bittorrent-tracker's own default, for an answer without a usable interval. */
const DEFAULT_INTERVAL_S = 30 * 60;

/** The tracker's `interval` in ms, clamped; the default when it gave none or junk. */
export function announceIntervalMs(asked: unknown): number {
  const s = typeof asked === 'number' && Number.isFinite(asked) && asked > 0 ? asked : DEFAULT_INTERVAL_S;
  return Math.round(Math.min(MAX_INTERVAL_S, Math.max(MIN_INTERVAL_S, s)) * 1000);
}

/** bittorrent-tracker speaks these; ws:// and wss:// are WebRTC trackers, which btmount does not use. */
const SUPPORTED = /^(https?|udp):\/\//i;

/**
 * Announces to HTTP and UDP trackers with bittorrent-tracker's client:
 * `started` at start, periodic updates at the interval each tracker asks for,
 * `stopped` at stop. One client per URL, so each tracker's result is known.
 * Emits 'peer'(PeerAddress) for every peer a tracker returns.
 */
export class TrackerAnnouncer extends EventEmitter {
  readonly urls: readonly string[];
  readonly #clients = new Map<string, Client>();
  readonly #state = new Map<string, TrackerStatus>();
  #started = false;
  #stopped = false;

  readonly #opts: TrackerAnnouncerOptions;
  constructor(opts: TrackerAnnouncerOptions) {
    super();
    this.#opts = opts;
    const urls: string[] = [];
    for (const raw of opts.urls) {
      const url = raw.trim().replace(/\/$/, '');
      if (!url || urls.includes(url)) continue;
      if (!SUPPORTED.test(url)) {
        opts.log.warn({ tracker: url }, 'skipping tracker: only http://, https:// and udp:// trackers are supported');
        continue;
      }
      urls.push(url);
    }
    this.urls = urls;
    for (const url of urls) this.#state.set(url, { url, lastAnnounceAt: null, lastResult: null, peers: 0 });
  }

  /** Sends `started` to every tracker; later announces follow each tracker's interval. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    for (const url of this.urls) {
      const client = this.#makeClient(url);
      if (client) client.start();
    }
  }

  /** Announces now (outside the interval), e.g. while we still look for peers. */
  update(): void {
    if (this.#stopped) return;
    for (const client of this.#clients.values()) client.update();
  }

  /** Sends `stopped` and waits (a few seconds at most) for each tracker to answer it. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all(
      [...this.#clients.values()].map(async (client) => {
        try {
          // The answer to `stopped` itself, not whatever comes first: the answer to a
          // re-announce still in flight would end the wait, and the teardown then cut `stopped` off.
          await bounded(requestsEnded(client, () => client.stop()), STOP_WAIT_MS);
        } catch (err) {
          this.#opts.log.debug({ err }, 'tracker stop failed');
        }
        await new Promise<void>((resolve) => client.destroy(() => resolve()));
      }),
    );
    this.#clients.clear();
    await this.#dispatcher?.close();
  }

  status(): TrackerStatus[] {
    return this.urls.map((url) => ({ ...this.#state.get(url)! }));
  }

  #dispatcher: Agent | undefined;

  #fromLocalAddress(): Agent {
    this.#dispatcher ??= new Agent({ localAddress: this.#opts.localAddress! });
    return this.#dispatcher;
  }

  #makeClient(url: string): Client | undefined {
    const { log } = this.#opts;
    const status = this.#state.get(url)!;
    let client: Client;
    try {
      client = new Client({
        infoHash: this.#opts.infoHash,
        peerId: this.#opts.peerId,
        announce: [url],
        port: this.#opts.port,
        getAnnounceOpts: this.#opts.counters,
        wrtc: false,
        ...(this.#opts.localAddress && /^https?:/i.test(url)
          ? // bittorrent-tracker announces over HTTP with Node's fetch, which takes an undici dispatcher.
            // Only for HTTP: its UDP client reads proxyOpts as a SOCKS setting and throws without one.
            { proxyOpts: { httpAgent: this.#fromLocalAddress(), httpsAgent: this.#fromLocalAddress() } }
          : {}),
      });
    } catch (err) {
      status.lastResult = (err as Error).message;
      log.warn({ err, tracker: url }, 'tracker client failed');
      return undefined;
    }
    clampAnnounceIntervals(client);
    if (/^https?:/i.test(url)) guardAnswerHandling(client);
    client.on('update', () => {
      status.lastAnnounceAt = new Date().toISOString();
      status.lastResult = 'ok';
      status.peers = 0;
    });
    client.on('peer', (text: string) => {
      status.peers++;
      const peer: PeerAddress | undefined = parsePeerAddress(text);
      if (peer) this.emit('peer', peer);
    });
    const fail = (err: Error): void => {
      status.lastAnnounceAt = new Date().toISOString();
      status.lastResult = err.message;
      status.peers = 0;
      log.warn({ tracker: url, reason: err.message }, 'tracker announce failed');
    };
    client.on('warning', fail);
    client.on('error', fail);
    this.#clients.set(url, client);
    return client;
  }
}

type RequestCallback = (err: Error | null, data?: unknown) => void;
interface TrackerInternals {
  _request?: (url: string, params: unknown, cb: RequestCallback) => Promise<void>;
  setInterval(ms?: number): void;
  client: { emit(event: 'warning', err: Error): void };
  /**
   * One function per request in flight (HTTP and UDP alike), which removes itself from the
   * list when its request ends and then calls `maybeDestroyCleanup` (set by `destroy`).
   */
  cleanupFns?: Array<() => void>;
  maybeDestroyCleanup?: (() => void) | null;
}

function trackersOf(client: Client): TrackerInternals[] {
  return (client as unknown as { _trackers?: TrackerInternals[] })._trackers ?? [];
}

/** Resolves when `promise` does or after `ms`, whichever is first. */
function bounded(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs `send`, which starts requests to the client's trackers (synchronously, as
 * bittorrent-tracker's announce methods do), and resolves once each of those requests has
 * ended: answered, failed or given up. Requests already in flight are not waited for.
 * bittorrent-tracker tells a request's end only to `maybeDestroyCleanup`, which is free
 * until `destroy`.
 */
function requestsEnded(client: Client, send: () => void): Promise<void> {
  const trackers = trackersOf(client);
  const before = trackers.map((tracker) => new Set(tracker.cleanupFns ?? []));
  send();
  return Promise.all(
    trackers.map(
      (tracker, i) =>
        new Promise<void>((resolve) => {
          const ours = (tracker.cleanupFns ?? []).filter((fn) => !before[i]!.has(fn));
          const check = (): void => {
            if (ours.some((fn) => tracker.cleanupFns?.includes(fn))) return;
            tracker.maybeDestroyCleanup = null;
            resolve();
          };
          tracker.maybeDestroyCleanup = check;
          check();
        }),
    ),
  ).then(() => undefined);
}

/**
 * bittorrent-tracker arms its re-announce timer with the interval a tracker sends, as sent
 * (HTTP: `interval * 1000`, UDP: a uint32 of seconds * 1000). A negative, NaN or above 2^31 ms
 * (24.8 days) interval becomes 1 ms in Node: an announce loop. Every tracker's timer is armed
 * within bounds here, so each tracker's own interval is followed, UDP's included.
 */
function clampAnnounceIntervals(client: Client): void {
  for (const tracker of trackersOf(client)) {
    const arm = tracker.setInterval;
    tracker.setInterval = function (ms?: number) {
      // No argument: the library's own default (30 minutes); anything a tracker said: clamped.
      arm.call(this, ms === undefined || ms === null ? undefined : announceIntervalMs(ms / 1000));
    };
  }
}

/**
 * bittorrent-tracker 11 reads an HTTP tracker's answer in an async function
 * whose promise nobody awaits: an answer it trips over (`failure reason` that
 * is a number, not a string) became an unhandled rejection, which ends the
 * process. Here such a throw is the announce's error (or, after the answer was
 * taken, a warning), as any other bad answer is.
 */
function guardAnswerHandling(client: Client): void {
  // Only HTTP trackers: the UDP one's _request is another function (sync, other arguments).
  for (const tracker of trackersOf(client)) {
    const request = tracker._request;
    if (typeof request !== 'function') continue;
    tracker._request = function (url, params, cb) {
      let answered = false;
      const once: RequestCallback = (err, data) => {
        answered = true;
        cb(err, data);
      };
      const before = new Set(this.cleanupFns ?? []);
      const pending = request.call(this, url, params, once);
      const ours = (this.cleanupFns ?? []).filter((fn) => !before.has(fn));
      return pending
        .catch((err: unknown) => {
          const error = err instanceof Error ? err : new Error(String(err));
          const reason = new Error(`unreadable tracker answer: ${error.message}`);
          if (!answered) once(reason);
          else this.client.emit('warning', reason);
        })
        .finally(() => {
          // A failed fetch returns without its cleanup: the request would count as in flight
          // (for `stop` and `destroy`) for ever. The fetch is over: its entry only goes.
          const list = this.cleanupFns ?? [];
          if (!ours.some((fn) => list.includes(fn))) return;
          this.cleanupFns = list.filter((fn) => !ours.includes(fn));
          this.maybeDestroyCleanup?.();
        });
    };
  }
}
