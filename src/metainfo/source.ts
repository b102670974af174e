import parseTorrent from 'parse-torrent';
import { readFile } from 'node:fs/promises';
import { InvalidTorrentError } from './errors.js';
import { peekInfoHash } from './info-hash-peek.js';
import { Metainfo } from './metainfo.js';
import { asInfoHash, type InfoHash } from './piece-layout.js';

/**
 * What the user named: a complete torrent, or only a hash (magnet / bare
 * infohash) whose info dictionary must still come from peers (BEP 9).
 */
export type TorrentSource =
  | { kind: 'torrent'; metainfo: Metainfo }
  | { kind: 'hash'; infoHash: InfoHash; name?: string; announce: string[]; urlList: string[]; peers: string[] };

const BARE_HASH = /^[0-9a-fA-F]{40}$|^[a-zA-Z2-7]{32}$/;

/** Reads a .torrent path, a magnet URI or a bare infohash (40 hex or 32 base32). */
export async function loadSource(spec: string): Promise<TorrentSource> {
  if (spec.startsWith('magnet:') || BARE_HASH.test(spec)) return parseHashSource(spec);
  return { kind: 'torrent', metainfo: Metainfo.fromTorrentFile(await readTorrentFile(spec)) };
}

async function readTorrentFile(spec: string): Promise<Buffer> {
  try {
    return await readFile(spec);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new InvalidTorrentError(`${why} (expected a .torrent file, magnet URI or infohash)`);
  }
}

/**
 * Only the infohash a source names, and whether it can be read: for a .torrent file a scan to
 * its info dictionary, not a parse (a caller that hands the torrent to another process that
 * parses it). A file the scan cannot make sense of gets the full parse, for its error.
 */
export async function loadSourceInfoHash(spec: string): Promise<InfoHash> {
  if (spec.startsWith('magnet:') || BARE_HASH.test(spec)) return (await parseHashSource(spec)).infoHash;
  const raw = await readTorrentFile(spec);
  return peekInfoHash(raw) ?? Metainfo.fromTorrentFile(raw).infoHash;
}

/** Like loadSource, but the caller needs the file tree now (no metadata fetch). */
export async function loadMetainfo(spec: string): Promise<Metainfo> {
  const source = await loadSource(spec);
  if (source.kind === 'torrent') return source.metainfo;
  throw new InvalidTorrentError(`${spec} names only a hash; this command needs the .torrent file`);
}

async function parseHashSource(spec: string): Promise<Extract<TorrentSource, { kind: 'hash' }>> {
  let parsed;
  try {
    parsed = await parseTorrent(spec);
  } catch {
    throw new InvalidTorrentError(`not a valid magnet URI or infohash: ${spec}`);
  }
  if (!parsed.infoHash) throw new InvalidTorrentError(`magnet URI has no BitTorrent v1 infohash (xt=urn:btih:…): ${spec}`);
  if (spec.startsWith('magnet:')) checkMagnetHash(parsed.xt, spec);
  const name = Array.isArray(parsed.name) ? parsed.name[0] : parsed.name;
  return {
    kind: 'hash',
    infoHash: asInfoHash(parsed.infoHash),
    ...(name ? { name } : {}),
    announce: parsed.announce,
    urlList: parsed.urlList,
    peers: parsed.peerAddresses ?? [],
  };
}

/**
 * magnet-uri takes the first 40 (or 32) characters after `urn:btih:` without
 * looking at them or at what follows: a hash with a typo or extra characters
 * became some other torrent's infohash (or a plain Error). The whole hash must
 * be 40 hex digits or 32 base32 characters, and there must be one.
 */
function checkMagnetHash(xt: unknown, spec: string): void {
  const values = (Array.isArray(xt) ? xt : [xt]).filter((x): x is string => typeof x === 'string');
  const hashes = new Set<string>();
  for (const value of values) {
    if (!value.startsWith('urn:btih:')) continue;
    const hash = value.slice('urn:btih:'.length);
    if (!BARE_HASH.test(hash)) {
      throw new InvalidTorrentError(`magnet URI's infohash is neither 40 hex digits nor 32 base32 characters: ${hash}`);
    }
    hashes.add(hash.toLowerCase());
  }
  // magnet-uri keeps the last one; which torrent the user meant is not ours to guess.
  if (hashes.size > 1) throw new InvalidTorrentError(`magnet URI names ${hashes.size} different infohashes (xt=urn:btih:…); give one: ${spec}`);
}
