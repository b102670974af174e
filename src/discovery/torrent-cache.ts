import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import bencode from 'bencode';
import type { Logger } from '../log.js';
import { Metainfo } from '../metainfo/index.js';

/** Where a torrent fetched by its hash is kept: `<cache>/torrents/<infohash>.torrent`. */
export function cachedTorrentPath(cacheRoot: string, infoHash: string): string {
  if (!/^[0-9a-f]{40}$/.test(infoHash)) throw new Error(`not a 40-hex-digit infohash: ${infoHash}`);
  return path.join(path.resolve(cacheRoot), 'torrents', `${infoHash}.torrent`);
}

/**
 * The .torrent of an earlier fetch, if there is one and it still is the
 * torrent of this infohash; a damaged file is ignored (and later replaced).
 */
export async function loadCachedTorrent(cacheRoot: string, infoHash: string, log: Logger): Promise<Metainfo | undefined> {
  const file = cachedTorrentPath(cacheRoot, infoHash);
  let raw: Buffer;
  try {
    raw = await readFile(file);
  } catch {
    return undefined;
  }
  try {
    const metainfo = Metainfo.fromTorrentFile(raw);
    if (metainfo.infoHash === infoHash) return metainfo;
    log.warn({ file }, 'the saved torrent is of another infohash; fetching the metadata again');
  } catch (err) {
    log.warn({ file, reason: (err as Error).message }, 'the saved torrent is damaged; fetching the metadata again');
  }
  return undefined;
}

/**
 * The bytes of a .torrent holding `info` exactly as fetched (so its infohash is
 * the one asked for) and the trackers we know of.
 */
export function torrentFileBytes(info: Buffer, trackers: readonly string[]): Buffer {
  const head: Record<string, unknown> = {};
  if (trackers.length > 0) {
    head['announce'] = trackers[0];
    head['announce-list'] = trackers.map((t) => [t]);
  }
  head['created by'] = 'btmount (metadata from peers)';
  const encoded = Buffer.from(bencode.encode(head));
  // Keys sort as announce < announce-list < created by < info: the dictionary stays canonical.
  return Buffer.concat([encoded.subarray(0, encoded.length - 1), Buffer.from('4:info', 'latin1'), info, Buffer.from('e', 'latin1')]);
}

/** Keeps the torrent so the next mount of this hash needs no peer for its metadata. */
export async function saveTorrent(cacheRoot: string, infoHash: string, torrent: Buffer): Promise<string> {
  const file = cachedTorrentPath(cacheRoot, infoHash);
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, torrent);
  await rename(tmp, file);
  return file;
}
