import fc from 'fast-check';
import { FUZZ_SHAPE, SwarmUnderFuzz } from '../swarm-harness.js';
import { extendedHandshake, message, peerStream, pexPayload } from '../wire-gen.js';
import type { FuzzTarget } from '../target.js';

const harness = new SwarmUnderFuzz();
/** What PeerExchange lets one connection teach the swarm (MAX_LEARNED_PER_PEER in src/discovery/pex.ts). */
const LEARNED_CAP = 200;

/** An extended handshake, then ut_pex messages (our ut_pex id is 2: ut_metadata is registered first). */
const pexMessages = fc.oneof(
  { weight: 2, arbitrary: extendedHandshake },
  { weight: 6, arbitrary: fc.tuple(fc.constantFrom(2, 2, 2, 1, 3), pexPayload).map(([ext, p]) => message(20, Buffer.concat([Buffer.from([ext]), p]))) },
);

export const pexTarget: FuzzTarget = {
  name: 'pex',
  what: 'ut_pex messages (BEP 11) into a Swarm with peer exchange; what it learns must be usable and capped',
  input: peerStream(FUZZ_SHAPE, pexMessages, 6),
  open: () => harness.open(),
  close: () => harness.close(),
  depth: () => `${harness.totals.readyPeers} handshaken, ${harness.totals.learned} addresses learned`,
  async run(chunks) {
    await harness.feed(chunks);
    harness.checkLearned(LEARNED_CAP);
  },
};
