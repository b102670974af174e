import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import bencode from 'bencode';
import Wire from 'bittorrent-protocol';

/** BEP 9 sends the info dictionary in pieces of 16 KiB. */
export const METADATA_PIECE = 16 * 1024;
/**
 * The largest info dictionary we fetch. A million-file dataset needs some
 * 60–80 MiB (names, lengths and 20 bytes per piece); ut_metadata's own cap of
 * 10 MB would refuse it.
 */
export const MAX_METADATA_BYTES = 128 * 1024 * 1024;
/** Extended messages we accept: a metadata piece plus its small dictionary. */
const MAX_EXTENDED_MESSAGE = METADATA_PIECE + 1024;
/** Requests outstanding at once per peer. */
const REQUEST_WINDOW = 8;
const PROTOCOL = Buffer.from('\x13BitTorrent protocol', 'latin1');

export interface MetadataWireOptions {
  socket: Socket;
  direction: 'in' | 'out';
  /** The peer's host (for bans). */
  host: string;
  infoHash: string;
  peerId: Buffer;
  /** Our peer port, told in the extended handshake so that PEX can pass it on. */
  listenPort: number;
  handshakeTimeoutMs?: number;
}

/**
 * A connection used only to fetch the info dictionary (BEP 9) before the
 * torrent's shape is known: the BitTorrent and extended handshakes go through
 * bittorrent-protocol's Wire, the ut_metadata exchange is checked here.
 *
 * Only handshakes and extended messages reach the Wire; other messages
 * (bitfield, have, ...) are skipped as they stream by, never buffered, and an
 * extended message above 17 KiB ends the connection, so a peer cannot make
 * us hold more than one piece of memory beyond the dictionary itself.
 * Every piece is checked (requested, in range, exact length, consistent total
 * size) before it is stored; hashing the result is the caller's job.
 *
 * Events: 'ready'(peerId) after both handshakes; 'size'(bytes) when the peer
 * says it has the metadata; 'unavailable'(why) when it cannot give it;
 * 'metadata'(Buffer) with the complete, unverified bytes; 'progress' for each
 * piece; 'close'(reason) once.
 */
export class MetadataWire extends EventEmitter {
  readonly wire: Wire;
  readonly host: string;
  ready = false;
  closed = false;
  closeReason = '';
  /** The peer's metadata size, once its extended handshake named one. */
  size: number | undefined;
  lastProgressAt = Date.now();
  /** Listen port from the peer's extended handshake, if it sent one. */
  peerListenPort: number | undefined;

  readonly #socket: Socket;
  readonly #opts: MetadataWireOptions;
  readonly #timer: NodeJS.Timeout;
  // framing
  #handshakeSeen = false;
  #carry: Buffer = Buffer.alloc(0);
  #skipping = 0;
  // fetching
  #buffer: Buffer | undefined;
  #pieceCount = 0;
  #nextRequest = 0;
  readonly #outstanding = new Set<number>();
  #received = 0;

