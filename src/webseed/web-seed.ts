import http from 'node:http';
import https from 'node:https';
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Metainfo, PieceIndex } from '../metainfo/index.js';
import { VerifiedPiece } from '../metainfo/verified-piece.js';
import { TokenBucket } from '../swarm/rate-limiter.js';
import type { WebPieceSource } from '../swarm/web-piece-source.js';
import { silentLogger, type Logger } from '../log.js';
import { fetchRange, WebSeedError, type WebSeedFailureKind } from './range-fetch.js';
import { parseWebSeedUrl, planPiece, type PieceRequestPlan } from './web-seed-url.js';

/**
 * One web seed (BEP 19) as a source of pieces: a few keep-alive connections to
 * one base URL, retries with backoff for transient failures, a rate cap, and a
 * record of the last failure for the status line. It hands out bytes; the
 * VerifiedPiece check is the only way they become a piece.
 */

export interface WebSeedOptions {
  /** Parallel keep-alive connections to this seed (default 4). */
  connections?: number;
  /** Bytes per second over all its connections; 0 or absent = no cap. */
  rateLimit?: number;
  /**
   * A bucket shared with other web seeds (a mount's --web-seed-limit caps all its seeds
   * together); takes the place of `rateLimit`.
   */
  bucket?: TokenBucket;
  /** Drop a connection that sends nothing for this long (default 15 s). */
  idleTimeoutMs?: number;
  /** Attempts of one range on transient failures before the piece fails (default 3). */
  attempts?: number;
  /** First retry delay; doubles each time (default 250 ms). */
  retryDelayMs?: number;
  /** After a failed piece the seed is left alone this long, doubling up to 5 minutes (default 2 s). */
  backoffMs?: number;
  maxRedirects?: number;
  logger?: Logger;
  /** TLS settings for https seeds (e.g. `ca` for a private CA). */
  tls?: https.RequestOptions;
}

/** What `btmount status` can say about a web seed. */
export interface WebSeedStatus {
  url: string;
  state: 'ready' | 'backing-off';
  /** When the seed may be asked again (ISO time), while backing off. */
  retryAt?: string;
  lastFailure?: { kind: WebSeedFailureKind; message: string; at: string };
  piecesFetched: number;
  bytesFetched: number;
  failures: number;
}

const MAX_BACKOFF_MS = 5 * 60_000;

export class WebSeed implements WebPieceSource {
  readonly url: URL;
  readonly #agents: { http: http.Agent; https: https.Agent };
  readonly #bucket: TokenBucket | undefined;
  readonly #opts: Required<Omit<WebSeedOptions, 'rateLimit' | 'bucket' | 'tls' | 'logger'>>;
  readonly #log: Logger;
  #consecutiveFailures = 0;
  #retryAt = 0;
  #lastFailure: WebSeedStatus['lastFailure'];
  #stats = { piecesFetched: 0, bytesFetched: 0, failures: 0 };
  readonly #closing = new AbortController();

  readonly #metainfo: Metainfo;
  readonly #options: WebSeedOptions;

