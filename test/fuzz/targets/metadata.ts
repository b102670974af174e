import fc from 'fast-check';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { MetadataWire, METADATA_PIECE } from '../../../src/discovery/metadata-wire.js';
import { benDict, benIntOf, interestingInts, orderedDict } from '../bencode-gen.js';
import { cutStream, handshake, message, metadataPayload, peerId, peerStream, reservedBits, type WireShape } from '../wire-gen.js';
import { expect, type FuzzTarget } from '../target.js';

/** An info dictionary of three and a bit metadata pieces, bytes fixed so generators can send right ones. */
const INFO = Buffer.concat(Array.from({ length: (3 * METADATA_PIECE + 1000) / 32 }, (_, i) => createHash('sha256').update(`info ${i}`).digest()));
const INFO_HASH = createHash('sha1').update(INFO).digest();
const PIECES = Math.ceil(INFO.length / METADATA_PIECE);
const OUR_ID = Buffer.from('-BM0100-metadatafuzz');

/** A BEP 9 "data" message for piece `i` of INFO (right bytes, or a few changed). */
const realData = fc.tuple(fc.nat(PIECES - 1), fc.option(fc.integer({ min: -1, max: 1 }), { nil: undefined, freq: 3 }), fc.boolean()).map(([i, skew, withTotal]) => {
  const entries: Array<[string, Buffer]> = [['msg_type', benIntOf(1)], ['piece', benIntOf(i)]];
  if (withTotal) entries.push(['total_size', benIntOf(INFO.length + (skew ?? 0))]);
  const bytes = INFO.subarray(i * METADATA_PIECE, (i + 1) * METADATA_PIECE + (skew ?? 0));
  return message(20, Buffer.concat([Buffer.from([1]), orderedDict(entries, 0), bytes]));
});

/** The peer's extended handshake: offers ut_metadata (id 1 or other) and a size (mostly right). */
const extHandshake = fc
  .record({ id: fc.oneof(fc.constant(1), fc.constant(2), interestingInts), size: fc.oneof({ weight: 5, arbitrary: fc.constant(INFO.length) }, { weight: 1, arbitrary: interestingInts }), p: fc.option(fc.oneof(fc.nat(70_000), interestingInts), { nil: undefined }) })
  .map(({ id, size, p }) => {
    const entries: Array<[string, Buffer]> = [['m', benDict([['ut_metadata', benIntOf(id)]])], ['metadata_size', benIntOf(size)]];
    if (p !== undefined) entries.push(['p', benIntOf(p)]);
    return message(20, Buffer.concat([Buffer.from([0]), orderedDict(entries, 0)]));
  });

const SHAPE: WireShape = { infoHash: INFO_HASH, pieceCount: 1, pieceLength: 16384, block: () => Buffer.alloc(0) };
const otherMessage = fc.oneof(
  fc.tuple(fc.constantFrom(0, 1, 4, 5, 7, 9, 255), fc.uint8Array({ maxLength: 40 })).map(([id, p]) => message(id, Buffer.from(p))),
  fc.constantFrom(2 ** 32 - 1, 1 << 20, 17 * 1024 + 1).map((len) => Buffer.from([len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255, 20])),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
);
const messages = fc.oneof(
  { weight: 3, arbitrary: extHandshake },
  { weight: 6, arbitrary: realData },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(1, 1, 2), metadataPayload).map(([ext, p]) => message(20, Buffer.concat([Buffer.from([ext]), p]))) },
  { weight: 2, arbitrary: otherMessage },
);
/** The right handshake and size, then every piece (in some order, some twice), then anything. */
const honestThenAnything = fc
  .tuple(peerId, fc.shuffledSubarray([...Array(PIECES).keys()], { minLength: PIECES, maxLength: PIECES }), fc.array(messages, { maxLength: 4 }), fc.array(fc.nat(), { maxLength: 4 }))
  .map(([id, order, rest, cuts]) => {
    const start = Buffer.concat([handshake(INFO_HASH, Buffer.from([0, 0, 0, 0, 0, 0x10, 0, 0]), id), message(20, Buffer.concat([Buffer.from([0]), benDict([['m', benDict([['ut_metadata', benIntOf(1)]])], ['metadata_size', benIntOf(INFO.length)]])]))]);
    const data = order.map((i) => message(20, Buffer.concat([Buffer.from([1]), benDict([['msg_type', benIntOf(1)], ['piece', benIntOf(i)], ['total_size', benIntOf(INFO.length)]]), INFO.subarray(i * METADATA_PIECE, (i + 1) * METADATA_PIECE)])));
    return [start, ...cutStream(Buffer.concat([...data, ...rest]), cuts)];
  });

/** BEP 10 on in the reserved bytes mostly (without it the wire gives up at once). */
const stream = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(peerId, fc.array(messages, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 6 })).map(([id, ms, cuts]) => cutStream(Buffer.concat([handshake(INFO_HASH, Buffer.from([0, 0, 0, 0, 0, 0x10, 0, 0]), id), ...ms]), cuts)) },
  { weight: 1, arbitrary: peerStream(SHAPE, messages, 12) },
  { weight: 1, arbitrary: fc.tuple(reservedBits, peerId).map(([r, id]) => [handshake(INFO_HASH, r, id)]) },
  { weight: 2, arbitrary: honestThenAnything },
);

let server: net.Server | undefined;
let port = 0;
let accepted: ((socket: net.Socket) => void) | undefined;
let complete = 0;
let right = 0;

export const metadataTarget: FuzzTarget = {
  name: 'metadata',
  what: 'ut_metadata (BEP 9) fetch: MetadataWire on an accepted socket, fed a peer stream',
  input: stream,
  async open() {
    server = net.createServer((socket) => accepted?.(socket));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  },
  async close() {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  },
  depth: () => `${complete} dictionaries completed, ${right} of them right`,
  async run(chunks) {
    const serverSide = new Promise<net.Socket>((resolve) => (accepted = resolve));
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    socket.resume();
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const mw = new MetadataWire({ socket: await serverSide, direction: 'in', host: '127.0.0.1', infoHash: INFO_HASH.toString('hex'), peerId: OUR_ID, listenPort: 6881, handshakeTimeoutMs: 5000 });
    mw.on('error', () => {}); // an EventEmitter 'error' nobody handles would throw; MetadataWire emits 'close' instead
    const results: Array<{ bytes: number; announced: number | undefined; right: boolean }> = [];
    mw.on('size', () => mw.startFetch());
    // (A later extended handshake may announce another size: the hash check upstream refuses the result.)
    mw.on('metadata', (b: Buffer) => results.push({ bytes: b.length, announced: mw.size, right: b.equals(INFO) }));
    for (const chunk of chunks) {
      if (socket.destroyed) break;
      await new Promise<void>((resolve) => socket.write(chunk, () => resolve()));
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    }
    socket.end();
    await closed;
    await new Promise((resolve) => setImmediate(resolve));
    expect(mw.closed, 'the connection ended, the MetadataWire did not close');
    complete += results.length;
    right += results.filter((r) => r.right).length;
    for (const r of results) expect(r.bytes === r.announced, `metadata of ${r.bytes} bytes after announcing ${r.announced}`);
  },
};
