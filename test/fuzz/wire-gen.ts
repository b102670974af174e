import fc from 'fast-check';
import { benBytesOf, benDict, benIntOf, benValue, interestingInts, orderedDict } from './bencode-gen.js';

/**
 * Generators of what a peer can send down a BitTorrent connection: the
 * handshake, every BEP 3/6/10 message with right, odd and wrong fields, BEP 9
 * (ut_metadata) and BEP 11 (ut_pex) payloads, and raw junk; then the stream
 * cut into chunks at random points, as TCP may deliver it.
 */

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

export function message(id: number, payload: Buffer): Buffer {
  return Buffer.concat([u32(1 + payload.length), Buffer.from([id]), payload]);
}

export interface WireShape {
  infoHash: Buffer;
  pieceCount: number;
  pieceLength: number;
  /** Real blocks of the torrent, so that some generated "piece" messages carry right bytes. */
  block(index: number, offset: number, length: number): Buffer;
}

export function handshake(infoHash: Buffer, reserved: Buffer, peerId: Buffer): Buffer {
  return Buffer.concat([Buffer.from('\x13BitTorrent protocol', 'latin1'), reserved, infoHash, peerId]);
}

/** Reserved bytes: usually extension protocol (BEP 10) and fast (BEP 6) on. */
export const reservedBits = fc.oneof(
  { weight: 4, arbitrary: fc.constant(Buffer.from([0, 0, 0, 0, 0, 0x10, 0, 0x05])) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b)) },
);

export const peerId = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => Buffer.from(b));

const compactPeers = (n: number) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: n * 6 }).map((b) => Buffer.from(b)) },
    // Real-looking loopback peers (never dialed: the harness records them).
    { weight: 2, arbitrary: fc.array(fc.tuple(fc.nat(255), fc.nat(65535)), { maxLength: n }).map((ps) => Buffer.concat(ps.map(([h, p]) => Buffer.from([127, 0, 0, h, p >> 8, p & 255])))) },
  );

/** A BEP 11 ut_pex dictionary. */
export const pexPayload = fc.oneof(
  { weight: 6, arbitrary: fc
      .record({
        added: fc.option(compactPeers(400), { nil: undefined }),
        addedF: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }),
        added6: fc.option(fc.uint8Array({ maxLength: 18 * 20 }), { nil: undefined }),
        dropped: fc.option(compactPeers(20), { nil: undefined }),
        dropped6: fc.option(fc.uint8Array({ maxLength: 18 * 4 }), { nil: undefined }),
        disorder: fc.nat(4),
      })
      .map((p) => {
        const entries: Array<[string, Buffer]> = [];
        if (p.added) entries.push(['added', benBytesOf(p.added)]);
        if (p.addedF) entries.push(['added.f', benBytesOf(p.addedF)]);
        if (p.added6) entries.push(['added6', benBytesOf(p.added6)]);
        if (p.dropped) entries.push(['dropped', benBytesOf(p.dropped)]);
        if (p.dropped6) entries.push(['dropped6', benBytesOf(p.dropped6)]);
        return orderedDict(entries, p.disorder);
      }) },
  { weight: 1, arbitrary: benValue },
);

/** A BEP 9 message: the dictionary, and for "data" the piece bytes after it. */
export const metadataPayload = fc.oneof(
  { weight: 6, arbitrary: fc
      .record({
        type: fc.oneof(fc.constantFrom(0, 1, 2), interestingInts),
        piece: fc.oneof(fc.nat(10), interestingInts),
        total: fc.option(fc.oneof(fc.nat(200_000), interestingInts), { nil: undefined }),
        trailer: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 16380, max: 16390 }).map((n) => new Uint8Array(n))),
      })
      .map(({ type, piece, total, trailer }) => {
        const entries: Array<[string, Buffer]> = [['msg_type', benIntOf(type)], ['piece', benIntOf(piece)]];
        if (total !== undefined) entries.push(['total_size', benIntOf(total)]);
        return Buffer.concat([orderedDict(entries, 0), Buffer.from(trailer)]);
      }) },
  { weight: 1, arbitrary: benValue },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)) },
);

/** A BEP 10 extended handshake offering ut_metadata and ut_pex, with right and wrong values. */
export const extendedHandshake = fc
  .record({
    utMetadata: fc.oneof(fc.constantFrom(1, 2, 3, 0), interestingInts),
    utPex: fc.oneof(fc.constantFrom(1, 2, 3, 0), interestingInts),
    metadataSize: fc.option(fc.oneof(fc.nat(200_000), interestingInts), { nil: undefined }),
    reqq: fc.option(fc.oneof(fc.nat(5000), interestingInts), { nil: undefined }),
    p: fc.option(fc.oneof(fc.nat(70_000), interestingInts), { nil: undefined }),
    v: fc.option(fc.uint8Array({ maxLength: 100 }), { nil: undefined }),
    odd: fc.option(fc.tuple(fc.constantFrom('m', 'metadata_size', 'reqq', 'v', 'p', 'yourip', 'ipv6', 'e'), benValue), { nil: undefined }),
  })
  .map((h) => {
    const m = benDict([['ut_metadata', benIntOf(h.utMetadata)], ['ut_pex', benIntOf(h.utPex)]]);
    const entries: Array<[string, Buffer]> = [['m', m]];
    if (h.metadataSize !== undefined) entries.push(['metadata_size', benIntOf(h.metadataSize)]);
    if (h.reqq !== undefined) entries.push(['reqq', benIntOf(h.reqq)]);
    if (h.p !== undefined) entries.push(['p', benIntOf(h.p)]);
    if (h.v !== undefined) entries.push(['v', benBytesOf(h.v)]);
    if (h.odd) entries.push(h.odd);
    return message(20, Buffer.concat([Buffer.from([0]), orderedDict(entries, 0)]));
  });

