import { BLOCK_SIZE } from '../metainfo/piece-layout.js';

/**
 * Sits between a peer's socket and bittorrent-protocol's Wire, and hands the
 * Wire whole, checked messages only. Why it exists (bittorrent-protocol 5):
 *
 * - The Wire buffers a message of any announced length: a peer announcing
 *   2^31-1 bytes makes it hold everything that follows. Here a length above
 *   what the protocol needs is an error, so memory stays bounded.
 * - The Wire concatenates its whole buffer on every socket chunk: a large
 *   message trickled in small chunks costs O(n²) copying. Here the Wire only
 *   ever receives complete messages: a chunk's complete messages are passed as
 *   a view; only a message split across chunks is copied, once, into a reused
 *   buffer.
 * - The Wire reads fixed fields past the end of short messages (a 1-byte
 *   "request" becomes request(0,0,0)), and accepts any piece index. Here every
 *   message id has its exact length, and indices are checked against the torrent.
 * - The Wire keeps some messages after parsing them: a bitfield becomes the
 *   peer's piece set (a view, which every later "have" writes a bit into), an
 *   extended handshake its `peerExtendedHandshake` (views of the dictionary's
 *   strings). Bitfield and extended messages are therefore handed over as
 *   copies of their own; a view into a reused socket buffer had the Wire flip
 *   bits in the next chunk's bytes (a length field corrupted this way made it
 *   wait for 8 MiB that never came: issue 13).
 */

export class FramingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FramingError';
  }
}

const PROTOCOL = Buffer.from('\x13BitTorrent protocol', 'latin1');
const HANDSHAKE_LENGTH = 68;
/** Extension (BEP 10) payloads: handshakes and ut_metadata pieces (16 KiB + a small dict). */
const MAX_EXTENDED = 128 * 1024;
/** Messages we do not know are ignored by the Wire, if small. */
const MAX_UNKNOWN = 32 * 1024;
/** The largest block we accept in a "piece" message (we only ask for 16 KiB). */
const MAX_BLOCK = BLOCK_SIZE;

/**
 * Takes "piece" messages (blocks) apart from the rest, when `push` is given one: the block
 * is a view, valid only during the call, like what `emit` gets.
 */
export type PieceHandler = (index: number, offset: number, block: Buffer) => void;

export interface FramerLimits {
  pieceCount: number;
}

export class MessageFramer {
  #handshakeDone = false;
  /** A unit split across chunks, copied here (the chunks may be reused by the socket). */
  #carry: Buffer = Buffer.alloc(0);
  #carryLength = 0;
  readonly #bitfieldLength: number;
  /** Bytes of the largest message we accept. */
  readonly maxMessage: number;

