import fc from 'fast-check';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metainfo, pieceIndex } from '../../../src/metainfo/index.js';
import { WebSeed, WebSeedError } from '../../../src/webseed/index.js';
import { buildTorrent } from '../../helpers/torrent-builder.js';
import { expect, type FuzzTarget } from '../target.js';

/**
 * BEP 19 web-seed answers: a raw HTTP server on 127.0.0.1 (raw so it can lie in
 * every header and cut anywhere) answers the real WebSeed's Range requests for a
 * piece of a small multi-file torrent. Each input chunk after the first is one
 * answer, as JSON, used by the requests in order; after the last one the server
 * answers right, so retries can succeed.
 */

const PIECE = 16 * 1024;
// Piece 0 covers a.bin, all of b.bin (a 200 with the whole file is a right answer for it) and the start of c.bin.
const FILES = [
  { name: 'a.bin', length: 10_000 },
  { name: 'b.bin', length: 3_000 },
  { name: 'c.bin', length: 30_000 },
];
const DATA = new Map(FILES.map((f) => [f.name, Buffer.concat(Array.from({ length: Math.ceil(f.length / 32) }, (_, i) => createHash('sha256').update(`${f.name} ${i}`).digest())).subarray(0, f.length)]));
const STREAM = Buffer.concat(FILES.map((f) => DATA.get(f.name)!));
const METAINFO = Metainfo.fromTorrentFile(buildTorrent({ name: 'ds', pieceLength: PIECE, files: FILES.map((f) => ({ path: [f.name], length: f.length })), data: STREAM }));
const PIECES = METAINFO.layout.pieceCount;
const IDLE_MS = 150;
/** A fetch ends in this: at most 6 hostile answers, each ≤ 4 gaps under the idle timer (~3.6 s), then right answers; margin for a loaded machine. */
const FETCH_BOUND_MS = 8_000;
/** The client's buffers may grow by the piece and some socket buffers, not by what a server pushes. */
const MEMORY_BOUND = 48 * 2 ** 20;
/** A 'huge' body: more than MEMORY_BOUND, streamed with backpressure so only the client could hold it all. */
const HUGE_PART = Buffer.alloc(64 * 1024, 7);
const HUGE_PARTS = 1024;

interface Answer {
  status: number;
  contentRange: 'right' | 'missing' | 'first+1' | 'last+1' | 'last-1' | 'star' | 'junk';
  contentLength: 'right' | 'missing' | 'asked' | 'minus1' | 'plus1' | 'huge';
  body: 'exact' | 'short' | 'long' | 'garbage' | 'whole-file' | 'empty' | 'huge';
  chunked: boolean;
  /** Close the socket after this many bytes of the answer (head included). */
  cutAt: number | null;
  /** Written in this many parts, `delayMs` apart (above IDLE_MS: the client should call it stalled). */
  parts: number;
  delayMs: number;
  redirect: 'none' | 'same' | 'prefix' | 'other-server' | 'relative' | 'no-location' | 'junk' | 'ftp';
  junk: string;
  close: boolean;
}

const answer: fc.Arbitrary<Answer> = fc.record({
  status: fc.oneof({ weight: 6, arbitrary: fc.constant(206) }, { weight: 2, arbitrary: fc.constantFrom(200, 301, 302, 307, 308) }, { weight: 1, arbitrary: fc.constantFrom(204, 304, 404, 408, 416, 429, 500, 503) }, { weight: 1, arbitrary: fc.integer({ min: 100, max: 999 }) }),
  contentRange: fc.oneof({ weight: 5, arbitrary: fc.constant('right' as const) }, { weight: 1, arbitrary: fc.constantFrom('missing' as const, 'first+1' as const, 'last+1' as const, 'last-1' as const, 'star' as const, 'junk' as const) }),
  contentLength: fc.oneof({ weight: 5, arbitrary: fc.constant('right' as const) }, { weight: 1, arbitrary: fc.constantFrom('missing' as const, 'asked' as const, 'minus1' as const, 'plus1' as const, 'huge' as const) }),
  body: fc.oneof({ weight: 5, arbitrary: fc.constant('exact' as const) }, { weight: 1, arbitrary: fc.constantFrom('short' as const, 'long' as const, 'garbage' as const, 'whole-file' as const, 'empty' as const, 'huge' as const) }),
  chunked: fc.boolean(),
  cutAt: fc.option(fc.nat(20_000), { nil: null, freq: 4 }),
  parts: fc.integer({ min: 1, max: 5 }),
  delayMs: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 * IDLE_MS }) }),
  redirect: fc.oneof({ weight: 3, arbitrary: fc.constant('none' as const) }, { weight: 1, arbitrary: fc.constantFrom('same' as const, 'prefix' as const, 'other-server' as const, 'relative' as const, 'no-location' as const, 'junk' as const, 'ftp' as const) }),
  junk: fc.string({ maxLength: 30 }),
  close: fc.boolean(),
});