/** Any message a peer may send once handshaken (as an opaque part of the stream). */
export function peerMessage(shape: WireShape): fc.Arbitrary<Buffer> {
  const index = fc.oneof({ weight: 8, arbitrary: fc.nat(shape.pieceCount - 1) }, { weight: 1, arbitrary: fc.constantFrom(shape.pieceCount, 2 ** 32 - 1, 2 ** 31) });
  const offset = fc.oneof({ weight: 6, arbitrary: fc.nat(Math.max(0, shape.pieceLength / 16384 - 1)).map((b) => b * 16384) }, { weight: 1, arbitrary: fc.nat() });
  const length = fc.oneof({ weight: 6, arbitrary: fc.constant(16384) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 16383, 16385, 131072, 2 ** 32 - 1) });
  const bitfield = fc.uint8Array({ minLength: Math.ceil(shape.pieceCount / 8), maxLength: Math.ceil(shape.pieceCount / 8) });
  return fc.oneof(
    fc.constantFrom(0, 1, 2, 3, 14, 15).map((id) => message(id, Buffer.alloc(0))),
    fc.constant(Buffer.alloc(4)), // keep-alive
    fc.tuple(fc.constantFrom(4, 13, 17), index).map(([id, i]) => message(id, u32(i))),
    fc.oneof(bitfield, fc.uint8Array({ maxLength: 8 })).map((b) => message(5, Buffer.from(b))),
    fc.tuple(fc.constantFrom(6, 8, 16), index, offset, length).map(([id, i, o, l]) => message(id, Buffer.concat([u32(i), u32(o), u32(l)]))),
    // "piece": real bytes (it may complete and verify a piece), or junk of the right size.
    fc.tuple(index, offset, fc.boolean()).map(([i, o, real]) => {
      const len = Math.min(16384, Math.max(1, shape.pieceLength - (o % shape.pieceLength)));
      const data = real && i < shape.pieceCount ? shape.block(i, o % shape.pieceLength, len) : Buffer.alloc(len, 0xab);
      return message(7, Buffer.concat([u32(i), u32(o), data]));
    }),
    fc.nat(65535).map((port) => message(9, Buffer.from([port >> 8, port & 255]))),
    extendedHandshake,
    fc.tuple(fc.constantFrom(1, 2, 3), metadataPayload).map(([ext, p]) => message(20, Buffer.concat([Buffer.from([ext]), p]))),
    fc.tuple(fc.constantFrom(1, 2, 3), pexPayload).map(([ext, p]) => message(20, Buffer.concat([Buffer.from([ext]), p]))),
    // Wrong lengths, unknown ids, announced lengths far beyond what follows.
    fc.tuple(fc.nat(255), fc.uint8Array({ maxLength: 40 })).map(([id, p]) => message(id, Buffer.from(p))),
    fc.tuple(fc.constantFrom(2 ** 32 - 1, 2 ** 31, 1 << 20, 16384 + 9, 16384 + 10), fc.nat(255)).map(([len, id]) => Buffer.concat([u32(len), Buffer.from([id])])),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => Buffer.from(b)),
  );
}

/** Cuts a stream into chunks at the given points (as TCP may deliver it). */
export function cutStream(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % Math.max(1, stream.length)))].filter((c) => c > 0).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    chunks.push(stream.subarray(at, p));
    at = p;
  }
  chunks.push(stream.subarray(at));
  return chunks.filter((c) => c.length > 0);
}

/** A whole connection's worth of bytes: handshake (mostly right), messages, cut into chunks. */
export function peerStream(shape: WireShape, messages: fc.Arbitrary<Buffer>, maxMessages = 30): fc.Arbitrary<Buffer[]> {
  const hs = fc.oneof(
    { weight: 12, arbitrary: fc.tuple(reservedBits, peerId).map(([r, id]) => handshake(shape.infoHash, r, id)) },
    { weight: 1, arbitrary: fc.tuple(reservedBits, peerId, fc.uint8Array({ minLength: 20, maxLength: 20 })).map(([r, id, h]) => handshake(Buffer.from(h), r, id)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)) },
  );
  return fc
    .tuple(hs, fc.array(messages, { maxLength: maxMessages }), fc.array(fc.nat(), { maxLength: 8 }))
    .map(([h, ms, cuts]) => cutStream(Buffer.concat([h, ...ms]), cuts));
}
