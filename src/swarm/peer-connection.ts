import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import Wire from 'bittorrent-protocol';
import type { InfoHash } from '../metainfo/piece-layout.js';
import { FramingError, MessageFramer } from './message-framer.js';
import { metadataServingExtension } from './metadata-serving.js';
import { wireCounters } from './wire-counters.js';

/** bittorrent-protocol 5 internals used here, on purpose (see `receive`, `request`, `#takeOverWireInternals`). */
interface WireInternals {
  _write(chunk: Uint8Array, cb: (err?: Error | null) => void): void;
  _message(id: number, numbers: number[], data: null): void;
  _push(data: Uint8Array): void;
  _onReject(index: number, offset: number, length: number): void;
  readonly _finished: boolean;
  /** Payload bytes sent in piece messages (counted by `wire.piece`). */
  readonly uploaded: number;
  /** The peer's requests the wire has not answered or seen cancelled yet. */
  readonly peerRequests: readonly unknown[];
}

function noop(): void {}

/** Bytes read and held while reading is paused before the socket itself is paused. */
const MAX_HELD_BYTES = 256 * 1024;

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
 * How a peer answers one of its requests: the block, or an error (a reject with the fast
 * extension). Returns whether the block went out: not when the peer cancelled the request
 * (or the connection closed) while the block was being read.
 */
export type UploadResponder = (err: Error | null, block?: Uint8Array) => boolean;

/**
 * The peer's protocol messages, as the swarm handles them. None is called once the
 * connection is closed (the wire may still parse what it had buffered).
 */
export interface PeerMessageHandlers {
  bitfield(bits: Uint8Array): void;
  have(index: number): void;
  haveAll(): void;
  choke(): void;
  unchoke(): void;
  interested(): void;
  uninterested(): void;
  piece(index: number, offset: number, block: Uint8Array): void;
  reject(index: number, offset: number): void;
  allowedFast(index: number): void;
  request(index: number, offset: number, length: number, respond: UploadResponder): void;
  cancel(index: number, offset: number, length: number): void;
}

