/**
 * How badly a piece is wanted. `urgent`: a read is blocked on it. `readahead`: a
 * read will soon need it. `warm`: a user asked to pre-fetch it. A piece nobody
 * wants is not fetched at all (background = not wanted).
 */
export type Priority = 'urgent' | 'readahead' | 'warm';

/** Higher rank wins. */
export const PRIORITY_RANK: Readonly<Record<Priority, number>> = { urgent: 3, readahead: 2, warm: 1 };

/** Highest first. */
export const PRIORITIES_HIGH_FIRST: readonly Priority[] = ['urgent', 'readahead', 'warm'];

export function higherPriority(a: Priority, b: Priority): Priority {
  return PRIORITY_RANK[a] >= PRIORITY_RANK[b] ? a : b;
}

export function isPriority(value: unknown): value is Priority {
  return value === 'urgent' || value === 'readahead' || value === 'warm';
}
