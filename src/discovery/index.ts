// Only light modules here: bittorrent-tracker and bittorrent-dht are loaded by Discovery when a mount uses them.
export { Discovery, type DiscoveryOptions, type DiscoveryReport, type DiscoverySource } from './discovery.js';
export { PUBLIC_DHT_ROUTERS } from './dht-routers.js';
export { fetchMetainfo, type FetchMetainfoOptions, type FetchedMetainfo } from './fetch-metainfo.js';
export { MetadataFetcher, MetadataTimeoutError, type MetadataProgress } from './metadata-fetcher.js';
export { makePeerId } from '../peer-id.js';
export { PortReservation } from './port-reservation.js';
export { loadCachedTorrent, cachedTorrentPath, saveTorrent, torrentFileBytes } from './torrent-cache.js';
export { parsePeerAddress, usableAddress, formatPeerAddress, type PeerAddress } from './peer-address.js';
export { PeerExchange, PEX_EXTENSION } from './pex.js';
export type { TrackerStatus } from './tracker-announcer.js';
