declare module 'ut_pex' {
  import type { EventEmitter } from 'node:events';
  import type Wire from 'bittorrent-protocol';

  /** The peer exchange (BEP 11) extension a wire gets from `wire.use(utPex())`. */
  export interface PexExtension extends EventEmitter {
    /** Sends the added/dropped peers collected so far every 65 s. */
    start(): void;
    stop(): void;
    reset(): void;
    addPeer(address: string): void;
    addPeer6(address: string): void;
    dropPeer(address: string): void;
    dropPeer6(address: string): void;
    /** Sends the collected changes now (the remote drops us if we do so more than once a minute). */
    _sendMessage(): void;
    onExtendedHandshake(handshake: Record<string, unknown>): void;
    onMessage(buf: Uint8Array): void;
    on(event: 'peer' | 'dropped', listener: (address: string) => void): this;
    on(event: 'warning', listener: (err: Error) => void): this;
  }

  function utPex(): { new (wire: Wire): PexExtension; prototype: { name: string } };
  export default utPex;
}
