import type { PieceIndex } from '../metainfo/piece-layout.js';
import type { Priority } from '../scheduler/index.js';

/**
 * Which wanted pieces to ask which web seed for, now. Pure: the Swarm gathers what the
 * peers can do for each piece (from the scheduler) and starts the fetches this returns.
 *
 * The policy is "peers first" (the origin is spent once):
 * - A piece goes to a web seed when no connected peer that may be asked for it has it
 *   (none has it, or every one that does chokes us or is snubbed): otherwise nothing
 *   would ever fetch it when there is no swarm.
 * - An urgent piece (a read is blocked on it) also goes to a web seed when the peers that
 *   have it would not deliver it by the read's deadline, or when the deadline is near and
 *   the piece is still not here (an estimate that was too kind must not cost the read).
 * - First copies (issue 12): a piece no peer has, that another node of the cluster owns
 *   (`firstCopyHere` false: Scheduler.firstCopyHere, rendezvous hashing over the downloading
 *   btmount peers), is left to its owner: a web seed cannot reject, so two nodes that pick the
 *   same piece both fetch it. An urgent one becomes ours once it has waited the scheduler's
 *   grace without any peer getting it (the owner may not want it), or near its deadline; a
 *   read-ahead one stays its owner's (deep read-ahead at a slow origin waits past the grace
 *   as a matter of course).
 * - Urgent pieces first, soonest deadline first; then read-ahead, then warm; within those,
 *   rarest first, then in the order given (the order they were wanted: each node fetches its
 *   own first copies in the order the cluster reads them). Without first-copy information,
 *   random among equally rare pieces, so that the nodes of a cluster reading the same window
 *   tend to take different pieces from the origin and trade them.
 * - A seed gets at most its free slots (parallelPieces minus what it has in flight), and
 *   nothing while it is not ready (backing off after a failure).
 */

export interface WebSeedCapacity {
  /** The caller's handle for the seed (returned in the picks). */
  readonly id: number;
  readonly ready: boolean;
  /** Pieces it may be given now: parallelPieces minus pieces in flight. */
  readonly freeSlots: number;
}

/** What the connected peers can do for one wanted piece (see Scheduler.peerSupply). */
export interface WantedPieceSupply {
  readonly index: PieceIndex;
  readonly priority: Priority;
  /** ms since the epoch; urgent pieces only. */
  readonly deadline: number | undefined;
  /** Connected peers that have the piece, whatever their state (rarest first). */
  readonly availability: number;
  /** Of those, the ones we may ask now: not choking us (or allowed-fast) and not snubbed. */
  readonly usablePeers: number;
  /** When the soonest usable peer would have delivered the piece (ms since the epoch); Infinity if none. */
  readonly peerDeliveryAt: number;
  /** This node takes the piece's first copy (Scheduler.firstCopyHere); absent: no first-copy owners known. */
  readonly firstCopyHere?: boolean;
}

export interface WebSeedPick {
  readonly seed: number;
  readonly index: PieceIndex;
  readonly reason: 'no-peer' | 'late-peer';
}

export interface WebSeedPickOptions {
  /** Within this many ms of an urgent piece's deadline a web seed is asked whatever the peers' estimate. Default 1000. */
  nearDeadlineMs?: number;
  /** [0, 1): picks among equally rare non-urgent pieces. Default: the first one (deterministic). */
  random?: () => number;
}

/** Equally rare candidates drawn from at random (so the picks stay near the front of the list). */
const TIE_SAMPLE = 32;

export function pickWebSeedFetches(
  pieces: Iterable<WantedPieceSupply>,
  seeds: readonly WebSeedCapacity[],
  now: number,
  opts: WebSeedPickOptions = {},
): WebSeedPick[] {
  const free = seeds.filter((s) => s.ready && s.freeSlots > 0).map((s) => ({ id: s.id, slots: s.freeSlots }));
  let budget = free.reduce((n, s) => n + s.slots, 0);
  if (budget === 0) return [];
  const nearDeadlineMs = opts.nearDeadlineMs ?? 1000;

  const urgent: Array<{ piece: WantedPieceSupply; reason: WebSeedPick['reason'] }> = [];
  const readahead: WantedPieceSupply[] = [];
  const warm: WantedPieceSupply[] = [];
  let owners = false;
  for (const p of pieces) {
    const noPeer = p.usablePeers <= 0;
    const ours = p.firstCopyHere !== false;
    if (p.firstCopyHere !== undefined) owners = true;
    if (p.priority === 'urgent') {
      const deadline = p.deadline ?? Infinity;
      const near = now >= deadline - nearDeadlineMs;
      if (noPeer) {
        if (ours || near) urgent.push({ piece: p, reason: 'no-peer' });
      } else if (p.peerDeliveryAt > deadline || near) urgent.push({ piece: p, reason: 'late-peer' });
    } else if (noPeer && ours) {
      (p.priority === 'readahead' ? readahead : warm).push(p);
    }
  }

  const picks: WebSeedPick[] = [];
  const assign = (index: PieceIndex, reason: WebSeedPick['reason']): void => {
    // The seed with the most free slots: spread the pieces over the seeds.
    let best = free[0]!;
    for (const s of free) if (s.slots > best.slots) best = s;
    best.slots--;
    budget--;
    picks.push({ seed: best.id, index, reason });
  };

  urgent.sort((a, b) => (a.piece.deadline ?? Infinity) - (b.piece.deadline ?? Infinity) || a.piece.index - b.piece.index);
  for (const u of urgent) {
    if (budget === 0) return picks;
    assign(u.piece.index, u.reason);
  }
  for (const list of [readahead, warm]) {
    while (budget > 0 && list.length > 0) {
      const at = rarestPick(list, owners ? undefined : opts.random);
      assign(list[at]!.index, 'no-peer');
      list.splice(at, 1);
    }
  }
  return picks;
}

/** Position of the rarest piece; among equally rare ones, a random one of the first TIE_SAMPLE (or the first). */
function rarestPick(list: readonly WantedPieceSupply[], random: (() => number) | undefined): number {
  let least = Infinity;
  for (const p of list) least = Math.min(least, p.availability);
  const ties: number[] = [];
  for (let i = 0; i < list.length && ties.length < TIE_SAMPLE; i++) if (list[i]!.availability === least) ties.push(i);
  return random ? ties[Math.floor(random() * ties.length)]! : ties[0]!;
}
