import fc from 'fast-check';
import { FUZZ_SHAPE, SwarmUnderFuzz } from '../swarm-harness.js';
import { peerMessage, peerStream } from '../wire-gen.js';
import type { FuzzTarget } from '../target.js';

const harness = new SwarmUnderFuzz();

/** Any message mix, now and then a tail of raw junk. */
const anyMessages = fc.oneof({ weight: 8, arbitrary: peerMessage(FUZZ_SHAPE) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) });

export const wireTarget: FuzzTarget = {
  name: 'wire',
  what: 'peer byte streams into a real Swarm over TCP (framer, Wire, scheduler, uploads, ut_metadata serving)',
  input: peerStream(FUZZ_SHAPE, anyMessages),
  open: () => harness.open(),
  close: () => harness.close(),
  run: (chunks) => harness.feed(chunks),
};
