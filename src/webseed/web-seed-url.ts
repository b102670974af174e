import type { ByteString } from '../metainfo/bencode-reader.js';
import type { Metainfo, PieceIndex } from '../metainfo/index.js';

/**
 * BEP 19's mapping from a torrent's files to URLs on a web seed, and from a
 * piece to the HTTP ranges that make it up. Pure: no network here.
 */

/** One HTTP range of one file that lands `offsetInPiece` bytes into a piece. */
export interface WebSeedRange {
  url: URL;
  offsetInFile: number;
  offsetInPiece: number;
  length: number;
}

/** A piece as the ranges to fetch; bytes of BEP 47 pad files are zeros and not fetched. */
export interface PieceRequestPlan {
  piece: PieceIndex;
  size: number;
  ranges: WebSeedRange[];
}

/** Refuses a web seed that is not an absolute http(s) URL, with a reason a user can act on. */
export function parseWebSeedUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`not a URL: ${text}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`a web seed must be an http:// or https:// URL, not ${text}`);
  }
  return url;
}

/**
 * The URL of file `fileIndex` (torrent order, pad files included) on the web seed `base`.
 * Multi-file: base + '/' (if missing) + name + '/' + path components. Single-file: the base
 * itself is the file, unless it ends with '/', then base + name. Every component is
 * percent-encoded from its raw bytes, so names that are not UTF-8 still address the file.
 */
export function webSeedFileUrl(base: URL, metainfo: Pick<Metainfo, 'multiFile' | 'rawName' | 'rawPaths'>, fileIndex: number): URL {
  const href = base.href;
  const endsWithSlash = base.pathname.endsWith('/');
  if (!metainfo.multiFile) return endsWithSlash ? new URL(encodeComponent(metainfo.rawName), base) : new URL(href);
  const path = metainfo.rawPaths[fileIndex];
  if (!path) throw new RangeError(`no file #${fileIndex} in the torrent`);
  const dir = endsWithSlash ? base : new URL(`${base.pathname}/${base.search}`, base);
  return new URL([metainfo.rawName, ...path].map(encodeComponent).join('/') + dir.search, dir);
}

/** The ranges of piece `piece` to fetch from the web seed `base`. */
export function planPiece(base: URL, metainfo: Metainfo, piece: PieceIndex): PieceRequestPlan {
  const ranges: WebSeedRange[] = [];
  for (const span of metainfo.byteMap.filesOfPiece(piece)) {
    if (span.file.pad) continue;
    ranges.push({
      url: webSeedFileUrl(base, metainfo, span.file.index),
      offsetInFile: span.offsetInFile,
      offsetInPiece: span.offsetInPiece,
      length: span.length,
    });
  }
  return { piece, size: metainfo.layout.pieceSize(piece), ranges };
}

/** RFC 3986 unreserved bytes stay; every other byte becomes %XX. */
function encodeComponent(part: ByteString): string {
  // '.', '..' and '' would walk the URL's path (even as %2E): such a torrent has no web-seed URL.
  if (/^\.{0,2}$/.test(part.text())) throw new RangeError(`path component "${part.text()}" cannot be a URL segment`);
  let out = '';
  for (const byte of part.bytes()) {
    const unreserved =
      (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) ||
      byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e;
    out += unreserved ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The web seeds of a mount: the torrent's url-list, a magnet's ws= and any given on the
 * command line, in that order, each once. A URL that cannot be a web seed (ftp://, junk)
 * is kept out with its reason, for one log line, rather than failing the mount.
 */
export function collectWebSeeds(...lists: ReadonlyArray<readonly string[]>): { urls: URL[]; refused: Array<{ url: string; reason: string }> } {
  const urls: URL[] = [];
  const refused: Array<{ url: string; reason: string }> = [];
  const seen = new Set<string>();
  for (const text of lists.flat()) {
    try {
      const url = parseWebSeedUrl(text);
      if (seen.has(url.href)) continue;
      seen.add(url.href);
      urls.push(url);
    } catch (err) {
      refused.push({ url: text, reason: (err as Error).message });
    }
  }
  return { urls, refused };
}
