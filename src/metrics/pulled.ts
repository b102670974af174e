import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Metrics whose values already live elsewhere (the Reader's, the cache's and
 * the swarm's own counters, what `btmount status` reads): each scrape copies
 * them in, so nothing in the hot path is touched for them.
 */

export type LabelledValues = ReadonlyArray<readonly [Record<string, string>, number]>;

/** A counter read from a running total at each scrape (`_total`, monotonic for the process's life). */
export function pulledCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(Math.max(0, read()));
    },
  });
}

/** A labelled counter read from running totals at each scrape. */
export function pulledLabelledCounter(registry: Registry, name: string, help: string, labelNames: string[], read: () => LabelledValues): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, Math.max(0, value));
    },
  });
}

/** A gauge read at each scrape. */
export function pulledGauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** A labelled gauge read at each scrape; label sets missing from a scrape are dropped. */
export function pulledLabelledGauge(registry: Registry, name: string, help: string, labelNames: string[], read: () => LabelledValues): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.set(labels, value);
    },
  });
}
