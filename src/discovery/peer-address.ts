import net from 'node:net';

/** Where a peer listens, as discovery sources report it. */
export interface PeerAddress {
  host: string;
  port: number;
}

/**
 * Parses `1.2.3.4:6881` or `[::1]:6881` as trackers, the DHT and PEX hand
 * them out. Returns undefined for anything that is not a usable address
 * (port 0, unspecified or multicast hosts, junk).
 */
export function parsePeerAddress(text: string): PeerAddress | undefined {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  return usableAddress(decodeStringifiedBytes(m[1]!), Number(m[2]));
}

/**
 * bittorrent-tracker hands an HTTP tracker's dictionary-model peer (`ip` a
 * bencoded string) on as `${Uint8Array}:port`, that is the ip's bytes joined
 * by commas ("49,50,55,46,48,46,48,46,49:6881"): turn those back into text.
 */
function decodeStringifiedBytes(host: string): string {
  if (!/^\d{1,3}(,\d{1,3})+$/.test(host)) return host;
  const bytes = host.split(',').map(Number);
  if (bytes.some((b) => b > 255)) return host;
  return Buffer.from(bytes).toString('latin1');
}

/** The address if a peer could listen there, else undefined. */
export function usableAddress(host: string, port: number): PeerAddress | undefined {
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  if (host.startsWith('::ffff:') && net.isIPv4(host.slice(7))) host = host.slice(7);
  const family = net.isIP(host);
  if (family === 0) return undefined;
  if (family === 4) {
    const first = Number(host.split('.')[0]);
    if (host === '0.0.0.0' || first >= 224) return undefined; // unspecified, multicast, reserved
  } else if (host === '::' || host.toLowerCase().startsWith('ff')) {
    return undefined;
  }
  return { host, port };
}

export function formatPeerAddress({ host, port }: PeerAddress): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}