/** First chunk: which piece; the rest: one answer each. */
const input = fc.tuple(fc.nat(PIECES - 1), fc.array(answer, { minLength: 1, maxLength: 6 })).map(([piece, answers]) => [Buffer.from([piece]), ...answers.map((a) => Buffer.from(JSON.stringify(a)))]);

const RIGHT: Answer = { status: 206, contentRange: 'right', contentLength: 'right', body: 'exact', chunked: false, cutAt: null, parts: 1, delayMs: 0, redirect: 'none', junk: '', close: false };

let servers: net.Server[] = [];
let ports: number[] = [];
const sockets = new Set<net.Socket>();
let answers: Answer[] = [];
let requests = 0;
let stats = { verified: 0, failures: new Map<string, number>() };

/** One request's head: the file and the range asked for. */
function parseRequest(head: string): { file: Buffer | undefined; path: string; first: number; last: number } {
  const [line = ''] = head.split('\r\n');
  const path = line.split(' ')[1] ?? '/';
  const name = path.replace(/^(\/r\d+)*\/ws\/ds\//, '');
  const m = /\r\nrange: bytes=(\d+)-(\d+)/i.exec(head);
  return { file: DATA.get(name), path, first: Number(m?.[1] ?? 0), last: Number(m?.[2] ?? 0) };
}

function answerBytes(a: Answer, req: ReturnType<typeof parseRequest>): Buffer {
  const file = req.file ?? Buffer.alloc(0);
  const exact = file.subarray(req.first, req.last + 1);
  const asked = req.last - req.first + 1;
  const body = {
    exact,
    short: exact.subarray(0, Math.max(0, exact.length - 1 - (a.junk.length % 7))),
    long: Buffer.concat([exact, Buffer.from(a.junk || 'x')]),
    garbage: Buffer.from(exact.map((b, i) => b ^ (i === a.junk.length % Math.max(1, exact.length) ? 1 : 0))),
    'whole-file': file,
    empty: Buffer.alloc(0),
    huge: Buffer.alloc(0), // streamed by serve()
  }[a.body];
  const bodyLength = a.body === 'huge' ? HUGE_PART.length * HUGE_PARTS : body.length;
  const headers: string[] = [`HTTP/1.1 ${a.status} Fuzz`];
  const cr = { right: `bytes ${req.first}-${req.last}/${file.length}`, missing: undefined, 'first+1': `bytes ${req.first + 1}-${req.last}/${file.length}`, 'last+1': `bytes ${req.first}-${req.last + 1}/${file.length}`, 'last-1': `bytes ${req.first}-${req.last - 1}/${file.length}`, star: `bytes ${req.first}-${req.last}/*`, junk: `bytes ${a.junk}` }[a.contentRange];
  if (cr !== undefined && a.status !== 200) headers.push(`Content-Range: ${cr.replace(/[\r\n]/g, '')}`);
  if (a.chunked) headers.push('Transfer-Encoding: chunked');
  else {
    const cl = { right: bodyLength, missing: undefined, asked, minus1: bodyLength - 1, plus1: bodyLength + 1, huge: 2 ** 40 }[a.contentLength];
    if (cl !== undefined) headers.push(`Content-Length: ${cl}`);
  }
  const here = `/ws/ds/${req.path.split('/').pop()}`;
  const location = { none: undefined, same: req.path, prefix: `/r${requests}${req.path}`, 'other-server': `http://127.0.0.1:${ports[1]}${here}`, relative: `../ds/${req.path.split('/').pop()}`, 'no-location': undefined, junk: a.junk, ftp: `ftp://127.0.0.1:${ports[1]}${here}` }[a.redirect];
  if (location !== undefined) headers.push(`Location: ${location.replace(/[\r\n]/g, '')}`);
  if (a.close) headers.push('Connection: close');
  const payload = a.body === 'huge' ? body : a.chunked ? Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from(body.length > 0 ? '\r\n0\r\n\r\n' : '\r\n')]) : body;
  return Buffer.concat([Buffer.from(headers.join('\r\n') + '\r\n\r\n', 'latin1'), payload]);
}

