declare module 'bittorrent-protocol' {
  import type { EventEmitter } from 'node:events';

  /** Only what btmount uses of the peer wire (bittorrent-protocol 5). */
  interface BitFieldLike {
    buffer: Uint8Array;
    get(index: number): boolean;
  }

  interface Extension {
    onHandshake?(infoHash: string, peerId: string, extensions: Record<string, boolean>): void;
    onExtendedHandshake?(handshake: Record<string, unknown>): void;
    onMessage?(buf: Uint8Array): void;
  }
  type ExtensionClass = { new (wire: Wire): Extension; prototype: { name: string } };

  class Wire extends EventEmitter {
    constructor(type?: string, peEnabled?: number);
    peerId: string | null;
    type: string;
    amChoking: boolean;
    amInterested: boolean;
    peerChoking: boolean;
    peerInterested: boolean;
    peerPieces: BitFieldLike;
    hasFast: boolean;
    extensions: Record<string, boolean>;
    peerExtensions: Record<string, boolean>;
    extendedHandshake: Record<string, unknown>;
    peerExtendedHandshake: Record<string, unknown>;
    requests: unknown[];
    peerRequests: unknown[];
    uploaded: number;
    downloaded: number;
    destroyed: boolean;
    uploadSpeed(): number;
    downloadSpeed(): number;

    write(chunk: Uint8Array): boolean;
    pipe<T extends NodeJS.WritableStream>(destination: T): T;
    end(): void;
    destroy(): void;
    use(ext: ExtensionClass): void;
    setKeepAlive(enable: boolean): void;
    setTimeout(ms: number, unref?: boolean): void;
    handshake(infoHash: string | Uint8Array, peerId: string | Uint8Array, extensions?: { dht?: boolean; fast?: boolean }): void;
    choke(): void;
    unchoke(): void;
    interested(): void;
    uninterested(): void;
    have(index: number): void;
    bitfield(bitfield: Uint8Array): void;
    haveAll(): void;
    haveNone(): void;
    request(index: number, offset: number, length: number, cb?: (err: Error | null, buf?: Uint8Array) => void): void;
    piece(index: number, offset: number, buffer: Uint8Array): void;
    cancel(index: number, offset: number, length: number): void;
    reject(index: number, offset: number, length: number): void;
    keepAlive(): void;
    extended(ext: number | string, obj: unknown): void;
  }
  export default Wire;
}
