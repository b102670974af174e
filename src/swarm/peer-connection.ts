import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import Wire from 'bittorrent-protocol';
import utMetadata from 'ut_metadata';
import type { InfoHash } from '../metainfo/piece-layout.js';
import { FramingError, MessageFramer } from './message-framer.js';

/** bittorrent-protocol 5 internals used here, on purpose (see `receive`, `request`). */
interface WireInternals {
  _write(chunk: Uint8Array, cb: (err?: Error | null) => void): void;
  _message(id: number, numbers: number[], data: null): void;
}

function noop(): void {}

export type PeerSource = 'static' | 'dht' | 'tracker' | 'pex' | 'incoming';

export interface PeerConnectionOptions {
  socket: Socket;
  direction: 'in' | 'out';
  /** host:port we dialed, or the remote end of an accepted socket. */
  host: string;
  port: number;
  source: PeerSource;
  infoHash: InfoHash;
  peerId: Buffer;
  pieceCount: number;
  /** How many requests we queue from this peer (advertised as reqq). */
  reqq: number;
  listenPort?: number;
  infoBuffer?: Buffer;
  /** More BEP 10 extensions to offer (peer discovery adds ut_pex). */
  extensions?: readonly WireExtension[];
  handshakeTimeoutMs?: number;
  /**
   * The socket was made with `onread` and hands its chunks to `receive` itself
   * (one reused read buffer: no allocation per read). Otherwise 'data' events are used.
   */
  readsViaOnread?: boolean;
}

/** A bittorrent-protocol extension class, as `wire.use` takes it. */
export type WireExtension = Parameters<Wire['use']>[0];

/**
 * One peer: a socket, the framing guard and a bittorrent-protocol Wire. It
 * checks the handshake (protocol, infohash, not ourselves) and emits 'ready'
 * when both handshakes are done, 'close'(reason) once when it ends. The Swarm
 * listens to `wire` for the protocol messages themselves.
 */
export class PeerConnection extends EventEmitter {
  readonly wire: Wire;
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly direction: 'in' | 'out';
  readonly source: PeerSource;
  readonly connectedAt = Date.now();
  lastReceivedAt = Date.now();
  ready = false;
  closed = false;
  closeReason = '';
  /** Blocks received that were never requested (nor recently cancelled). */
  unrequestedBlocks = 0;
  /** The peer's advertised request queue length, once its extended handshake is in. */
  peerReqq: number | undefined;
  peerClient: string | undefined;
  bytesReceived = 0;

  readonly #framer: MessageFramer;
  readonly #socket: Socket;
  readonly #opts: PeerConnectionOptions;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #corked = false;

  constructor(opts: PeerConnectionOptions) {
    super();
    this.#opts = opts;
    this.#socket = opts.socket;
    this.host = opts.host;
    this.port = opts.port;
    this.address = `${opts.host}:${opts.port}`;
    this.direction = opts.direction;
    this.source = opts.source;
    this.#framer = new MessageFramer({ pieceCount: opts.pieceCount });
    this.wire = new Wire(opts.direction === 'in' ? 'tcpIncoming' : 'tcpOutgoing');
    this.wire.extendedHandshake = {
      reqq: opts.reqq,
      v: 'btmount',
      ...(opts.listenPort ? { p: opts.listenPort } : {}),
    };
    if (opts.infoBuffer) this.wire.use(utMetadata(opts.infoBuffer));
    for (const ext of opts.extensions ?? []) this.wire.use(ext);

    const socket = this.#socket;
    socket.setNoDelay(true);
    if (!opts.readsViaOnread) socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.destroy(`socket error: ${err.message}`));
    socket.on('end', () => this.destroy('peer closed the connection'));
    socket.on('close', () => this.destroy('connection closed'));
    socket.on('drain', () => this.emit('drain'));

