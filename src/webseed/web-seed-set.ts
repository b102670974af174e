import type https from 'node:https';
import type { Metainfo } from '../metainfo/index.js';
import { TokenBucket } from '../swarm/rate-limiter.js';
import type { Logger } from '../log.js';
import { collectWebSeeds } from './web-seed-url.js';
import { WebSeed, type WebSeedStatus } from './web-seed.js';

/**
 * The web seeds of one mount or seed: the torrent's url-list, a magnet's ws= and
 * --web-seed, each once, built with the same settings and capped together by one
 * bucket (--web-seed-limit is a cap per mount, not per seed). Hands them out to
 * the swarm, reports them for `status`, closes them on shutdown.
 */
export interface WebSeedSetOptions {
  /** url-list, ws= and --web-seed texts, in that order; duplicates and junk are dropped here. */
  urls: ReadonlyArray<readonly string[]>;
  /** Bytes per second over all the seeds together; 0 = no cap. */
  rateLimit: number;
  /** Parallel keep-alive connections per seed (4). */
  connections?: number;
  /** A connection silent this long is 'stalled' (15 s, or less for a short --read-timeout). */
  idleTimeoutMs?: number;
  tls?: https.RequestOptions;
  log: Logger;
}

export class WebSeedSet {
  readonly seeds: readonly WebSeed[];

  constructor(metainfo: Metainfo, opts: WebSeedSetOptions) {
    const { urls, refused } = collectWebSeeds(...opts.urls);
    for (const r of refused) opts.log.warn({ webSeed: r.url }, `ignoring web seed ${r.url}: ${r.reason}`);
    const bucket = opts.rateLimit > 0 ? new TokenBucket(opts.rateLimit) : undefined;
    this.seeds = urls.map(
      (url) =>
        new WebSeed(metainfo, url.href, {
          connections: opts.connections ?? 4,
          logger: opts.log,
          ...(bucket ? { bucket } : {}),
          ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
          ...(opts.tls ? { tls: opts.tls } : {}),
        }),
    );
  }

  get size(): number {
    return this.seeds.length;
  }

  status(): WebSeedStatus[] {
    return this.seeds.map((s) => s.status());
  }

  close(): void {
    for (const s of this.seeds) s.close();
  }
}
