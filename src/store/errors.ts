import type { PieceIndex } from '../metainfo/piece-layout.js';

/**
 * Errors the store throws. Their messages are written for the person at the
 * terminal (the CLI prefixes `btmount: <action>:`); details go to the log.
 */

/** Another live process has this torrent's cache directory open. */
export class StoreLockedError extends Error {
  constructor(
    readonly dir: string,
    /** What the holder wrote about itself (pid, host, start time), when readable. */
    readonly holder: string | undefined,
  ) {
    super(
      `the cache directory ${dir} is in use by another btmount process` +
        (holder ? ` (${holder})` : '') +
        '; unmount that one first, or give this mount a different --cache directory',
    );
    this.name = 'StoreLockedError';
  }
}

export type PieceMissingReason = 'not-held' | 'corrupt';

/** The piece is not in the store (never fetched, evicted, or dropped because its file was corrupt). */
export class PieceMissingError extends Error {
  constructor(
    readonly index: PieceIndex,
    readonly reason: PieceMissingReason,
  ) {
    super(
      reason === 'corrupt'
        ? `piece ${index} was corrupt on disk and has been dropped; it must be fetched again`
        : `piece ${index} is not in the cache`,
    );
    this.name = 'PieceMissingError';
  }
}

/** The byte budget cannot hold what must be kept at once (one piece, or the pinned pieces). */
export class StoreBudgetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreBudgetError';
  }
}

/** `evict` was asked to remove a piece a reader has pinned. */
export class PiecePinnedError extends Error {
  constructor(readonly index: PieceIndex) {
    super(`piece ${index} is pinned by a reader and cannot be evicted`);
    this.name = 'PiecePinnedError';
  }
}

export class StoreClosedError extends Error {
  constructor() {
    super('the piece store is closed');
    this.name = 'StoreClosedError';
  }
}