async function serve(socket: net.Socket): Promise<void> {
  let pending = Buffer.alloc(0);
  let busy = false;
  socket.on('error', () => {});
  const next = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0 && !socket.destroyed; end = pending.indexOf('\r\n\r\n')) {
        const head = pending.subarray(0, end).toString('latin1');
        pending = pending.subarray(end + 4);
        const a = answers[requests] ?? RIGHT;
        requests++;
        let bytes = answerBytes(a, parseRequest(head));
        const cut = a.cutAt !== null && a.cutAt < bytes.length;
        if (cut) bytes = bytes.subarray(0, a.cutAt!);
        const step = Math.ceil(bytes.length / a.parts) || 1;
        for (let at = 0; at < bytes.length && !socket.destroyed; at += step) {
          if (at > 0 && a.delayMs > 0) await sleep(a.delayMs);
          if (!socket.destroyed) socket.write(bytes.subarray(at, at + step));
        }
        if (a.body === 'huge' && !cut) {
          for (let n = 0; n < HUGE_PARTS && !socket.destroyed; n++) {
            if (!socket.write(HUGE_PART)) await new Promise((resolve) => { socket.once('drain', resolve); socket.once('close', resolve); });
          }
        }
        if (cut) return void socket.destroy();
        if (a.close) return void socket.end();
      }
    } finally {
      busy = false;
    }
  };
  socket.on('data', (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    void next();
  });
}

export const webSeedTarget: FuzzTarget = {
  name: 'webseed',
  what: 'web-seed (BEP 19) Range answers from a raw HTTP server on 127.0.0.1 into WebSeed.fetchVerifiedPiece',
  input,
  async open() {
    stats = { verified: 0, failures: new Map() };
    servers = [net.createServer(serve), net.createServer(serve)];
    for (const s of servers) s.on('connection', (c) => { sockets.add(c); c.on('close', () => sockets.delete(c)); });
    ports = await Promise.all(servers.map((s) => new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as net.AddressInfo).port)))));
  },
  async close() {
    for (const c of sockets) c.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    servers = [];
  },
  async run(chunks) {
    const piece = pieceIndex((chunks[0]?.[0] ?? 0) % PIECES);
    answers = chunks.slice(1).map((c) => ({ ...RIGHT, ...(JSON.parse(c.toString()) as Partial<Answer>) }));
    requests = 0;
    // One connection: the answers go to the ranges in order, so an input replays the same way.
    const seed = new WebSeed(METAINFO, `http://127.0.0.1:${ports[0]}/ws/`, { connections: 1, idleTimeoutMs: IDLE_MS, attempts: 2, retryDelayMs: 1, backoffMs: 1, maxRedirects: 3 });
    // Peak, not end: a client that buffers a huge body and then drops it would pass an end check.
    const memoryBefore = process.memoryUsage().arrayBuffers;
    let memoryPeak = memoryBefore;
    const sampler = setInterval(() => { memoryPeak = Math.max(memoryPeak, process.memoryUsage().arrayBuffers); }, 2);
    const started = performance.now();
    let outcome: { data: Buffer } | WebSeedError;
    try {
      outcome = await seed.fetchVerifiedPiece(piece);
    } catch (err) {
      expect(err instanceof WebSeedError, `not a WebSeedError escaped: ${(err as Error)?.stack ?? String(err)}`);
      outcome = err;
    } finally {
      seed.close();
      clearInterval(sampler);
    }
    if (outcome instanceof WebSeedError) {
      stats.failures.set(outcome.kind, (stats.failures.get(outcome.kind) ?? 0) + 1);
    } else {
      const at = piece * PIECE;
      expect(outcome?.data?.equals(STREAM.subarray(at, at + METAINFO.layout.pieceSize(piece))), `piece ${piece} accepted with wrong bytes`);
      stats.verified++;
    }
    const ms = performance.now() - started;
    expect(ms < FETCH_BOUND_MS, `the fetch took ${Math.round(ms)} ms`);
    const grown = memoryPeak - memoryBefore;
    expect(grown < MEMORY_BOUND, `buffers grew by ${Math.round(grown / 2 ** 20)} MiB during one fetch`);
  },
  depth() {
    return `${stats.verified} pieces verified; failures ${[...stats.failures].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`;
  },
};
