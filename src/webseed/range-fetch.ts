import http from 'node:http';
import https from 'node:https';
import type { TokenBucket } from '../swarm/rate-limiter.js';

/**
 * One HTTP Range request, checked hard: the answer is exactly the bytes asked for
 * or a typed failure. A web seed is a stranger's server; nothing it sends is
 * believed until its status, Content-Range and length all agree with the request.
 */

/** Why a range could not be fetched: short words for a status line and a log field. */
export type WebSeedFailureKind =
  | 'http-status' // 404, 403, 5xx, …
  | 'short-body' // the body ended before the promised bytes
  | 'long-body' // more bytes than asked for
  | 'bad-content-range' // 206 for a range other than the one asked for
  | 'range-ignored' // 200 with the whole file for a part of it
  | 'redirect-loop'
  | 'too-many-redirects'
  | 'stalled' // no bytes for the idle timeout
  | 'tls' // certificate or handshake failure
  | 'connect' // refused, reset, DNS
  | 'hash-mismatch' // the bytes arrived but the piece did not verify
  | 'bad-path'; // the torrent's paths cannot be made into URLs

export class WebSeedError extends Error {
  constructor(
    readonly kind: WebSeedFailureKind,
    message: string,
    /** HTTP status, when there was one. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'WebSeedError';
  }

  /** Failures worth retrying soon on the same seed; the rest say the seed is wrong for this torrent. */
  get transient(): boolean {
    if (this.kind === 'http-status') return this.status === undefined || this.status >= 500 || this.status === 429 || this.status === 408;
    return this.kind === 'short-body' || this.kind === 'stalled' || this.kind === 'connect';
  }
}

export interface RangeFetchOptions {
  /** The keep-alive agents of one web seed: they bound its parallel connections. */
  agents: { http: http.Agent; https: https.Agent };
  /** A connection that sends nothing for this long is dropped ('stalled'). */
  idleTimeoutMs: number;
  maxRedirects: number;
  /** The seed's rate cap, shared by all its requests. */
  bucket?: TokenBucket;
  signal?: AbortSignal;
  /** Extra TLS settings, e.g. a CA for a private bucket (tests use it for a self-signed server). */
  tls?: https.RequestOptions;
}

const TLS_CODE = /CERT|TLS|SSL|EPROTO|HANDSHAKE|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/i;

/** Fetches bytes [offset, offset + length) of `url` (length ≥ 1). */
export async function fetchRange(url: URL, offset: number, length: number, opts: RangeFetchOptions): Promise<Buffer> {
  const seen = new Set<string>();
  let at = url;
  for (let hop = 0; ; hop++) {
    seen.add(at.href);
    const result = await requestOnce(at, offset, length, opts);
    if (result.kind === 'body') return result.body;
    const next = result.location;
    if (seen.has(next.href)) throw new WebSeedError('redirect-loop', `redirect loop at ${next.href}`);
    if (hop >= opts.maxRedirects) throw new WebSeedError('too-many-redirects', `more than ${opts.maxRedirects} redirects from ${url.href}`);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new WebSeedError('http-status', `redirect to a non-HTTP URL ${next.href}`, result.status);
    }
    at = next;
  }
}

type Answer = { kind: 'body'; body: Buffer } | { kind: 'redirect'; location: URL; status: number };

