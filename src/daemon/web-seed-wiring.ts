import type { Logger } from '../log.js';
import type { Swarm } from '../swarm/index.js';
import type { WebSeedSet } from '../webseed/index.js';

/**
 * How a session hands its web seeds to the swarm. The swarm schedules them (peers
 * first; a web seed for what no connected peer has, or cannot deliver by a read's
 * deadline) and closes them with itself; the session builds them and reports them.
 */

export function addWebSeedsToSwarm(swarm: Pick<Swarm, 'addWebSeed'>, webSeeds: WebSeedSet, log: Logger): void {
  for (const seed of webSeeds.seeds) {
    swarm.addWebSeed(seed);
    log.info({ webSeed: seed.name }, `web seed ${seed.name}: asked for pieces no connected peer can deliver in time`);
  }
}

/**
 * A web seed that sends nothing for this long is 'stalled' and retried: 15 s, or half the
 * read timeout when that is shorter, so a stall is noticed while the read still waits.
 */
export function webSeedIdleTimeoutMs(readTimeoutMs: number): number {
  return Math.max(1_000, Math.min(15_000, Math.floor(readTimeoutMs / 2)));
}
