import { Histogram, Registry } from 'prom-client';
import type { MountStatus } from '../control/status-schema.js';
import type { SwarmStats } from '../swarm/index.js';
import { pulledCounter, pulledGauge, pulledLabelledGauge } from './pulled.js';
import { registerSwarmMetrics } from './swarm-metrics.js';
import type { ScrapeTarget } from './metrics-server.js';

/** What a mount's metrics read: the status `btmount status` shows, and the swarm's counters. */
export interface MountMetricsSource {
  status(): MountStatus;
  swarm(): SwarmStats;
}

/** Read latency buckets, seconds: page-cache-speed hits to reads that waited out a timeout. */
const READ_LATENCY_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The Prometheus metrics of one mount. Everything but the read latency is
 * pulled at scrape time from the same status object `btmount status` builds;
 * the latency histogram is fed by the FUSE layer as each read completes.
 */
export class MountMetrics implements ScrapeTarget {
  readonly registry = new Registry();
  readonly #readLatency: Histogram;
  #status: MountStatus | undefined;
  #swarm: SwarmStats | undefined;

  readonly #source: MountMetricsSource;
  constructor(source: MountMetricsSource) {
    this.#source = source;
    const r = this.registry;
    const status = (): MountStatus => (this.#status ??= source.status());
    registerSwarmMetrics(r, () => (this.#swarm ??= source.swarm()));
    pulledCounter(r, 'btmount_fuse_read_bytes_total', 'Bytes returned to FUSE reads (the kernel page cache serves repeats without asking)', () => status().reads.bytes);
    pulledCounter(r, 'btmount_fuse_reads_total', 'FUSE read requests that reached the daemon', () => status().reads.count);
    pulledCounter(r, 'btmount_fuse_read_failures_total', 'FUSE reads answered with EIO (read timeout, no data)', () => status().reads.failed);
    pulledGauge(r, 'btmount_waiting_reads', 'FUSE reads waiting for pieces now', () => status().reads.waiting);
    pulledGauge(r, 'btmount_oldest_waiting_read_seconds', 'How long the oldest waiting read has waited (0 when none waits)', () => status().reads.oldest?.ageSeconds ?? 0);
    pulledCounter(r, 'btmount_cache_hits_total', 'Piece lookups of reads answered from the cache', () => status().cache.hits);
    pulledCounter(r, 'btmount_cache_misses_total', 'Piece lookups of reads that had to wait for the swarm', () => status().cache.misses);
    pulledCounter(r, 'btmount_cache_evictions_total', 'Pieces evicted from the cache to stay within its budget', () => status().cache.evictions);
    pulledGauge(r, 'btmount_cache_bytes', 'Bytes of verified pieces held in the cache', () => status().cache.usedBytes);
    pulledGauge(r, 'btmount_cache_budget_bytes', 'The cache budget (--cache-size)', () => status().cache.budgetBytes);
    pulledGauge(r, 'btmount_cache_effective_budget_bytes', 'The budget in force (lowered when the cache disk runs short)', () => status().cache.effectiveBudgetBytes);
    pulledCounter(r, 'btmount_web_seed_bytes_total', 'Bytes received from web seeds (BEP 19), all seeds together', () => sum((status().webSeeds ?? []).map((w) => w.bytesFetched)));
    pulledGauge(r, 'btmount_pieces_have', 'Verified pieces in the cache', () => status().pieces.have);
    pulledGauge(r, 'btmount_pieces', 'Pieces in the torrent', () => status().pieces.total);
    pulledLabelledGauge(r, 'btmount_warm_jobs', 'Warm jobs the mount remembers, by state', ['state'], () => {
      const counts = new Map<string, number>(['running', 'complete', 'partial', 'failed', 'cancelled'].map((s) => [s, 0]));
      for (const job of status().warm) counts.set(job.state, (counts.get(job.state) ?? 0) + 1);
      return [...counts].map(([state, n]) => [{ state }, n] as const);
    });
    pulledGauge(r, 'btmount_warm_done_bytes', 'Bytes cached so far of the running warm jobs', () => sum(running(status()).map((j) => j.bytes.done)));
    pulledGauge(r, 'btmount_warm_total_bytes', 'Bytes the running warm jobs will cache', () => sum(running(status()).map((j) => j.bytes.total)));
    this.#readLatency = new Histogram({
      name: 'btmount_read_latency_seconds',
      help: 'Time from a FUSE read reaching the daemon to its answer (data or EIO)',
      buckets: READ_LATENCY_BUCKETS,
      registers: [r],
    });
  }

  /** Called by the FUSE layer as a read completes. */
  observeRead(seconds: number): void {
    this.#readLatency.observe(seconds);
  }

  /** One consistent snapshot per scrape: every pulled metric reads the same status. */
  refresh(): void {
    this.#status = undefined;
    this.#swarm = undefined;
  }
}

function running(status: MountStatus): MountStatus['warm'] {
  return status.warm.filter((j) => j.state === 'running');
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