  readonly #limits: FramerLimits;
  constructor(limits: FramerLimits) {
    this.#limits = limits;
    this.#bitfieldLength = 1 + Math.ceil(limits.pieceCount / 8);
    this.maxMessage = Math.max(this.#bitfieldLength, 9 + MAX_BLOCK, MAX_EXTENDED);
  }

  /** Bytes held waiting for the rest of a message (bounded by maxMessage). */
  get buffered(): number {
    return this.#carryLength;
  }

  /**
   * Takes a socket chunk and calls `emit` with runs of complete messages, in
   * order. What `emit` gets is only valid during the call (it may view `chunk`
   * or the framer's own carry buffer): consume it synchronously. The exception
   * are the messages the Wire keeps (see above): each comes alone, in a copy.
   * With `piece`, blocks go there instead, in the same order with the rest.
   * Throws FramingError when the peer breaks the protocol.
   */
  push(chunk: Buffer, emit: (messages: Buffer) => void, piece?: PieceHandler): void {
    let pos = 0;
    if (this.#carryLength > 0) {
      pos = this.#fillCarry(chunk, emit, piece);
      if (pos < 0) return; // chunk used up, unit still incomplete
    }
    let start = pos;
    for (;;) {
      const size = this.#unitSize(chunk, pos);
      if (size < 0 || pos + size > chunk.length) break;
      if (piece && this.#isPiece(chunk, pos)) {
        if (pos > start) emit(chunk.subarray(start, pos));
        this.#unitDone();
        piece(chunk.readUInt32BE(pos + 5), chunk.readUInt32BE(pos + 9), chunk.subarray(pos + 13, pos + size));
        pos += size;
        start = pos;
        continue;
      }
      if (this.#keptByWire(chunk, pos)) {
        if (pos > start) emit(chunk.subarray(start, pos));
        emit(Buffer.from(chunk.subarray(pos, pos + size)));
        start = pos + size;
      }
      pos += size;
      this.#unitDone();
    }
    if (pos > start) emit(chunk.subarray(start, pos));
    if (pos < chunk.length) this.#appendCarry(chunk, pos, chunk.length);
  }

  /** Completes the carried unit from `chunk`; returns where the chunk's unused part starts, -1 if none. */
  #fillCarry(chunk: Buffer, emit: (messages: Buffer) => void, piece: PieceHandler | undefined): number {
    let pos = 0;
    for (;;) {
      const size = this.#unitSize(this.#carry.subarray(0, this.#carryLength), 0);
      if (size < 0) {
        // Header still incomplete: take the bytes a header can need (a handshake's 20, a message's 9).
        const take = Math.min((this.#handshakeDone ? 9 : PROTOCOL.length) - this.#carryLength, chunk.length - pos);
        if (take <= 0) return -1;
        this.#appendCarry(chunk, pos, pos + take);
        pos += take;
        if (pos === chunk.length && this.#unitSize(this.#carry.subarray(0, this.#carryLength), 0) < 0) return -1;
        continue;
      }
      if (this.#carryLength > size) {
        // We took more header bytes than this (short) unit has: give them back.
        pos -= this.#carryLength - size;
        this.#carryLength = size;
      }
      const take = Math.min(size - this.#carryLength, chunk.length - pos);
      this.#appendCarry(chunk, pos, pos + take);
      pos += take;
      if (this.#carryLength < size) return -1;
      this.#carryLength = 0;
      const unit = this.#carry.subarray(0, size);
      if (piece && this.#isPiece(unit, 0)) {
        this.#unitDone();
        piece(unit.readUInt32BE(5), unit.readUInt32BE(9), unit.subarray(13));
        return pos;
      }
      const kept = this.#keptByWire(unit, 0);
      this.#unitDone();
      emit(kept ? Buffer.from(unit) : unit);
      return pos;
    }
  }

  #appendCarry(chunk: Buffer, from: number, to: number): void {
    const n = to - from;
    if (n <= 0) return;
    if (this.#carryLength + n > this.#carry.length) {
      // Grows to the unit's size at most (bounded by maxMessage + a header).
      const grown = Buffer.allocUnsafe(Math.max(this.#carryLength + n, Math.min(2 * this.#carry.length, this.maxMessage + 4), 1024));
      this.#carry.copy(grown, 0, 0, this.#carryLength);
      this.#carry = grown;
    }
    chunk.copy(this.#carry, this.#carryLength, from, to);
    this.#carryLength += n;
  }

  /** The complete message at `pos` is a "piece" (a block). */
  #isPiece(data: Buffer, pos: number): boolean {
    return this.#handshakeDone && data[pos + 4] === 7 && data.readUInt32BE(pos) > 0;
  }

  /** The complete message at `pos` is one the Wire holds on to after parsing it. */
  #keptByWire(data: Buffer, pos: number): boolean {
    return this.#handshakeDone && data.readUInt32BE(pos) > 0 && KEPT_BY_WIRE.has(data[pos + 4]!);
  }

  #unitDone(): void {
    this.#handshakeDone = true;
  }

  /** Size of the unit starting at `pos`, -1 if its header is not complete yet. Throws on a bad header. */
  #unitSize(data: Buffer, pos: number): number {
    const available = data.length - pos;
    if (!this.#handshakeDone) {
      const n = Math.min(available, PROTOCOL.length);
      if (data.compare(PROTOCOL, 0, n, pos, pos + n) !== 0) throw new FramingError('not the BitTorrent protocol');
      return available >= PROTOCOL.length ? HANDSHAKE_LENGTH : -1;
    }
    if (available < 4) return -1;
    const length = data.readUInt32BE(pos);
    if (length === 0) return 4; // keep-alive
    if (length > this.maxMessage) throw new FramingError(`message of ${length} bytes (limit ${this.maxMessage})`);
    if (available < 5) return -1;
    const id = data[pos + 4]!;
    this.#checkLength(id, length);
    if (hasPieceIndex(id)) {
      if (available < 9) return -1; // header = length, id and piece index
      const index = data.readUInt32BE(pos + 5);
      if (index >= this.#limits.pieceCount) throw new FramingError(`message ${id} for piece ${index} of ${this.#limits.pieceCount}`);
    }
    return 4 + length;
  }

  #checkLength(id: number, length: number): void {
    const exact = EXACT_LENGTH[id];
    if (exact !== undefined) {
      if (length !== exact) throw new FramingError(`message ${id} of ${length} bytes (expected ${exact})`);
      return;
    }
    switch (id) {
      case 5:
        if (length !== this.#bitfieldLength) throw new FramingError(`bitfield of ${length - 1} bytes (expected ${this.#bitfieldLength - 1})`);
        return;
      case 7:
        if (length <= 9 || length > 9 + MAX_BLOCK) throw new FramingError(`piece message of ${length} bytes`);
        return;
      case 20:
        if (length < 2 || length > MAX_EXTENDED) throw new FramingError(`extended message of ${length} bytes`);
        return;
      default:
        if (length > MAX_UNKNOWN) throw new FramingError(`unknown message ${id} of ${length} bytes`);
    }
  }
}

/** Messages whose length is fixed by BEP 3 / BEP 6. */
const EXACT_LENGTH: Record<number, number> = {
  0: 1, // choke
  1: 1, // unchoke
  2: 1, // interested
  3: 1, // not interested
  4: 5, // have
  6: 13, // request
  8: 13, // cancel
  9: 3, // port
  13: 5, // suggest
  14: 1, // have all
  15: 1, // have none
  16: 13, // reject
  17: 5, // allowed fast
};

/** Bitfield and extended messages: bittorrent-protocol 5 keeps what it parsed from them. */
const KEPT_BY_WIRE = new Set([5, 20]);

/** Messages whose first field is a piece index. */
function hasPieceIndex(id: number): boolean {
  return id === 4 || id === 6 || id === 7 || id === 8 || id === 13 || id === 16 || id === 17;
}
