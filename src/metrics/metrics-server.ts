import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';

/** A set of metrics a scrape serializes; refresh() drops the previous scrape's snapshot. */
export interface ScrapeTarget {
  readonly registry: Registry;
  refresh(): void;
}

export interface MetricsAddress {
  host: string;
  port: number;
}

/** The default host of --metrics: never reachable from other machines unless asked. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/**
 * Serves Prometheus text format at http://HOST:PORT/metrics (--metrics).
 * Off unless asked; a scrape reads counters the process keeps anyway.
 */
export class MetricsServer {
  readonly #server: http.Server;

  private constructor(
    server: http.Server,
    readonly address: MetricsAddress,
  ) {
    this.#server = server;
  }

  /** Listens, or rejects with a message naming the address (port taken, address not local). */
  static async start(target: ScrapeTarget, at: MetricsAddress, log: Logger): Promise<MetricsServer> {
    const server = http.createServer((req, res) => {
      const url = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (url !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('btmount serves its metrics at /metrics\n');
        return;
      }
      target.refresh();
      target.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': target.registry.contentType }).end(text),
        (err: unknown) => {
          log.error({ err }, 'collecting metrics failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed; see the log\n');
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`--metrics ${at.host}:${at.port}: cannot listen (${err.code ?? err.message})`)));
      server.listen(at.port, at.host, () => resolve());
    });
    server.on('error', (err) => log.error({ err }, 'metrics server error'));
    const port = (server.address() as AddressInfo).port;
    log.info({ host: at.host, port }, `metrics at http://${at.host.includes(':') ? `[${at.host}]` : at.host}:${port}/metrics`);
    return new MetricsServer(server, { host: at.host, port });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
