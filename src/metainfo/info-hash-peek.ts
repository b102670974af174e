import { createHash } from 'node:crypto';
import { asInfoHash, type InfoHash } from './piece-layout.js';

const D = 0x64; // 'd'
const L = 0x6c; // 'l'
const I = 0x69; // 'i'
const E = 0x65; // 'e'
const COLON = 0x3a;
const INFO_KEY = Buffer.from('4:info', 'latin1');

/**
 * The infohash of a .torrent's bytes without decoding it: skips over the bencode to the
 * top-level "info" value and hashes its bytes as written. For a command that only needs
 * the hash now and leaves the full parse to another process (mount's parent hands the
 * torrent to the daemon, which parses it anyway): at a million files the full parse is
 * seconds, this is a scan that allocates nothing per value. Undefined when the bytes are
 * not a bencoded dictionary with an "info" key; the full parser then says why.
 */
export function peekInfoHash(raw: Buffer): InfoHash | undefined {
  if (raw[0] !== D) return undefined;
  let pos = 1;
  while (pos < raw.length && raw[pos] !== E) {
    const keyEnd = stringEnd(raw, pos);
    if (keyEnd < 0) return undefined;
    const valueEnd = skipValue(raw, keyEnd);
    if (valueEnd < 0) return undefined;
    if (keyEnd - pos === INFO_KEY.length && raw.compare(INFO_KEY, 0, INFO_KEY.length, pos, keyEnd) === 0) {
      return asInfoHash(createHash('sha1').update(raw.subarray(keyEnd, valueEnd)).digest('hex'));
    }
    pos = valueEnd;
  }
  return undefined;
}

/** The end of the byte string at `pos`, or -1 if none is there. */
function stringEnd(raw: Buffer, pos: number): number {
  let at = pos;
  let length = 0;
  while (at < raw.length && raw[at]! >= 0x30 && raw[at]! <= 0x39 && at - pos < 15) length = length * 10 + (raw[at++]! - 0x30);
  if (at === pos || raw[at] !== COLON || at + 1 + length > raw.length) return -1;
  return at + 1 + length;
}

/** The end of the value at `pos` (iterative: nesting depth is only a counter), or -1 if it is not well formed. */
function skipValue(raw: Buffer, pos: number): number {
  let depth = 0;
  do {
    const c = raw[pos];
    if (c === D || c === L) {
      depth++;
      pos++;
    } else if (c === E) {
      if (depth === 0) return -1;
      depth--;
      pos++;
    } else if (c === I) {
      const end = raw.indexOf(E, pos + 1);
      if (end < 0) return -1;
      pos = end + 1;
    } else {
      pos = stringEnd(raw, pos);
      if (pos < 0) return -1;
    }
  } while (depth > 0);
  return pos;
}
