import fc from 'fast-check';
import { FUZZ_SHAPE, SwarmUnderFuzz } from '../swarm-harness.js';
import { handshake, message, peerId, peerMessage, peerStream, reservedBits } from '../wire-gen.js';
import type { FuzzTarget } from '../target.js';

const harness = new SwarmUnderFuzz();

/** Any message mix, now and then a tail of raw junk. */
const anyMessages = fc.oneof({ weight: 8, arbitrary: peerMessage(FUZZ_SHAPE) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) });

/**
 * An honest start, then the right bytes of one piece the swarm wants, then anything: gets
 * past the handshake, bitfield and unchoke into requests, assembly, verification and storage.
 */
const honestThenAnything = fc
  .tuple(reservedBits, peerId, fc.integer({ min: 8, max: FUZZ_SHAPE.pieceCount - 1 }), fc.boolean(), fc.array(anyMessages, { maxLength: 10 }))
  .map(([reserved, id, index, reversed, rest]) => {
    const start = Buffer.concat([handshake(FUZZ_SHAPE.infoHash, reserved, id), message(14, Buffer.alloc(0)), message(1, Buffer.alloc(0))]);
    const blocks = [0, 16384].map((offset) => {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(index, 0);
      head.writeUInt32BE(offset, 4);
      return message(7, Buffer.concat([head, FUZZ_SHAPE.block(index, offset, 16384)]));
    });
    if (reversed) blocks.reverse();
    return [start, Buffer.concat(blocks), ...rest];
  });

export const wireTarget: FuzzTarget = {
  name: 'wire',
  what: 'peer byte streams into a real Swarm over TCP (framer, Wire, scheduler, uploads, ut_metadata serving)',
  input: fc.oneof({ weight: 3, arbitrary: peerStream(FUZZ_SHAPE, anyMessages) }, { weight: 1, arbitrary: honestThenAnything }),
  open: () => harness.open(),
  close: () => harness.close(),
  run: (chunks) => harness.feed(chunks),
  depth: () => `${harness.totals.readyPeers} handshaken, ${harness.totals.verified} pieces verified from fuzz input`,
};