function requestOnce(url: URL, offset: number, length: number, opts: RangeFetchOptions): Promise<Answer> {
  const last = offset + length - 1;
  return new Promise<Answer>((resolve, reject) => {
    const secure = url.protocol === 'https:';
    const options: https.RequestOptions = {
      method: 'GET',
      agent: secure ? opts.agents.https : opts.agents.http,
      headers: { Range: `bytes=${offset}-${last}`, 'Accept-Encoding': 'identity', 'User-Agent': 'btmount' },
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(secure ? opts.tls : {}),
    };
    const req = (secure ? https : http).request(url, options);
    let settled = false;
    const fail = (err: WebSeedError): void => {
      if (settled) return;
      settled = true;
      // Destroying the request also closes the socket: an aborted body never goes back to the pool.
      req.destroy();
      reject(err);
    };
    req.setTimeout(opts.idleTimeoutMs, () => fail(new WebSeedError('stalled', `no bytes from ${url.host} for ${opts.idleTimeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (opts.signal?.aborted) return fail(new WebSeedError('connect', 'aborted'));
      const code = err.code ?? '';
      const kind = TLS_CODE.test(code) || TLS_CODE.test(err.message) ? 'tls' : 'connect';
      fail(new WebSeedError(kind, `${url.host}: ${code || err.message}${code && err.message !== code ? ` (${err.message})` : ''}`));
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && status !== 304) {
        const location = res.headers.location;
        res.resume();
        if (!location) return fail(new WebSeedError('http-status', `${status} without a Location from ${url.href}`, status));
        settled = true;
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          return reject(new WebSeedError('http-status', `${status} to an unparsable Location ${location}`, status));
        }
        return resolve({ kind: 'redirect', location: next, status });
      }
      if (status === 200) {
        // The whole file is acceptable only when the whole file is what was asked for.
        const whole = Number(res.headers['content-length']);
        if (!(offset === 0 && whole === length)) {
          return fail(new WebSeedError('range-ignored', `${url.host} ignored Range and sent the whole file (${Number.isFinite(whole) ? `${whole} bytes` : 'length unknown'}) for ${length} bytes at ${offset}`, status));
        }
      } else if (status === 206) {
        const range = parseContentRange(res.headers['content-range']);
        if (!range || range.first !== offset || range.last !== last) {
          return fail(new WebSeedError('bad-content-range', `${url.host} answered bytes ${res.headers['content-range'] ?? '(no Content-Range)'} for bytes ${offset}-${last}`, status));
        }
      } else {
        return fail(new WebSeedError('http-status', `${url.href}: HTTP ${status} ${res.statusMessage ?? ''}`.trim(), status));
      }
      readExactly(res, length, opts.bucket, opts.idleTimeoutMs, url, fail, (body) => {
        if (settled) return;
        settled = true;
        resolve({ kind: 'body', body });
      });
    });
    req.end();
  });
}

/** Reads exactly `length` bytes into one buffer, paced by the bucket; anything else is a failure. */
function readExactly(
  res: http.IncomingMessage,
  length: number,
  bucket: TokenBucket | undefined,
  idleTimeoutMs: number,
  url: URL,
  fail: (err: WebSeedError) => void,
  done: (body: Buffer) => void,
): void {
  const body = Buffer.allocUnsafe(length);
  let filled = 0;
  res.on('data', (chunk: Buffer) => {
    if (filled + chunk.length > length) return fail(new WebSeedError('long-body', `${url.host} sent more than the ${length} bytes asked for`));
    chunk.copy(body, filled);
    filled += chunk.length;
    const wait = bucket?.take(chunk.length) ?? 0;
    if (wait > 0) {
      // Holding back for the rate cap is not the server stalling: the idle timer sleeps meanwhile.
      res.pause();
      res.socket?.setTimeout(0);
      setTimeout(() => {
        res.socket?.setTimeout(idleTimeoutMs);
        res.resume();
      }, wait).unref();
    }
  });
  res.on('end', () => {
    if (filled !== length) return fail(new WebSeedError('short-body', `${url.host} sent ${filled} of ${length} bytes`));
    // The last chunk's debt is paid too, or a capped seed would run ahead of its rate by a chunk per request.
    const debt = bucket?.waitFor(0) ?? 0;
    if (debt > 0) setTimeout(() => done(body), debt).unref();
    else done(body);
  });
  res.on('aborted', () => fail(new WebSeedError('short-body', `${url.host} closed the connection after ${filled} of ${length} bytes`)));
  res.on('error', () => fail(new WebSeedError('short-body', `${url.host} closed the connection after ${filled} of ${length} bytes`)));
}

function parseContentRange(value: string | undefined): { first: number; last: number } | undefined {
  const m = value ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim()) : null;
  if (!m) return undefined;
  return { first: Number(m[1]), last: Number(m[2]) };
}