    const wire = this.wire;
    wire.on('data', (buf: Uint8Array) => this.#send(buf));
    wire.on('handshake', (infoHash: string, peerId: string) => this.#onHandshake(infoHash, peerId));
    wire.on('extended', (ext: string, info: Record<string, unknown>) => {
      if (ext !== 'handshake') return;
      const reqq = info['reqq'];
      if (typeof reqq === 'number' && Number.isInteger(reqq) && reqq > 0) this.peerReqq = Math.min(reqq, 100_000);
      const v = info['v'];
      if (v instanceof Uint8Array) this.peerClient = Buffer.from(v).toString('utf8').slice(0, 64);
      this.emit('extended-handshake');
    });
    wire.on('finish', () => this.destroy('wire ended'));
    wire.on('close', () => this.destroy('wire closed'));
    wire.on('error', (err: Error) => this.destroy(`wire error: ${err.message}`));

    this.#handshakeTimer = setTimeout(() => this.destroy('handshake timed out'), opts.handshakeTimeoutMs ?? 10_000);
    this.#handshakeTimer.unref();
    if (opts.direction === 'out') this.wire.handshake(opts.infoHash, opts.peerId, { fast: true, dht: false });
  }

  /**
   * Sends a block request. Not `wire.request()`: that keeps its own list of
   * outstanding requests and scans it linearly for every block received, work the
   * scheduler already does; with hundreds of requests in flight the scan showed in
   * profiles. Without entries in that list, the wire's lookups stay empty and O(1).
   */
  request(index: number, offset: number, length: number): void {
    if (this.closed) return;
    (this.wire as unknown as WireInternals)._message(6, [index, offset, length], null);
  }

  /** Cancels a block request sent with `request`. */
  cancel(index: number, offset: number, length: number): void {
    if (this.closed) return;
    this.wire.cancel(index, offset, length);
  }

  /** Bytes queued in the socket for sending (upload backpressure). */
  get writableLength(): number {
    return this.#socket.writableLength;
  }

  pauseReading(): void {
    if (!this.closed) this.#socket.pause();
  }

  resumeReading(): void {
    if (!this.closed) this.#socket.resume();
  }

  destroy(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    clearTimeout(this.#handshakeTimer);
    this.#socket.destroy();
    try {
      this.wire.destroy();
    } catch {
      // the wire may already be ending
    }
    this.emit('close', reason);
  }

  /**
   * Bytes from the socket. They are parsed before this returns: the chunk may
   * be the socket's reused read buffer. The Wire is fed through its parser
   * directly (`_write`), not through its stream queue, which would defer the
   * parsing past the point where the bytes are still valid.
   */
  receive(chunk: Buffer): void {
    if (this.closed) return;
    this.lastReceivedAt = Date.now();
    this.bytesReceived += chunk.length;
    try {
      this.#framer.push(chunk, this.#feedWire);
    } catch (err) {
      if (err instanceof FramingError) return this.destroy(`protocol violation: ${err.message}`);
      // The Wire and its extensions throw on some messages (ut_metadata answers a request on a
      // wire that never mapped it: "Unrecognized extension"). From a socket callback that would
      // end the process: the peer goes instead.
      return this.destroy(`message handling failed: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  readonly #feedWire = (messages: Buffer): void => {
    if (!this.closed) (this.wire as unknown as WireInternals)._write(messages, noop);
  };

  #send(buf: Uint8Array): void {
    if (this.closed) return;
    // Coalesce the many small messages the wire pushes in one turn into one write.
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.#socket.uncork();
      });
    }
    this.#socket.write(buf);
  }

  #onHandshake(infoHash: string, peerId: string): void {
    if (infoHash !== this.#opts.infoHash) return this.destroy(`handshake for another torrent (${infoHash})`);
    if (peerId === this.#opts.peerId.toString('hex')) return this.destroy('connected to ourselves');
    if (this.#opts.direction === 'in') this.wire.handshake(this.#opts.infoHash, this.#opts.peerId, { fast: true, dht: false });
    clearTimeout(this.#handshakeTimer);
    this.ready = true;
    this.emit('ready', peerId);
  }
}
