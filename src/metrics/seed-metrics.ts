import { Registry } from 'prom-client';
import type { SwarmStats } from '../swarm/index.js';
import type { ScrapeTarget } from './metrics-server.js';
import { pulledGauge } from './pulled.js';
import { registerSwarmMetrics } from './swarm-metrics.js';

/** What `btmount seed`'s metrics read. */
export interface SeedMetricsSource {
  /** undefined while the dataset is still being verified. */
  swarm(): SwarmStats | undefined;
  piecesHave(): number;
  pieceCount: number;
}

/** The Prometheus metrics of `btmount seed`: the swarm's, and how much of the dataset it serves. */
export class SeedMetrics implements ScrapeTarget {
  readonly registry = new Registry();
  #swarm: SwarmStats | undefined;

  constructor(source: SeedMetricsSource) {
    registerSwarmMetrics(this.registry, () => (this.#swarm ??= source.swarm()));
    pulledGauge(this.registry, 'btmount_pieces_have', 'Verified pieces of the dataset being served', () => source.piecesHave());
    pulledGauge(this.registry, 'btmount_pieces', 'Pieces in the torrent', () => source.pieceCount);
  }

  refresh(): void {
    this.#swarm = undefined;
  }
}
