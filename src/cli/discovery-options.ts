import type { Command } from 'commander';
import { Discovery, PUBLIC_DHT_ROUTERS } from '../discovery/index.js';
import type { Logger } from '../log.js';
import { isWildcardHost } from '../swarm/swarm.js';
import { UserError } from '../user-error.js';
import { collectHostPort, type HostPort } from './options.js';

/** The peer-finding options `mount` and `seed` share. */
export interface DiscoveryCliOptions {
  tracker?: string[];
  /** false with --no-trackers. */
  trackers: boolean;
  /** false with --no-dht. */
  dht: boolean;
  dhtBootstrap?: HostPort[];
  /** false with --no-pex. */
  pex: boolean;
  /** --host: the one local address we listen, dial and announce on. */
  host?: string;
}

export function addDiscoveryOptions(command: Command): Command {
  return command
    .option('--tracker <url>', 'announce to this tracker too: http://, https:// or udp:// (repeatable)', collectTracker)
    .option('--no-trackers', 'ignore the trackers named in the torrent or magnet (--tracker ones still count)')
    .option('--dht-bootstrap <host:port>', 'a DHT node to join through (repeatable; default: the public routers)', collectHostPort('--dht-bootstrap'))
    .option('--no-dht', 'do not use the DHT')
    .option('--no-pex', 'do not exchange peer addresses with peers (PEX)');
}

/** Trackers, DHT and PEX as the options say; a private torrent (BEP 27) gets trackers only. */
export function discoveryFromOptions(
  infoHash: string,
  cacheRoot: string,
  torrentTrackers: readonly string[],
  isPrivate: boolean,
  staticPeers: number,
  opts: DiscoveryCliOptions,
  log: Logger,
): Discovery {
  return new Discovery({
    infoHash,
    cacheRoot,
    trackers: [...(opts.trackers ? torrentTrackers : []), ...(opts.tracker ?? [])],
    dht: opts.dht && !isPrivate ? { bootstrap: opts.dhtBootstrap ?? PUBLIC_DHT_ROUTERS } : false,
    pex: opts.pex && !isPrivate,
    staticPeers,
    ...(opts.host && !isWildcardHost(opts.host) ? { localAddress: opts.host } : {}),
    log,
  });
}

function collectTracker(text: string, previous: string[] = []): string[] {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UserError('invalid --tracker', `not a URL: ${text}`);
  }
  if (!['http:', 'https:', 'udp:'].includes(url.protocol)) throw new UserError('invalid --tracker', `only http://, https:// and udp:// trackers are supported: ${text}`);
  if (url.protocol === 'udp:' && !url.port) throw new UserError('invalid --tracker', `a udp:// tracker needs a port: ${text}`);
  return [...previous, text];
}
