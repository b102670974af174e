import net from 'node:net';

/**
 * A listening socket held while the metadata is fetched, so that trackers and
 * the DHT can be told our port before the swarm exists. The swarm binds the
 * same port right after `release()`. Connections arriving meanwhile go to
 * `onConnection` (the metadata fetcher takes them).
 */
export class PortReservation {
  #onConnection: (socket: net.Socket) => void = (s) => s.destroy();

  readonly #server: net.Server;

  private constructor(
    server: net.Server,
    readonly port: number,
  ) {
    this.#server = server;
    server.on('connection', (socket) => this.#onConnection(socket));
  }

  /** `port` 0 = any; undefined = the first free of 6881–6889, else any (as the swarm picks). */
  static async take(port: number | undefined, host?: string): Promise<PortReservation> {
    const ports = port === undefined ? [6881, 6882, 6883, 6884, 6885, 6886, 6887, 6888, 6889, 0] : [port];
    let lastError: unknown;
    for (const p of ports) {
      const server = net.createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ port: p, ...(host ? { host } : {}) }, () => {
            server.off('error', reject);
            resolve();
          });
        });
        server.on('error', () => undefined);
        return new PortReservation(server, (server.address() as net.AddressInfo).port);
      } catch (err) {
        lastError = err;
        server.close();
      }
    }
    const code = (lastError as NodeJS.ErrnoException | undefined)?.code;
    throw new Error(`cannot listen on port ${port ?? '6881-6889'}: ${code ?? (lastError as Error)?.message ?? 'unknown error'}`);
  }

  accept(handler: (socket: net.Socket) => void): void {
    this.#onConnection = handler;
  }

  release(): Promise<void> {
    this.#onConnection = (s) => s.destroy();
    return new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
