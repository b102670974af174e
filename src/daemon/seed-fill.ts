import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { Logger } from '../log.js';
import type { Metainfo, PieceIndex } from '../metainfo/index.js';
import type { VerifiedPiece } from '../metainfo/verified-piece.js';
import type { DirectoryPieceStorage } from '../store/directory-storage.js';
import { PieceStore } from '../store/piece-store.js';
import type { PieceStorage } from '../swarm/piece-storage.js';
import type { WebSeedSet } from '../webseed/index.js';

/**
 * `btmount seed --web-seed URL` on a dataset with missing or damaged pieces: those pieces
 * are fetched from the web seed, verified, and kept in a piece cache under
 * `<cache>/seed-fill/` — never written into the dataset, which the seed only reads — and
 * the seed serves them beside the good ones. The cache holds only the missing pieces, so
 * its size is theirs.
 */

export interface FillResult {
  /** Pieces that were missing or damaged on disk. */
  missing: number;
  /** Of those, fetched from a web seed and now served. */
  filled: number;
}

/** The dataset's good pieces, and in front of its holes the pieces filled from a web seed. */
export class FilledSeedStorage extends EventEmitter implements PieceStorage {
  readonly #dataset: DirectoryPieceStorage;
  readonly #fill: PieceStore;

  private constructor(dataset: DirectoryPieceStorage, fill: PieceStore) {
    super();
    this.#dataset = dataset;
    this.#fill = fill;
    fill.on('added', (index: PieceIndex) => this.emit('added', index));
    fill.on('evicted', (index: PieceIndex) => this.emit('evicted', index));
  }

  /** Opens the fill cache for the pieces `dataset` lacks (after its verify). */
  static async open(metainfo: Metainfo, dataset: DirectoryPieceStorage, cacheRoot: string, log: Logger): Promise<FilledSeedStorage> {
    const { layout } = metainfo;
    let missingPieces = 0;
    for (let i = 0; i < layout.pieceCount; i++) if (!dataset.has(i as PieceIndex)) missingPieces++;
    const fill = await PieceStore.open({
      // Its own root: a mount of the same torrent may use the same --cache.
      cacheRoot: path.join(cacheRoot, 'seed-fill'),
      infoHash: metainfo.infoHash,
      layout,
      budgetBytes: Math.max(1, missingPieces) * layout.pieceLength,
      log,
    });
    return new FilledSeedStorage(dataset, fill);
  }

  get pieceCountHeld(): number {
    return this.#dataset.pieceCountHeld + this.#fill.haveCount;
  }

  has(index: PieceIndex): boolean {
    return this.#dataset.has(index) || this.#fill.has(index);
  }

  *haveIndices(): Iterable<PieceIndex> {
    for (const i of this.#dataset.haveIndices()) yield i;
    for (const i of this.#fill.haveIndices()) if (!this.#dataset.has(i)) yield i;
  }

  put(piece: VerifiedPiece): Promise<boolean> {
    if (this.#dataset.has(piece.index)) return Promise.resolve(true);
    return this.#fill.put(piece);
  }

  readBlock(index: PieceIndex, offset: number, length: number): Promise<Buffer> {
    return this.#dataset.has(index) ? this.#dataset.readBlock(index, offset, length) : this.#fill.readBlock(index, offset, length);
  }

  /**
   * Fetches every piece neither the dataset nor an earlier fill holds from the web seeds, a
   * few at a time per seed, trying the next seed when one fails. Pieces no seed could give
   * stay missing (the seed serves the rest, as without --web-seed).
   */
  async fillFrom(webSeeds: WebSeedSet, signal: AbortSignal, onPiece?: (r: FillResult) => void): Promise<FillResult> {
    const todo: PieceIndex[] = [];
    const { pieceCount } = this.#dataset.layout;
    for (let i = 0; i < pieceCount; i++) if (!this.has(i as PieceIndex)) todo.push(i as PieceIndex);
    const missing = todo.length;
    let filled = 0;
    const parallel = Math.max(1, webSeeds.seeds.reduce((sum, s) => sum + s.parallelPieces, 0));
    const worker = async (): Promise<void> => {
      for (let index = todo.shift(); index !== undefined && !signal.aborted; index = todo.shift()) {
        for (const seed of webSeeds.seeds) {
          try {
            if (await this.#fill.put(await seed.fetchVerifiedPiece(index, signal))) {
              filled++;
              onPiece?.({ missing, filled });
            }
            break;
          } catch {
            // Logged by the seed with its reason; the next seed may have it.
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, missing) }, worker));
    return { missing, filled };
  }

  async close(): Promise<void> {
    await this.#fill.close();
    await this.#dataset.close();
  }
}
