import {
  MetadataTimeoutError,
  PortReservation,
  fetchMetainfo,
  loadCachedTorrent,
  parsePeerAddress,
  type Discovery,
  type MetadataProgress,
  type PeerAddress,
} from '../discovery/index.js';
import type { Logger } from '../log.js';
import { InvalidTorrentError, type Metainfo, type TorrentSource } from '../metainfo/index.js';
import { UserError } from '../user-error.js';

/** Builds the trackers/DHT/PEX of one torrent as the command line asked (a private torrent gets trackers only). */
export type DiscoveryFactory = (torrent: { infoHash: string; announce: readonly string[]; private: boolean }, staticPeers: number, log: Logger) => Discovery;

export interface ResolveOptions {
  cacheRoot: string;
  /** --peer addresses. */
  peers: readonly PeerAddress[];
  /** --port, if given. */
  port: number | undefined;
  /** --host, if given: the metadata wait listens there too. */
  host?: string;
  /** --tracker URLs, announced to as well as the torrent's. */
  extraTrackers: readonly string[];
  metadataTimeoutMs: number;
  /** Web seeds known before the metadata (ws=, --web-seed): they cannot give it, and the timeout says so. */
  webSeedCount?: number;
  discoveryFor: DiscoveryFactory;
  log: Logger;
  /** How the wait for a magnet's metadata goes, for the person waiting. */
  onProgress(progress: MetadataProgress): void;
  signal: AbortSignal;
}

export interface ResolvedTorrent {
  metainfo: Metainfo;
  /** Started already when the metadata had to come from peers. */
  discovery: Discovery;
  /** --peer and the magnet's x.pe peers, liars left out. */
  peers: PeerAddress[];
  /** The port to listen on (the one trackers and the DHT were told, if they were). */
  port: number | undefined;
}

const ACTION = 'cannot mount';

/**
 * The torrent to mount: the .torrent given, or for a magnet / bare infohash
 * the one saved by an earlier mount, or else the info dictionary fetched from
 * peers found by every source (BEP 9), then saved for next time.
 */
export async function resolveTorrent(source: TorrentSource, opts: ResolveOptions): Promise<ResolvedTorrent> {
  const { log, cacheRoot } = opts;
  const peers: PeerAddress[] = [...opts.peers];
  if (source.kind === 'torrent') {
    const { metainfo } = source;
    return { metainfo, discovery: opts.discoveryFor(metainfo, peers.length, log), peers, port: opts.port };
  }
  for (const text of source.peers) {
    const peer = parsePeerAddress(text);
    if (peer) peers.push(peer);
    else log.warn({ peer: text }, 'ignoring an unusable x.pe address in the magnet');
  }
  const saved = await loadCachedTorrent(cacheRoot, source.infoHash, log);
  if (saved) {
    log.info({ infoHash: source.infoHash }, 'using the torrent saved by an earlier mount');
    const announce = [...new Set([...saved.announce, ...source.announce])];
    return { metainfo: saved, discovery: opts.discoveryFor({ infoHash: saved.infoHash, announce, private: saved.private }, peers.length, log), peers, port: opts.port };
  }

  const discovery = opts.discoveryFor({ infoHash: source.infoHash, announce: source.announce, private: false }, peers.length, log);
  let reservation: PortReservation;
  try {
    reservation = await PortReservation.take(opts.port, opts.host);
  } catch (err) {
    throw new UserError(ACTION, (err as Error).message);
  }
  opts.onProgress({ connected: 0, known: 0, rejected: 0 });
  try {
    const fetched = await fetchMetainfo({
      infoHash: source.infoHash,
      cacheRoot,
      discovery,
      reservation,
      staticPeers: peers,
      trackers: [...source.announce, ...opts.extraTrackers],
      timeoutMs: opts.metadataTimeoutMs,
      signal: opts.signal,
      log,
      onProgress: opts.onProgress,
    });
    const { metainfo } = fetched;
    for (const host of fetched.liars) discovery.ignoreHost(host);
    if (metainfo.private) await discovery.restrictToTrackers();
    return { metainfo, discovery, peers: peers.filter((p) => !fetched.liars.has(p.host)), port: reservation.port };
  } catch (err) {
    await discovery.stop().catch(() => undefined);
    if (err instanceof MetadataTimeoutError) {
      // BEP 19 serves the files, not the info dictionary: a magnet needs one peer (or a .torrent) to start.
      const webOnly = opts.webSeedCount
        ? '; a web seed cannot give the metadata (BEP 19 serves only the files): mount the .torrent file, or reach one peer that has it (--peer, a tracker, the DHT)'
        : '';
      throw new UserError(ACTION, `could not fetch the torrent's metadata: ${err.message}${webOnly}`);
    }
    if (err instanceof InvalidTorrentError) throw new UserError(ACTION, err.message);
    throw err;
  } finally {
    await reservation.release();
  }
}
