declare module 'bittorrent-dht' {
  import { EventEmitter } from 'node:events';

  /** Only what btmount uses of bittorrent-dht 11 (BEP 5 peers; no BEP 44 storage). */
  export interface DhtContact {
    host: string;
    port: number;
    id?: Uint8Array | string;
  }

  export interface DhtOptions {
    /** Nodes to start from; `false` for none. */
    bootstrap?: false | Array<string | DhtContact>;
    nodeId?: Uint8Array | string;
    /** Our public address, if announcing should also store us locally; false otherwise. */
    host?: string | false;
    concurrency?: number;
    maxPeers?: number;
    /** Peers stored for others expire after this many ms (0 = never). */
    maxAge?: number;
  }

  interface RoutingTable {
    count(): number;
    toArray(): DhtContact[];
  }

  export default class DHT extends EventEmitter {
    constructor(opts?: DhtOptions);
    readonly nodeId: Uint8Array;
    readonly nodes: RoutingTable;
    listening: boolean;
    destroyed: boolean;
    listen(port?: number, address?: string, cb?: () => void): void;
    listen(port?: number, cb?: () => void): void;
    address(): { address: string; family: string; port: number };
    addNode(node: DhtContact): void;
    /** Walks towards the infohash, emitting 'peer' for each peer found; returns an abort function. */
    lookup(infoHash: string | Uint8Array, cb?: (err: Error | null, nodesQueried?: number) => void): () => void;
    /** Stores our port for the infohash at the closest nodes (after a lookup of its own if needed). */
    announce(infoHash: string | Uint8Array, port: number, cb?: (err: Error | null) => void): void;
    toJSON(): { nodes: DhtContact[] };
    destroy(cb?: () => void): void;
    on(event: 'peer', listener: (peer: { host: string; port: number }, infoHash: Uint8Array, from: DhtContact | null) => void): this;
    on(event: 'ready' | 'listening' | 'close', listener: () => void): this;
    on(event: 'node', listener: (node: DhtContact) => void): this;
    on(event: 'warning' | 'error', listener: (err: Error) => void): this;
  }
}
