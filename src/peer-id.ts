import { randomBytes } from 'node:crypto';

/** btmount's Azureus-style client prefix: `-BM`, the version (0.1.0), `-`. */
const CLIENT_PREFIX = '-BM0100-';
/** What every btmount version's id starts with (`-BM`), as the wire gives ids: hex. */
const BTMOUNT_PREFIX_HEX = Buffer.from('-BM', 'latin1').toString('hex');

/** A new peer id: the client prefix, then 12 random bytes. */
export function makePeerId(): Buffer {
  return Buffer.concat([Buffer.from(CLIENT_PREFIX, 'latin1'), randomBytes(12)]);
}

/** Whether a peer id (hex, as the wire gives it) is another btmount's. */
export function isBtmountPeerId(peerIdHex: string | undefined): boolean {
  return peerIdHex !== undefined && peerIdHex.toLowerCase().startsWith(BTMOUNT_PREFIX_HEX);
}
