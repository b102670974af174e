import type { PieceIndex } from '../metainfo/piece-layout.js';
import { higherPriority, type Priority } from '../scheduler/index.js';

/**
 * The callers waiting for pieces (reads, read-ahead, warm): per piece, who waits, at what
 * priority and by when. Callers asking for the same piece share it; the highest priority
 * among them and the soonest urgent deadline are what the piece is wanted at. An aborted
 * caller leaves (rejected with its signal's reason); `onChange` then tells the owner the
 * piece's want changed (perhaps to nothing).
 */

/** What a piece is wanted at, from its waiters. */
export interface Want {
  priority: Priority;
  /** The soonest deadline among its urgent waiters (ms since the epoch). */
  deadline: number | undefined;
}

interface Waiter {
  readonly index: PieceIndex;
  readonly priority: Priority;
  readonly deadline: number | undefined;
  resolve(): void;
  reject(err: unknown): void;
  /** Stops listening to the caller's signal. */
  cleanup(): void;
}

export class PieceWaiters {
  readonly #byPiece = new Map<PieceIndex, Set<Waiter>>();
  /** Waiters of urgent fetches (reads), so that "are reads waiting" costs nothing. */
  readonly #urgent = new Set<Waiter>();
  readonly #onChange: (index: PieceIndex) => void;

  constructor(onChange: (index: PieceIndex) => void) {
    this.#onChange = onChange;
  }

  /** Pieces someone waits for. */
  get size(): number {
    return this.#byPiece.size;
  }

  /** Callers waiting at urgent priority (blocked reads), over all pieces. */
  get urgentCount(): number {
    return this.#urgent.size;
  }

  /**
   * Adds a caller; resolves or rejects when the piece is settled, or rejects with the
   * signal's reason when it aborts. Calls onChange(index) now and on abort.
   */
  wait(index: PieceIndex, priority: Priority, deadline: number | undefined, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let set = this.#byPiece.get(index);
    if (!set) this.#byPiece.set(index, (set = new Set()));
    const waiters = set;
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        waiters.delete(waiter);
        this.#urgent.delete(waiter);
        if (waiters.size === 0 && this.#byPiece.get(index) === waiters) this.#byPiece.delete(index);
        reject(signal!.reason);
        this.#onChange(index);
      };
      const waiter: Waiter = {
        index,
        priority,
        deadline,
        resolve,
        reject,
        cleanup: () => {
          signal?.removeEventListener('abort', onAbort);
          this.#urgent.delete(waiter);
        },
      };
      waiters.add(waiter);
      if (priority === 'urgent') this.#urgent.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#onChange(index);
    });
  }

  /** Pieces a blocked read waits for, each once (cheap: walks the urgent callers only). */
  urgentPieces(): Set<PieceIndex> {
    const pieces = new Set<PieceIndex>();
    for (const w of this.#urgent) pieces.add(w.index);
    return pieces;
  }

  /** What the piece is wanted at now, or undefined when nobody waits for it. */
  want(index: PieceIndex): Want | undefined {
    const waiters = this.#byPiece.get(index);
    if (!waiters || waiters.size === 0) return undefined;
    let priority: Priority = 'warm';
    let deadline: number | undefined;
    for (const w of waiters) {
      priority = higherPriority(priority, w.priority);
      if (w.priority === 'urgent' && w.deadline !== undefined) deadline = Math.min(deadline ?? Infinity, w.deadline);
    }
    return { priority, deadline: priority === 'urgent' ? deadline : undefined };
  }

  /** The piece is here: every caller waiting for it resolves. */
  resolve(index: PieceIndex): void {
    for (const w of this.#take(index)) w.resolve();
  }

  /** The piece will not come (no room to keep it, a storage error): its callers are rejected. */
  reject(index: PieceIndex, err: unknown): void {
    for (const w of this.#take(index)) w.reject(err);
  }

  /** Every caller is rejected with `reasonFor(index)` (the swarm closes). */
  rejectAll(reasonFor: (index: PieceIndex) => unknown): void {
    for (const index of [...this.#byPiece.keys()]) this.reject(index, reasonFor(index));
  }

  #take(index: PieceIndex): Set<Waiter> {
    const waiters = this.#byPiece.get(index) ?? new Set<Waiter>();
    this.#byPiece.delete(index);
    for (const w of waiters) w.cleanup();
    return waiters;
  }
}
