import { createHash } from 'node:crypto';
import type { ByteString } from './bencode-reader.js';

/**
 * Torrent file names are written by strangers. The tree shown in the mount is
 * virtual (nothing joins these names onto a host path), but they still have to
 * be names Linux programs can open. The rules, per path component:
 *
 * - bytes that are not valid UTF-8 are shown as `%XX` (the rest stays readable);
 * - NUL and `/` (impossible in a Linux name) become `%00` and `%2F`;
 *   `\` is a legal Linux name character and stays as it is;
 * - `.` and `..` become `%2E` and `%2E%2E`, so they can never mean "here" or "up";
 * - a name longer than 255 bytes is cut, keeping a short extension, and tagged
 *   with `~` and 8 hex digits of the original name's SHA-1 so cut names stay distinct;
 * - empty components are dropped (`a//b` is `a/b`).
 *
 * Duplicates, file/directory clashes and depth are rules of the whole tree:
 * see file-tree.ts.
 */

export const NAME_MAX_BYTES = 255;
const EXTENSION_KEPT_MAX = 16;

export function sanitizeComponent(component: ByteString): string {
  const fast = plainAsciiName(component);
  if (fast !== undefined) return fast;
  const raw = component.bytes();
  let name = decodeUtf8Lenient(raw).replace(/[\0/]/g, (ch) => (ch === '\0' ? '%00' : '%2F'));
  if (name === '.') name = '%2E';
  else if (name === '..') name = '%2E%2E';
  if (Buffer.byteLength(name) > NAME_MAX_BYTES) name = shortenName(name, raw);
  return name;
}

/**
 * The common case, answered without building a Buffer: printable ASCII with no
 * `/`, not `.` or `..`, at most 255 bytes is its own sanitized name.
 */
function plainAsciiName({ source, start, end }: ByteString): string | undefined {
  const length = end - start;
  if (length > NAME_MAX_BYTES || length === 0) return undefined;
  for (let i = start; i < end; i++) {
    const b = source[i]!;
    if (b < 0x20 || b >= 0x7f || b === 0x2f) return undefined;
  }
  if (source[start] === 0x2e && (length === 1 || (length === 2 && source[start + 1] === 0x2e))) return undefined;
  return source.toString('latin1', start, end);
}

/** Valid UTF-8 sequences are kept; every byte of an invalid one is written as %XX. */
export function decodeUtf8Lenient(bytes: Uint8Array): string {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buf.toString('utf8');
  if (!text.includes('\uFFFD') || isValidUtf8(buf)) return text;
  let out = '';
  let i = 0;
  while (i < buf.length) {
    const len = utf8SequenceLength(buf, i);
    if (len > 0) {
      out += buf.toString('utf8', i, i + len);
      i += len;
    } else {
      out += '%' + buf[i]!.toString(16).toUpperCase().padStart(2, '0');
      i += 1;
    }
  }
  return out;
}

function isValidUtf8(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; ) {
    const len = utf8SequenceLength(buf, i);
    if (len === 0) return false;
    i += len;
  }
  return true;
}

/** Length of the well-formed UTF-8 sequence starting at `i`, or 0 if there is none (RFC 3629). */
function utf8SequenceLength(buf: Buffer, i: number): number {
  const b0 = buf[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => {
    const b = buf[i + k];
    return b !== undefined && b >= lo && b <= hi;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // no UTF-16 surrogates
  if (b0 >= 0xe1 && b0 <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

function shortenName(name: string, raw: Uint8Array): string {
  const tag = '~' + createHash('sha1').update(raw).digest('hex').slice(0, 8);
  const dot = name.lastIndexOf('.');
  const ext = dot > 0 && name.length - dot <= EXTENSION_KEPT_MAX ? name.slice(dot) : '';
  const budget = NAME_MAX_BYTES - Buffer.byteLength(tag + ext);
  return truncateUtf8(dot > 0 && ext ? name.slice(0, dot) : name, budget) + tag + ext;
}

/** The longest prefix of `text` that fits in `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const size = Buffer.byteLength(ch);
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += ch.length;
  }
  return text.slice(0, end);
}
