/**
 * A real HTTP(S) server on 127.0.0.1 for web-seed tests: it serves a folder with
 * Range support, and the first path segment picks a behaviour, so one server
 * covers the honest case and every hostile one:
 *
 *   /good/…        Range honoured (206 + Content-Range)
 *   /flaky/…       503 on the first request for each path, then good
 *   /404/…         404
 *   /short/…       206 with a correct Content-Range but half the body, then close
 *   /badrange/…    206 for a range one byte later than asked
 *   /ignore/…      200 and an endless "whole file" of 10 GiB, Range ignored
 *   /loop/…        302 to /loop2/…, which 302s back
 *   /stall/…       206, a few bytes, then silence with the socket open
 *   /corrupt/…     Range honoured, but one byte flipped
 *   /redirect/…    302 to /good/…
 */
import { open } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';

export interface WebSeedServer {
  base: string;
  /** TCP connections accepted so far and the most open at once. */
  connections: () => { total: number; peakOpen: number };
  requests: () => number;
  /** Bytes written by the /ignore/ mode before the client hung up. */
  ignoredBytesSent: () => number;
  close: () => Promise<void>;
}

const IGNORED_FILE_SIZE = 10 * 1024 ** 3;

export async function startWebSeedServer(root: string, tlsOpts?: { key: Buffer; cert: Buffer }): Promise<WebSeedServer> {
  let requests = 0;
  let ignoredBytes = 0;
  const flakySeen = new Set<string>();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    requests++;
    void serve(req, res).catch(() => res.destroy());
  };
  const serve = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const [, mode = '', ...rest] = url.pathname.split('/');
    const rel = rest.map(decodeURIComponent).join('/');
    if (mode === 'loop') return void res.writeHead(302, { Location: `/loop2/${rest.join('/')}` }).end();
    if (mode === 'loop2') return void res.writeHead(302, { Location: `/loop/${rest.join('/')}` }).end();
    if (mode === 'redirect') return void res.writeHead(302, { Location: `/good/${rest.join('/')}` }).end();
    if (mode === '404') return void res.writeHead(404).end('not here');
    if (mode === 'flaky' && !flakySeen.has(rel)) {
      flakySeen.add(rel);
      return void res.writeHead(503).end('busy');
    }
    if (mode === 'ignore') {
      res.writeHead(200, { 'Content-Length': IGNORED_FILE_SIZE });
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = (): void => {
        while (!res.destroyed && ignoredBytes < IGNORED_FILE_SIZE) {
          ignoredBytes += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      return pump();
    }
    const file = path.join(root, rel);
    if (!file.startsWith(root + path.sep)) return void res.writeHead(403).end();
    const handle = await open(file).catch(() => undefined);
    if (!handle) return void res.writeHead(404).end();
    try {
      const size = (await handle.stat()).size;
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!m) {
        const all = Buffer.alloc(size);
        await handle.read(all, 0, size, 0);
        return void res.writeHead(200, { 'Content-Length': size }).end(all);
      }
      const first = Number(m[1]);
      const last = Math.min(Number(m[2]), size - 1);
      const body = Buffer.alloc(last - first + 1);
      await handle.read(body, 0, body.length, first);
      const shown = mode === 'badrange' ? `bytes ${first + 1}-${last + 1}/${size}` : `bytes ${first}-${last}/${size}`;
      res.writeHead(206, { 'Content-Range': shown, 'Content-Length': body.length });
      if (mode === 'short') {
        // Hang up as soon as the half is written: a timer here, late on a loaded machine, let the
        // client's idle timeout fire first and report 'stalled' instead.
        return void res.write(body.subarray(0, body.length >> 1), () => res.destroy());
      }
      if (mode === 'stall') return void res.write(body.subarray(0, Math.min(10, body.length)));
      if (mode === 'corrupt') body[body.length >> 1]! ^= 0xff;
      res.end(body);
    } finally {
      await handle.close();
    }
  };

  const server = tlsOpts ? https.createServer(tlsOpts, handler) : http.createServer(handler);
  const sockets = new Set<net.Socket>();
  let total = 0;
  let peakOpen = 0;
  server.on(tlsOpts ? 'secureConnection' : 'connection', (socket: net.Socket) => {
    total++;
    sockets.add(socket);
    peakOpen = Math.max(peakOpen, sockets.size);
    socket.on('close', () => sockets.delete(socket));
  });
  // TLS sockets that fail the handshake never become secure connections: still close them at the end.
  const raw = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    raw.add(s);
    s.on('close', () => raw.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    base: `${tlsOpts ? 'https' : 'http'}://127.0.0.1:${port}`,
    connections: () => ({ total, peakOpen }),
    requests: () => requests,
    ignoredBytesSent: () => ignoredBytes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of raw) s.destroy();
        server.close(() => resolve());
      }),
  };
}
