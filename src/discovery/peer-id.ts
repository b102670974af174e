import { randomBytes } from 'node:crypto';

/** A peer id in btmount's style (Azureus-style client prefix, random rest), as the swarm makes its own. */
export function makePeerId(): Buffer {
  return Buffer.concat([Buffer.from('-BM0100-', 'latin1'), randomBytes(12)]);
}
