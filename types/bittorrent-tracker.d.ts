declare module 'bittorrent-tracker' {
  import { EventEmitter } from 'node:events';

  /** Only what btmount uses of bittorrent-tracker 11 (HTTP and UDP announces; never WebRTC). */
  export interface AnnounceCounters {
    uploaded?: number;
    downloaded?: number;
    left?: number;
    numwant?: number;
  }

  export interface ClientOptions {
    infoHash: string | Uint8Array;
    peerId: string | Uint8Array;
    announce: string | string[];
    port: number;
    getAnnounceOpts?: () => AnnounceCounters;
    userAgent?: string;
    /** `false` turns WebRTC off: ws:// and wss:// trackers are then skipped with a warning. */
    wrtc?: false;
    /** Dispatchers for HTTP(S) announces, handed to fetch (btmount: to send from the --host address). */
    proxyOpts?: { httpAgent?: import('undici').Dispatcher; httpsAgent?: import('undici').Dispatcher };
  }

  /** Emitted after each successful announce, with the tracker's counts. */
  export interface AnnounceUpdate {
    announce: string;
    complete?: number;
    incomplete?: number;
    /** Seconds until the next announce, as the tracker sent it (unchecked). */
    interval?: unknown;
    'min interval'?: unknown;
  }

  export class Client extends EventEmitter {
    constructor(opts: ClientOptions);
    start(opts?: AnnounceCounters): void;
    stop(opts?: AnnounceCounters): void;
    update(opts?: AnnounceCounters): void;
    complete(opts?: AnnounceCounters): void;
    setInterval(ms: number): void;
    destroy(cb?: (err: Error | null) => void): void;
    on(event: 'peer', listener: (address: string) => void): this;
    on(event: 'update', listener: (data: AnnounceUpdate) => void): this;
    on(event: 'warning' | 'error', listener: (err: Error) => void): this;
  }

  export interface ServerOptions {
    http?: boolean;
    udp?: boolean;
    ws?: boolean;
    stats?: boolean;
    /** Announce interval told to clients, in ms. */
    interval?: number;
  }

  export interface AnnounceParams {
    type: 'http' | 'udp' | 'ws';
    event?: string;
    peer_id: string;
    port: number;
    addr: string;
    info_hash: string;
  }

  export class Server extends EventEmitter {
    constructor(opts?: ServerOptions);
    http: import('node:http').Server | null;
    udp4: import('node:dgram').Socket | null;
    listen(port: number, hostname: string, cb?: () => void): void;
    close(cb?: () => void): void;
    on(event: 'start' | 'stop' | 'update' | 'complete', listener: (addr: string, params: AnnounceParams) => void): this;
    on(event: 'listening', listener: () => void): this;
    on(event: 'warning' | 'error', listener: (err: Error) => void): this;
  }

  export default Client;
}
