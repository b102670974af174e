import type { Registry } from 'prom-client';
import type { PeerSource, SwarmStats } from '../swarm/index.js';
import { pulledCounter, pulledLabelledCounter, pulledLabelledGauge } from './pulled.js';

/** Every kind of peer source, so each series exists (at 0) from the first scrape. */
const SOURCES: readonly PeerSource[] = ['static', 'tracker', 'dht', 'pex', 'incoming'];

/**
 * The swarm's metrics, shared by a mount and `btmount seed`: bytes per peer
 * source, peers per source, pieces verified and failed. `stats` is the
 * snapshot of the current scrape (undefined before the swarm exists).
 */
export function registerSwarmMetrics(registry: Registry, stats: () => SwarmStats | undefined): void {
  const bySource = (field: 'downloaded' | 'uploaded') => () => SOURCES.map((source) => [{ source }, stats()?.bySource[source]?.[field] ?? 0] as const);
  pulledLabelledCounter(registry, 'btmount_downloaded_bytes_total', 'Payload bytes received from peers, by where the peer came from', ['source'], bySource('downloaded'));
  pulledLabelledCounter(registry, 'btmount_uploaded_bytes_total', 'Payload bytes sent to peers, by where the peer came from', ['source'], bySource('uploaded'));
  pulledLabelledGauge(registry, 'btmount_peers', 'Connected peers (handshake done), by where the peer came from', ['source'], () => {
    const counts = new Map<string, number>(SOURCES.map((s) => [s, 0]));
    for (const p of stats()?.peers ?? []) counts.set(p.source, (counts.get(p.source) ?? 0) + 1);
    return [...counts].map(([source, n]) => [{ source }, n] as const);
  });
  pulledCounter(registry, 'btmount_pieces_verified_total', 'Pieces received from peers whose SHA-1 matched', () => {
    const s = stats();
    return s ? s.verify.pieces - s.hashFailures : 0;
  });
  pulledCounter(registry, 'btmount_pieces_failed_total', 'Pieces received from peers whose SHA-1 did not match (discarded)', () => stats()?.hashFailures ?? 0);
}