  constructor(opts: MetadataWireOptions) {
    super();
    this.#opts = opts;
    this.#socket = opts.socket;
    this.host = opts.host;
    this.wire = new Wire(opts.direction === 'in' ? 'tcpIncoming' : 'tcpOutgoing');
    this.wire.extendedHandshake = { v: 'btmount', ...(opts.listenPort ? { p: opts.listenPort } : {}) };
    this.wire.use(metadataExtension(this));

    const socket = this.#socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.destroy(`socket error: ${err.message}`));
    socket.on('end', () => this.destroy('peer closed the connection'));
    socket.on('close', () => this.destroy('connection closed'));
    this.wire.on('data', (buf: Uint8Array) => {
      if (!this.closed) socket.write(buf);
    });
    this.wire.on('handshake', (infoHash: string, peerId: string) => this.#onHandshake(infoHash, peerId));
    this.wire.on('extended', (ext: string, info: Record<string, unknown>) => {
      if (ext === 'handshake') this.#onPeerExtendedHandshake(info);
    });
    this.wire.on('error', (err: Error) => this.destroy(`wire error: ${err.message}`));
    this.wire.on('close', () => this.destroy('wire closed'));

    this.#timer = setTimeout(() => this.destroy('handshake timed out'), opts.handshakeTimeoutMs ?? 10_000);
    this.#timer.unref();
    if (opts.direction === 'out') this.wire.handshake(opts.infoHash, opts.peerId, { fast: false, dht: false });
  }

  /** Asks the peer for every piece of the dictionary (a few at a time). */
  startFetch(): void {
    if (this.closed || this.size === undefined || this.#buffer) return;
    this.#buffer = Buffer.alloc(this.size);
    this.#pieceCount = Math.ceil(this.size / METADATA_PIECE);
    this.lastProgressAt = Date.now();
    this.#requestMore();
  }

  get fetching(): boolean {
    return this.#buffer !== undefined;
  }

  destroy(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    clearTimeout(this.#timer);
    this.#buffer = undefined;
    this.#socket.destroy();
    try {
      this.wire.destroy();
    } catch {
      // already ending
    }
    this.emit('close', reason);
  }

  // ── protocol events ───────────────────────────────────────────────────────

  #onPeerExtendedHandshake(handshake: Record<string, unknown>): void {
    if (this.closed) return;
    const p = handshake['p'];
    if (typeof p === 'number' && Number.isInteger(p) && p > 0 && p < 65536) this.peerListenPort = p;
    const m = handshake['m'] as Record<string, unknown> | undefined;
    if (!m || typeof m !== 'object' || !m['ut_metadata']) return void this.emit('unavailable', 'does not support ut_metadata (BEP 9)');
    const size = handshake['metadata_size'];
    if (size === undefined) return void this.emit('unavailable', 'has no metadata to give');
    if (typeof size !== 'number' || !Number.isInteger(size) || size <= 0 || size > MAX_METADATA_BYTES) {
      return void this.emit('unavailable', `claims an impossible metadata size (${String(size)})`);
    }
    // A second extended handshake may not change the size under a fetch sized by the first.
    if (this.size !== undefined && size !== this.size) return this.destroy(`changed its metadata size from ${this.size} to ${size}`);
    this.size = size;
    this.emit('size', size);
  }

  /** A ut_metadata message from the peer (called by the wire extension). */
  onMetadataMessage(buf: Uint8Array): void {
    if (this.closed) return;
    let dict: Record<string, unknown>;
    let trailer: Buffer;
    try {
      const data = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
      dict = bencode.decode(data) as Record<string, unknown>;
      trailer = data.subarray(bencode.decode.position);
      if (!dict || typeof dict !== 'object') throw new Error('not a dictionary');
    } catch {
      return this.destroy('sent an undecodable ut_metadata message');
    }
    const type = dict['msg_type'];
    const piece = dict['piece'];
    if (type === 0) {
      // A request: we have nothing to give yet.
      if (typeof piece === 'number') this.#send({ msg_type: 2, piece });
      return;
    }
    if (type === 2) {
      if (this.#buffer && typeof piece === 'number' && this.#outstanding.has(piece)) this.emit('unavailable', `rejected our request for metadata piece ${piece}`);
      return;
    }
    if (type !== 1) return; // unknown types are ignored (BEP 9)
    if (!this.#buffer) return this.destroy('sent metadata we did not ask for');
    if (typeof piece !== 'number' || !this.#outstanding.has(piece)) return this.destroy(`sent metadata piece ${String(piece)} we did not ask for`);
    const total = dict['total_size'];
    if (total !== undefined && total !== this.size) return this.destroy(`sent a total_size of ${String(total)} after announcing ${this.size}`);
    const start = piece * METADATA_PIECE;
    const expected = Math.min(METADATA_PIECE, this.size! - start);
    if (trailer.length !== expected) return this.destroy(`sent metadata piece ${piece} of ${trailer.length} bytes (expected ${expected})`);
    trailer.copy(this.#buffer, start);
    this.#outstanding.delete(piece);
    this.#received++;
    this.lastProgressAt = Date.now();
    this.emit('progress', this.#received, this.#pieceCount);
    if (this.#received === this.#pieceCount) {
      const complete = this.#buffer;
      this.#buffer = undefined;
      this.emit('metadata', complete);
      return;
    }
    this.#requestMore();
  }

  // ── internals ─────────────────────────────────────────────────────────────

  #requestMore(): void {
    while (this.#buffer && this.#outstanding.size < REQUEST_WINDOW && this.#nextRequest < this.#pieceCount) {
      const piece = this.#nextRequest++;
      this.#outstanding.add(piece);
      this.#send({ msg_type: 0, piece });
    }
  }

  #send(dict: Record<string, number>): void {
    if (this.closed) return;
    try {
      this.wire.extended('ut_metadata', bencode.encode(dict));
    } catch (err) {
      this.destroy(`cannot send: ${(err as Error).message}`);
    }
  }

  #onHandshake(infoHash: string, peerId: string): void {
    if (infoHash !== this.#opts.infoHash) return this.destroy(`handshake for another torrent (${infoHash})`);
    if (peerId === this.#opts.peerId.toString('hex')) return this.destroy('connected to ourselves');
    if (this.#opts.direction === 'in') this.wire.handshake(this.#opts.infoHash, this.#opts.peerId, { fast: false, dht: false });
    if (!this.wire.peerExtensions['extended']) return this.destroy('does not support extension messages (BEP 10)');
    clearTimeout(this.#timer);
    this.ready = true;
    this.emit('ready', peerId);
  }

  #onData(chunk: Buffer): void {
    if (this.closed) return;
    let data = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk;
    this.#carry = Buffer.alloc(0);
    while (data.length > 0 && !this.closed) {
      if (this.#skipping > 0) {
        const n = Math.min(this.#skipping, data.length);
        this.#skipping -= n;
        data = data.subarray(n);
        continue;
      }
      if (!this.#handshakeSeen) {
        const n = Math.min(data.length, PROTOCOL.length);
        if (data.compare(PROTOCOL, 0, n, 0, n) !== 0) return this.destroy('not the BitTorrent protocol');
        if (data.length < 68) break;
        this.#handshakeSeen = true;
        this.wire.write(data.subarray(0, 68));
        data = data.subarray(68);
        continue;
      }
      if (data.length < 4) break;
      const length = data.readUInt32BE(0);
      if (length === 0) {
        data = data.subarray(4);
        continue;
      }
      if (data.length < 5) break;
      if (data[4] !== 20) {
        // Not for us before the metadata is known: skip it as it streams by.
        this.#skipping = 4 + length;
        continue;
      }
      if (length < 2 || length > MAX_EXTENDED_MESSAGE) return this.destroy(`extended message of ${length} bytes`);
      if (data.length < 4 + length) break;
      this.wire.write(data.subarray(0, 4 + length));
      data = data.subarray(4 + length);
    }
    if (data.length > 0 && !this.closed) this.#carry = Buffer.from(data);
  }
}

/** The ut_metadata extension of one MetadataWire (fetch side only; BEP 9). */
function metadataExtension(owner: MetadataWire) {
  class UtMetadataFetch {
    onMessage(buf: Uint8Array): void {
      owner.onMetadataMessage(buf);
    }
  }
  (UtMetadataFetch.prototype as unknown as { name: string }).name = 'ut_metadata';
  return UtMetadataFetch as unknown as { new (wire: Wire): UtMetadataFetch; prototype: { name: string } };
}
