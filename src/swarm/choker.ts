/**
 * Who we upload to. Every round, the interested peers that give us the most
 * (or, when we want nothing, take the most) get the regular unchoke slots,
 * and one more interested peer gets an optimistic unchoke that rotates, so new
 * peers get a chance to show their rate. Pure: the Swarm applies the result.
 */
export interface ChokeCandidate {
  key: string;
  interested: boolean;
  /** Bytes/s they send us. */
  downloadRate: number;
  /** Bytes/s we send them. */
  uploadRate: number;
}

export interface ChokeDecision {
  unchoke: Set<string>;
  optimistic: string | undefined;
}

export function chooseUnchoked(
  peers: readonly ChokeCandidate[],
  opts: { slots: number; seeding: boolean; optimistic: string | undefined; rotateOptimistic: boolean; random?: () => number },
): ChokeDecision {
  const interested = peers.filter((p) => p.interested);
  const rateOf = (p: ChokeCandidate): number => (opts.seeding ? p.uploadRate : p.downloadRate);
  const ranked = [...interested].sort((a, b) => rateOf(b) - rateOf(a) || (a.key < b.key ? -1 : 1));
  const unchoke = new Set(ranked.slice(0, opts.slots).map((p) => p.key));
  const rest = ranked.filter((p) => !unchoke.has(p.key));
  let optimistic = opts.optimistic;
  if (optimistic !== undefined && (!rest.some((p) => p.key === optimistic) || opts.rotateOptimistic)) optimistic = undefined;
  if (optimistic === undefined && rest.length > 0) {
    const random = opts.random ?? Math.random;
    const pool = opts.optimistic !== undefined && rest.length > 1 ? rest.filter((p) => p.key !== opts.optimistic) : rest;
    optimistic = pool[Math.floor(random() * pool.length)]!.key;
  }
  if (optimistic !== undefined) unchoke.add(optimistic);
  return { unchoke, optimistic };
}