/**
 * One peer: a socket, the framing guard and a bittorrent-protocol Wire. It
 * checks the handshake (protocol, infohash, not ourselves) and emits 'ready'
 * when both handshakes are done, 'close'(reason) once when it ends. The protocol
 * is spoken through its methods (`handle` for what the peer sends, `choke`, `have`,
 * … for what we send); `wire` is for tests and the extensions' own plumbing.
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
  /** What the peer sent while reading was paused, not parsed yet (see pauseReading). */
  #held: Buffer[] | undefined;
  #heldBytes = 0;
  /** Set by `handle`; blocks that come before it are dropped (nobody asked for them yet). */
  #handlers: PeerMessageHandlers | undefined;

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
    if (opts.infoBuffer) this.wire.use(metadataServingExtension(opts.infoBuffer));
    for (const ext of opts.extensions ?? []) this.wire.use(ext);

    const socket = this.#socket;
    socket.setNoDelay(true);
    if (!opts.readsViaOnread) socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.destroy(`socket error: ${err.message}`));
    socket.on('end', () => this.destroy('peer closed the connection'));
    socket.on('close', () => this.destroy('connection closed'));
    socket.on('drain', () => this.emit('drain'));

    const wire = this.wire;
    this.#takeOverWireInternals();
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
    wireCounters.requestsSent++;
    (this.wire as unknown as WireInternals)._message(6, [index, offset, length], null);
  }

  /** Routes the peer's messages to `handlers` (once, after 'ready'). */
  handle(handlers: PeerMessageHandlers): void {
    const wire = this.wire;
    const on = <A extends unknown[]>(event: string, handler: (...args: A) => void): void => {
      wire.on(event, (...args: unknown[]) => {
        if (!this.closed) handler(...(args as A));
      });
    };
    on('bitfield', (bf: { buffer: Uint8Array }) => handlers.bitfield(bf.buffer));
    on('have', handlers.have);
    on('have-all', handlers.haveAll);
    on('choke', () => {
      wireCounters.chokesReceived++;
      handlers.choke();
    });
    on('unchoke', () => {
      wireCounters.unchokesReceived++;
      handlers.unchoke();
    });
    on('interested', handlers.interested);
    on('uninterested', handlers.uninterested);
    this.#handlers = handlers; // blocks: see #onPiece
    on('reject', handlers.reject);
    on('reject', () => wireCounters.rejectsReceived++);
    on('allowed-fast', handlers.allowedFast);
    on('request', (index: number, offset: number, length: number, respond: (err: Error | null, block?: Uint8Array) => void) => {
      handlers.request(index, offset, length, (err, block) => {
        // The wire sends the block only if the request is still pending (not cancelled).
        const before = (wire as unknown as WireInternals).uploaded;
        respond(err, block);
        return (wire as unknown as WireInternals).uploaded !== before;
      });
    });
    on('cancel', handlers.cancel);
  }

  /** The peer chokes us. */
  get peerChoking(): boolean {
    return this.wire.peerChoking;
  }

  /** We choke the peer. */
  get amChoking(): boolean {
    return this.wire.amChoking;
  }

  get peerInterested(): boolean {
    return this.wire.peerInterested;
  }

  get amInterested(): boolean {
    return this.wire.amInterested;
  }

  /**
   * The peer's requests the wire itself still holds (answered, rejected or cancelled ones
   * leave it): a debug gauge beside the uploader's own queue.
   */
  get pendingPeerRequests(): number {
    return (this.wire as unknown as WireInternals).peerRequests.length;
  }

  /** Both ends speak the fast extension (BEP 6: have-all, reject, allowed-fast). */
  get hasFast(): boolean {
    return this.wire.hasFast;
  }

  /** Bytes/s we send the peer. */
  uploadSpeed(): number {
    return this.wire.uploadSpeed();
  }

  choke(): void {
    if (this.closed) return;
    if (!this.wire.amChoking) wireCounters.chokesSent++;
    this.wire.choke();
  }

  unchoke(): void {
    if (this.closed) return;
    if (this.wire.amChoking) wireCounters.unchokesSent++;
    this.wire.unchoke();
  }

  /** Tells the peer whether we want something it has (sent only when it changes). */
  setInterested(interested: boolean): void {
    if (this.closed || interested === this.wire.amInterested) return;
    if (interested) this.wire.interested();
    else this.wire.uninterested();
  }

  have(index: number): void {
    if (!this.closed) this.wire.have(index);
  }

  /** Our pieces, right after the handshake: have-none or have-all where the fast extension allows, else a bitfield (nothing if none). */
  sendPieceSet(have: readonly number[], pieceCount: number): void {
    if (this.closed) return;
    const wire = this.wire;
    if (wire.hasFast && have.length === 0) return wire.haveNone();
    if (wire.hasFast && have.length === pieceCount) return wire.haveAll();
    if (have.length === 0) return;
    const bits = new Uint8Array(Math.ceil(pieceCount / 8));
    for (const i of have) bits[i >> 3]! |= 0x80 >> (i & 7);
    wire.bitfield(bits);
  }

  /** The peer's BEP 10 extended handshake, once it came. */
  get peerExtendedHandshake(): Readonly<Record<string, unknown>> | undefined {
    const handshake = this.wire.peerExtendedHandshake as Record<string, unknown> | undefined;
    return handshake && Object.keys(handshake).length > 0 ? handshake : undefined;
  }

  /** Whether the peer's extended handshake maps the extension `name` (it speaks it). */
  peerSpeaks(name: string): boolean {
    return Boolean((this.wire as unknown as { peerExtendedMapping?: Record<string, number> }).peerExtendedMapping?.[name]);
  }

  /** The instance of one of our extensions on this connection (as `wire.use` made it), if offered. */
  extension<T>(name: string): T | undefined {
    return (this.wire as unknown as Record<string, T | undefined>)[name];
  }

  /**
   * Cancels a block request sent with `request`. Not `wire.cancel()`: that looks the request
   * up in the wire's own list (empty, see `request`) and builds an Error for its callback,
   * stack trace and all, for each cancel.
   */
  cancel(index: number, offset: number, length: number): void {
    if (this.closed) return;
    wireCounters.cancelsSent++;
    (this.wire as unknown as WireInternals)._message(8, [index, offset, length], null);
  }

  /** Bytes queued in the socket for sending (upload backpressure). */
  get writableLength(): number {
    return this.#socket.writableLength;
  }

  /**
   * Stops taking in what the peer sends (--download-limit). The socket is still read, into a
   * bounded hold parsed on resume, so that a FIN or a reset is seen at once: a paused socket
   * learns of neither, and a peer that had hung up stayed half-open for the whole pause.
   * Past MAX_HELD_BYTES the socket itself pauses (TCP backpressure), as before.
   */
  pauseReading(): void {
    if (!this.closed) this.#held ??= [];
  }

  resumeReading(): void {
    const held = this.#held;
    if (this.closed || !held) return;
    this.#held = undefined;
    this.#heldBytes = 0;
    for (let i = 0; i < held.length; i++) {
      this.#parse(held[i]!);
      if (this.closed) return;
      if (this.#held) {
        // Paused again by what was just parsed: the rest waits, in order, for the next resume.
        this.#held = held.slice(i + 1);
        this.#heldBytes = this.#held.reduce((n, b) => n + b.length, 0);
        return;
      }
    }
    this.#socket.resume();
  }

  destroy(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.#held = undefined;
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
    if (this.#held) {
      this.#held.push(Buffer.from(chunk)); // a copy: the chunk may be the reused read buffer
      this.#heldBytes += chunk.length;
      if (this.#heldBytes >= MAX_HELD_BYTES) this.#socket.pause();
      return;
    }
    this.#parse(chunk);
  }

  #parse(chunk: Buffer): void {
    try {
      this.#framer.push(chunk, this.#feedWire, this.#onPiece);
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

  /**
   * A block, straight from the framer, not through the Wire: its parser cuts each message
   * into views twice, logs it through `debug`, scans its own (always empty, see `request`)
   * request list, updates a download meter nobody reads and emits two events, per 16 KiB.
   */
  readonly #onPiece = (index: number, offset: number, block: Buffer): void => {
    if (this.closed) return;
    wireCounters.blocksReceived++;
    this.#handlers?.piece(index, offset, block);
  };

  /**
   * Two of the Wire's methods replaced on this instance, both on the per-block path:
   *
   * - `_push`, where every outgoing message goes: the Wire pushes it into its readable
   *   stream (streamx), which queues it and emits it as 'data' later, per message, header
   *   and 16 KiB block separately; that machinery was the largest part of "socket writes"
   *   in the cluster's CPU profile. Here each message is written to the socket at once, in
   *   the order the Wire makes them (so nothing can overtake the handshake or bitfield),
   *   coalesced per turn by `#send`. The readable side of the Wire is not used any more.
   * - `_onReject`: it builds an Error (stack trace) for the callback of the request in the
   *   wire's own list, which is always empty here (see `request`); a node receives
   *   thousands of rejects from an origin that hands out distinct pieces.
   */
  #takeOverWireInternals(): void {
    const wire = this.wire as unknown as WireInternals;
    wire._push = (data: Uint8Array): void => {
      if (!wire._finished) this.#send(data);
    };
    wire._onReject = (index: number, offset: number, length: number): void => {
      // BEP 6: a reject without the fast extension ends the connection.
      if (!this.wire.hasFast) return this.destroy('peer sent a reject without the fast extension');
      this.wire.emit('reject', index, offset, length);
    };
  }

  /**
   * Everything the wire sends is held (corked) until the event loop has run this turn's I/O
   * callbacks, then every connection's output goes out at once (setImmediate: after the poll
   * phase). libuv hands one socket's data to several read callbacks in one turn, and each
   * block received makes a request, each request served a block: flushed per callback
   * (nextTick), that was one write syscall, one wake-up of the peer's process, per block sent
   * in an 8-node cluster. One flush per turn sends what the whole turn made as one writev.
   */
  #send(buf: Uint8Array): void {
    if (this.closed) return;
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      wireCounters.socketFlushes++;
      PeerConnection.#corkedThisTurn.push(this);
      if (PeerConnection.#corkedThisTurn.length === 1) setImmediate(PeerConnection.#flushTurn);
    }
    wireCounters.socketWrites++;
    wireCounters.socketBytes += buf.length;
    this.#socket.write(buf);
  }

  /** Connections whose output waits for the end of this turn (see `#send`). */
  static readonly #corkedThisTurn: PeerConnection[] = [];

  static readonly #flushTurn = (): void => {
    const corked = PeerConnection.#corkedThisTurn.splice(0);
    for (const pc of corked) {
      pc.#corked = false;
      pc.#socket.uncork();
    }
  };

  #onHandshake(infoHash: string, peerId: string): void {
    if (infoHash !== this.#opts.infoHash) return this.destroy(`handshake for another torrent (${infoHash})`);
    if (peerId === this.#opts.peerId.toString('hex')) return this.destroy('connected to ourselves');
    if (this.#opts.direction === 'in') this.wire.handshake(this.#opts.infoHash, this.#opts.peerId, { fast: true, dht: false });
    clearTimeout(this.#handshakeTimer);
    this.wire.setKeepAlive(true);
    this.ready = true;
    this.emit('ready', peerId);
  }
}
