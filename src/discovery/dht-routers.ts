import type { PeerAddress } from './peer-address.js';

/** The well-known public DHT routers, used when no --dht-bootstrap is given. */
export const PUBLIC_DHT_ROUTERS: readonly PeerAddress[] = [
  { host: 'router.bittorrent.com', port: 6881 },
  { host: 'router.utorrent.com', port: 6881 },
  { host: 'dht.transmissionbt.com', port: 6881 },
  { host: 'dht.libtorrent.org', port: 25401 },
];
