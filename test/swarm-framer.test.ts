import test from 'ava';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import Wire from 'bittorrent-protocol';
import { FramingError, MessageFramer } from '../src/swarm/message-framer.js';
import { chooseUnchoked } from '../src/swarm/choker.js';
import { TokenBucket } from '../src/swarm/rate-limiter.js';

const PIECES = 100;
const handshake = Buffer.concat([Buffer.from('\x13BitTorrent protocol', 'latin1'), Buffer.alloc(48, 1)]);

function msg(id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(5 + payload.length);
  b.writeUInt32BE(1 + payload.length, 0);
  b[4] = id;
  payload.copy(b, 5);
  return b;
}
const u32 = (...ns: number[]): Buffer => Buffer.concat(ns.map((n) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255])));

const validMessage = fc.oneof(
  fc.constant(Buffer.alloc(4)), // keep-alive
  fc.integer({ min: 0, max: 3 }).map((id) => msg(id)),
  fc.nat(PIECES - 1).map((i) => msg(4, u32(i))),
  fc.constant(msg(5, Buffer.alloc(Math.ceil(PIECES / 8)))),
  fc.tuple(fc.nat(PIECES - 1), fc.nat(63)).map(([i, b]) => msg(6, u32(i, b * 16384, 16384))),
  fc.tuple(fc.nat(PIECES - 1), fc.integer({ min: 1, max: 16384 })).map(([i, n]) => msg(7, Buffer.concat([u32(i, 0), randomBytes(n)]))),
  fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((p) => msg(20, Buffer.from(p))),
);