  constructor(
    metainfo: Metainfo,
    baseUrl: string,
    options: WebSeedOptions = {},
  ) {
    this.#metainfo = metainfo;
    this.#options = options;
    this.url = parseWebSeedUrl(baseUrl);
    const connections = options.connections ?? 4;
    this.#opts = {
      connections,
      idleTimeoutMs: options.idleTimeoutMs ?? 15_000,
      attempts: options.attempts ?? 3,
      retryDelayMs: options.retryDelayMs ?? 250,
      backoffMs: options.backoffMs ?? 2_000,
      maxRedirects: options.maxRedirects ?? 5,
    };
    // maxSockets queues the rest: at most `connections` requests are on the wire at once.
    this.#agents = {
      http: new http.Agent({ keepAlive: true, maxSockets: connections }),
      https: new https.Agent({ keepAlive: true, maxSockets: connections }),
    };
    this.#bucket = options.bucket ?? (options.rateLimit ? new TokenBucket(options.rateLimit) : undefined);
    this.#log = (options.logger ?? silentLogger).child({ webSeed: this.url.href });
    // Every queued request listens on the one close signal (and stops listening when it ends).
    setMaxListeners(0, this.#closing.signal);
  }

  get name(): string {
    return this.url.href;
  }

  get parallelPieces(): number {
    return this.#opts.connections;
  }

  /** False while the seed is backing off after a failure: the scheduler should ask a peer. */
  get ready(): boolean {
    return Date.now() >= this.#retryAt;
  }

  /**
   * The bytes of piece `piece`, fetched as one range per file it covers (in parallel, up to the
   * connection limit). Throws WebSeedError; the seed then backs off. Not yet verified.
   */
  async fetchPiece(piece: PieceIndex, signal?: AbortSignal): Promise<Buffer> {
    let plan: PieceRequestPlan;
    try {
      plan = planPiece(this.url, this.#metainfo, piece);
    } catch (err) {
      throw this.#failed(new WebSeedError('bad-path', (err as Error).message), piece);
    }
    // Pad-file bytes are zeros by definition (BEP 47): alloc, not allocUnsafe.
    const data = Buffer.alloc(plan.size);
    try {
      await Promise.all(
        plan.ranges.map(async (range) => {
          const bytes = await this.#withRetries(() => this.#fetchOnce(range.url, range.offsetInFile, range.length, signal), signal);
          bytes.copy(data, range.offsetInPiece);
        }),
      );
    } catch (err) {
      // A caller that gave up (the piece came from a peer first), or the seed closing, is not the seed's failure.
      if (!(err instanceof WebSeedError) || signal?.aborted || this.#closing.signal.aborted) throw err;
      throw this.#failed(err, piece);
    }
    this.#stats.bytesFetched += plan.ranges.reduce((sum, r) => sum + r.length, 0);
    return data;
  }

  /** fetchPiece, then the SHA-1 check: a seed whose bytes do not verify is charged like any failure. */
  async fetchVerifiedPiece(piece: PieceIndex, signal?: AbortSignal): Promise<VerifiedPiece> {
    const data = await this.fetchPiece(piece, signal);
    const verified = VerifiedPiece.check(this.#metainfo.layout, piece, data);
    if (!verified) throw this.#failed(new WebSeedError('hash-mismatch', `piece ${piece} from ${this.url.host} does not match the torrent`), piece);
    this.#consecutiveFailures = 0;
    this.#stats.piecesFetched++;
    return verified;
  }

  status(): WebSeedStatus {
    const backingOff = !this.ready;
    return {
      url: this.url.href,
      state: backingOff ? 'backing-off' : 'ready',
      ...(backingOff ? { retryAt: new Date(this.#retryAt).toISOString() } : {}),
      ...(this.#lastFailure ? { lastFailure: this.#lastFailure } : {}),
      ...this.#stats,
    };
  }

  /** Aborts requests in flight and closes the kept-alive connections. */
  close(): void {
    this.#closing.abort();
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  #fetchOnce(url: URL, offset: number, length: number, signal: AbortSignal | undefined): Promise<Buffer> {
    return fetchRange(url, offset, length, {
      agents: this.#agents,
      idleTimeoutMs: this.#opts.idleTimeoutMs,
      maxRedirects: this.#opts.maxRedirects,
      signal: signal ? AbortSignal.any([this.#closing.signal, signal]) : this.#closing.signal,
      ...(this.#bucket ? { bucket: this.#bucket } : {}),
      ...(this.#options.tls ? { tls: this.#options.tls } : {}),
    });
  }

  async #withRetries(attempt: () => Promise<Buffer>, signal: AbortSignal | undefined): Promise<Buffer> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        const retry = err instanceof WebSeedError && err.transient && n < this.#opts.attempts && !this.#closing.signal.aborted && !signal?.aborted;
        if (!retry) throw err;
        this.#log.debug({ kind: err.kind, attempt: n }, `web seed: retrying after ${err.message}`);
        await sleep(this.#opts.retryDelayMs * 2 ** (n - 1), undefined, { ref: false });
      }
    }
  }

  /** Records a failure, backs the seed off (doubling per consecutive failure), returns the error to throw. */
  #failed(err: WebSeedError, piece: PieceIndex): WebSeedError {
    this.#consecutiveFailures++;
    this.#stats.failures++;
    const backoff = Math.min(this.#opts.backoffMs * 2 ** (this.#consecutiveFailures - 1), MAX_BACKOFF_MS);
    this.#retryAt = Date.now() + backoff;
    this.#lastFailure = { kind: err.kind, message: err.message, at: new Date().toISOString() };
    this.#log.warn({ kind: err.kind, piece, backoffMs: backoff }, `web seed failed: ${err.message}; backing off ${backoff} ms`);
    return err;
  }
}
