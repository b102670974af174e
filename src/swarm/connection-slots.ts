/**
 * Which connection gives up its slot when all are taken and another peer could have one
 * (an incoming connection, or an address waiting to be dialled). Without this, strangers that
 * connect and then do nothing hold the slots until the idle timeout (150 s) while an honest
 * peer is turned away. libtorrent does the same at its connection limit: the connection idle
 * longest goes. Here a connection is of use while interest runs either way (we want something
 * it has, or it wants something of ours): no block moves, either way, without it.
 */
export const USELESS_AFTER_MS = 30_000;

/** One connection as the slots see it. */
export interface SlotHolder {
  readonly key: string;
  /** Interest either way right now: it serves us, is served, or may be at once. */
  readonly inUse: boolean;
}

export class ConnectionSlots {
  /** When each open connection was last in use (or opened). */
  readonly #usefulAt = new Map<string, number>();
  readonly #uselessAfterMs: number;

  constructor(uselessAfterMs = USELESS_AFTER_MS) {
    this.#uselessAfterMs = uselessAfterMs;
  }

  opened(key: string, now: number): void {
    this.#usefulAt.set(key, now);
  }

  closed(key: string): void {
    this.#usefulAt.delete(key);
  }

  /** Notes which connections are in use now (called every tick). */
  observe(holders: Iterable<SlotHolder>, now: number): void {
    for (const h of holders) if (h.inUse && this.#usefulAt.has(h.key)) this.#usefulAt.set(h.key, now);
  }

  /**
   * The connection that has been of no use the longest, if that is at least the threshold;
   * never one in use now. Undefined when every connection earns its slot.
   */
  leastUseful(holders: Iterable<SlotHolder>, now: number): string | undefined {
    let pick: string | undefined;
    let pickSince = Infinity;
    for (const h of holders) {
      if (h.inUse) continue;
      const since = this.#usefulAt.get(h.key);
      if (since === undefined || now - since < this.#uselessAfterMs || since >= pickSince) continue;
      pick = h.key;
      pickSince = since;
    }
    return pick;
  }
}