test('complete messages come out intact however the stream is cut', (t) => {
  fc.assert(
    fc.property(fc.array(validMessage, { maxLength: 30 }), fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 50 }), (messages, cuts) => {
      const stream = Buffer.concat([handshake, ...messages]);
      const framer = new MessageFramer({ pieceCount: PIECES });
      const out: Buffer[] = [];
      let pos = 0;
      let i = 0;
      while (pos < stream.length) {
        const n = cuts[i++ % cuts.length]!;
        // Copy what is emitted: it is only valid during the call.
        framer.push(stream.subarray(pos, pos + n), (b) => out.push(Buffer.from(b)));
        pos += n;
      }
      // Every output buffer ends on a message boundary, and together they are the input.
      return Buffer.concat(out).equals(stream) && framer.buffered === 0;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('a message split across chunks is held, not forwarded in part', (t) => {
  const framer = new MessageFramer({ pieceCount: PIECES });
  const push = (b: Buffer): Buffer[] => {
    const out: Buffer[] = [];
    framer.push(b, (m) => out.push(Buffer.from(m)));
    return out;
  };
  t.deepEqual(push(handshake), [handshake]);
  const piece = msg(7, Buffer.concat([u32(1, 0), randomBytes(16384)]));
  t.deepEqual(push(piece.subarray(0, 3)), []);
  t.deepEqual(push(piece.subarray(3, 1000)), []);
  t.is(framer.buffered, 1000);
  const out = push(piece.subarray(1000));
  t.is(out.length, 1);
  t.true(out[0]!.equals(piece));
  // The socket may reuse its read buffer: what the framer keeps is its own copy.
  const reused = Buffer.from(msg(1));
  const keepAlive = Buffer.alloc(4);
  const chunk = Buffer.concat([keepAlive, reused.subarray(0, 2)]);
  t.deepEqual(push(chunk), [keepAlive]);
  chunk.fill(0xee);
  t.deepEqual(push(reused.subarray(2)), [msg(1)]);
});

test('a Wire fed from one reused read buffer keeps parsing after a bitfield (issue 13: seed --peer stalled)', (t) => {
  // A real bittorrent-protocol Wire behind the framer, every socket chunk landing
  // in the same buffer, as with a socket made with `onread`.
  const wire = new Wire('tcpIncoming');
  const seen: string[] = [];
  wire.on('handshake', () => {
    wire.handshake(Buffer.alloc(20, 1).toString('hex'), randomBytes(20), { fast: true });
    wire.unchoke(); // a choking Wire drops requests
  });
  wire.on('have', (i: number) => seen.push(`have ${i}`));
  wire.on('request', (i: number, offset: number, length: number) => seen.push(`request ${i} ${offset} ${length}`));
  const framer = new MessageFramer({ pieceCount: PIECES });
  const feed = (m: Buffer): void => (wire as unknown as { _write(b: Buffer, cb: () => void): void })._write(m, () => {});
  const readBuffer = Buffer.alloc(4096);
  const receive = (bytes: Buffer): void => {
    bytes.copy(readBuffer);
    framer.push(readBuffer.subarray(0, bytes.length), feed);
  };
  const handshakeFor = Buffer.concat([Buffer.from('\x13BitTorrent protocol', 'latin1'), Buffer.from([0, 0, 0, 0, 0, 0x10, 0, 0x04]), Buffer.alloc(20, 1), randomBytes(20)]);
  receive(Buffer.concat([handshakeFor, msg(5, Buffer.alloc(Math.ceil(PIECES / 8)))]));
  // The bitfield's payload lay at bytes 73..85 of the read buffer. Now eight
  // haves fill bytes 0..71 and a request starts at 72: had the Wire kept a view,
  // "have 0" would set the top bit of byte 73 and make the request's length 0x0080000d.
  const haves = [0, 8, 16, 24, 32, 40, 48, 56];
  receive(Buffer.concat([...haves.map((i) => msg(4, u32(i))), msg(6, u32(3, 16384, 16384))]));
  receive(msg(6, u32(5, 0, 16384)));
  t.deepEqual(seen, [...haves.map((i) => `have ${i}`), 'request 3 16384 16384', 'request 5 0 16384']);
});

const rejects: Array<[string, Buffer, RegExp]> = [
  ['not BitTorrent', Buffer.from('GET / HTTP/1.1\r\n'), /not the BitTorrent protocol/],
  ['a 2^31 length prefix', u32(0x80000000), /message of 2147483648 bytes/],
  ['a 2^31-1 length prefix', u32(0x7fffffff), /message of 2147483647 bytes/],
  ['a short request', msg(6, Buffer.alloc(1)), /message 6 of 2 bytes \(expected 13\)/],
  ['a long choke', msg(0, Buffer.alloc(3)), /message 0 of 4 bytes/],
  ['a bitfield of the wrong size', msg(5, Buffer.alloc(3)), /bitfield of 3 bytes \(expected 13\)/],
  ['a have beyond the last piece', msg(4, u32(PIECES)), /message 4 for piece 100 of 100/],
  ['a request beyond the last piece', msg(6, u32(4_000_000_000, 0, 16384)), /for piece 4000000000/],
  ['a block larger than 16 KiB', Buffer.concat([u32(9 + 16385), Buffer.from([7])]), /piece message of 16394 bytes/],
  ['an empty piece message', msg(7, u32(1, 0)), /piece message of 9 bytes/],
  ['an unknown 1 MiB message', Buffer.concat([u32(1 << 20), Buffer.from([99])]), /message of 1048576 bytes|unknown message 99/],
];

for (const [name, bytes, re] of rejects) {
  test(`rejects ${name}`, (t) => {
    const framer = new MessageFramer({ pieceCount: PIECES });
    const afterHandshake = name !== 'not BitTorrent';
    if (afterHandshake) framer.push(handshake, () => {});
    const err = t.throws(() => framer.push(bytes, () => {}), { instanceOf: FramingError });
    t.regex(err!.message, re);
  });
}

test('the largest message accepted is bounded by the torrent, not by the peer', (t) => {
  t.is(new MessageFramer({ pieceCount: 100 }).maxMessage, 128 * 1024);
  // A torrent with 2 million pieces has a 250 KB bitfield: that is the bound then.
  t.is(new MessageFramer({ pieceCount: 2_000_000 }).maxMessage, 1 + 250_000);
});

test('choker: regular slots by rate, plus one optimistic', (t) => {
  const peers = ['a', 'b', 'c', 'd', 'e'].map((key, i) => ({ key, interested: key !== 'e', downloadRate: i * 100, uploadRate: (5 - i) * 100 }));
  const leeching = chooseUnchoked(peers, { slots: 2, seeding: false, optimistic: undefined, rotateOptimistic: false, random: () => 0 });
  t.deepEqual([...leeching.unchoke].sort(), ['b', 'c', 'd'], 'fastest uploaders to us (d, c) + an optimistic one; e is not interested');
  t.is(leeching.optimistic, 'b');
  const seeding = chooseUnchoked(peers, { slots: 2, seeding: true, optimistic: 'a', rotateOptimistic: false, random: () => 0 });
  t.deepEqual([...seeding.unchoke].sort(), ['a', 'b', 'c'].sort(), 'when seeding, the fastest downloaders (a, b) + optimistic');
  t.not(seeding.optimistic, undefined);
  const rotated = chooseUnchoked(peers, { slots: 2, seeding: false, optimistic: 'a', rotateOptimistic: true, random: () => 0 });
  t.is(rotated.optimistic, 'b', 'rotation picks someone else than a');
  const kept = chooseUnchoked(peers, { slots: 2, seeding: false, optimistic: 'a', rotateOptimistic: false, random: () => 0 });
  t.is(kept.optimistic, 'a', 'kept between rotations');
});

test('token bucket: no limit at 0; otherwise waits in proportion to the excess', (t) => {
  t.is(new TokenBucket(0).take(1e9, 0), 0);
  const b = new TokenBucket(1000, 1000, () => 0);
  t.is(b.take(1000, 0), 0);
  t.is(b.take(500, 0), 500);
  t.is(b.waitFor(100, 500), 100);
  t.is(b.waitFor(100, 700), 0);
});
