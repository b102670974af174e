import type { Logger } from '../log.js';
import { InvalidTorrentError, Metainfo } from '../metainfo/index.js';
import type { Discovery } from './discovery.js';
import { MetadataFetcher, type MetadataProgress } from './metadata-fetcher.js';
import type { PeerAddress } from './peer-address.js';
import type { PortReservation } from './port-reservation.js';
import { saveTorrent, torrentFileBytes } from './torrent-cache.js';

export interface FetchMetainfoOptions {
  infoHash: string;
  cacheRoot: string;
  /** Started here with the reserved port; its peers are asked for the metadata. */
  discovery: Discovery;
  /** Our port, held until the swarm takes it; peers connecting meanwhile are asked too. */
  reservation: PortReservation;
  /** --peer and x.pe peers: asked first, and retried for as long as we wait. */
  staticPeers: readonly PeerAddress[];
  /** Trackers written into the saved .torrent (the magnet's and --tracker ones). */
  trackers: readonly string[];
  timeoutMs: number;
  /** Stops the wait early (the mount command went away). */
  signal?: AbortSignal;
  log: Logger;
  onProgress?: (progress: MetadataProgress) => void;
}

export interface FetchedMetainfo {
  metainfo: Metainfo;
  /** Where the .torrent was saved. */
  torrentFile: string;
  /** Hosts that sent metadata not matching the infohash. */
  liars: ReadonlySet<string>;
}

/**
 * Gets the info dictionary of a magnet or bare infohash from peers found by
 * every source (BEP 9), checks it, and keeps the .torrent in the cache so the
 * next mount of the hash needs no peer for it. Rejects with a
 * MetadataTimeoutError after `timeoutMs`.
 */
export async function fetchMetainfo(opts: FetchMetainfoOptions): Promise<FetchedMetainfo> {
  const { discovery, reservation, log } = opts;
  const fetcher = new MetadataFetcher({ infoHash: opts.infoHash, peerId: discovery.peerId, listenPort: reservation.port, log });
  if (opts.onProgress) fetcher.on('progress', opts.onProgress);
  const onPeer = (address: PeerAddress): void => fetcher.addPeer(address.host, address.port);
  discovery.on('peer', onPeer);
  reservation.accept((socket) => fetcher.accept(socket));
  let info: Buffer;
  try {
    for (const peer of opts.staticPeers) fetcher.addPeer(peer.host, peer.port, true);
    await discovery.start(reservation.port);
    info = await fetcher.fetch(opts.timeoutMs, opts.signal);
  } finally {
    discovery.off('peer', onPeer);
    reservation.accept((socket) => socket.destroy());
    fetcher.close();
  }
  const torrent = torrentFileBytes(info, opts.trackers);
  let metainfo: Metainfo;
  try {
    metainfo = Metainfo.fromTorrentFile(torrent);
  } catch (err) {
    // The bytes are the ones the hash names: the torrent itself is unusable, not the peer.
    throw new InvalidTorrentError(`the torrent's metadata (fetched from peers) is refused: ${(err as Error).message}`);
  }
  const torrentFile = await saveTorrent(opts.cacheRoot, opts.infoHash, torrent);
  log.info({ torrentFile, name: metainfo.name }, 'saved the fetched torrent');
  return { metainfo, torrentFile, liars: fetcher.bannedHosts };
}
