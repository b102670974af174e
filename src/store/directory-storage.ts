import { EventEmitter } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { ByteMap } from '../metainfo/byte-map.js';
import type { PieceIndex, PieceLayout } from '../metainfo/piece-layout.js';
import { VerifiedPiece } from '../metainfo/verified-piece.js';

/** The part of a Metainfo that maps the torrent's byte stream onto files. */
export interface DatasetLayout {
  byteMap: ByteMap;
  /** False for a single-file torrent: the dataset path is then the file itself. */
  multiFile: boolean;
}

export interface VerifyProgress {
  /** Bytes checked so far / in all. */
  checkedBytes: number;
  totalBytes: number;
  goodPieces: number;
  badPieces: number;
  /** Files with bytes in a bad piece (missing, short or changed, or sharing a piece with one), in torrent order. */
  badFiles: string[];
}

/**
 * Serves a dataset as it lies on disk (`btmount seed`): the folder given to
 * `create` (or, for a single-file torrent, the file). Pieces are read straight
 * from the files; `verify` must run first and only pieces whose SHA-1 matched
 * are offered. Read-only: `put` stores nothing. It is the swarm's PieceStorage
 * by shape (the store does not import the swarm).
 */
export class DirectoryPieceStorage extends EventEmitter {
  readonly #have: Uint8Array;
  #haveCount = 0;
  readonly #fds: LRUCache<string, Promise<FileHandle>>;
  /** Pieces read for uploads lately (whole pieces: peers ask for all their blocks). */
  readonly #recent: LRUCache<PieceIndex, Promise<Buffer>>;

  readonly #dataset: DatasetLayout;
  readonly #root: string;

  constructor(
    dataset: DatasetLayout,
    root: string,
    opts: { maxOpenFiles?: number; cachedPieces?: number } = {},
  ) {
    super();
    this.#dataset = dataset;
    this.#root = root;
    this.#have = new Uint8Array(dataset.byteMap.layout.pieceCount);
    this.#recent = new LRUCache<PieceIndex, Promise<Buffer>>({ max: opts.cachedPieces ?? 32 });
    this.#fds = new LRUCache<string, Promise<FileHandle>>({
      max: opts.maxOpenFiles ?? 128,
      dispose: (fd) => void fd.then((h) => h.close()).catch(() => {}),
    });
  }

  get layout(): PieceLayout {
    return this.#dataset.byteMap.layout;
  }

  get pieceCountHeld(): number {
    return this.#haveCount;
  }

  /**
   * Reads and hashes every piece; afterwards only good pieces are served.
   * Missing or short files make their pieces bad, not the whole run.
   */
  async verify(onProgress?: (p: VerifyProgress) => void, signal?: AbortSignal): Promise<VerifyProgress> {
    const layout = this.#dataset.byteMap.layout;
    const progress: VerifyProgress = { checkedBytes: 0, totalBytes: layout.totalLength, goodPieces: 0, badPieces: 0, badFiles: [] };
    // Two buffers: the next piece is read (in libuv's pool) while this one is hashed.
    const buffers = [Buffer.allocUnsafeSlow(layout.pieceLength), Buffer.allocUnsafeSlow(layout.pieceLength)];
    const read = (i: number): Promise<Buffer | undefined> => {
      const index = i as PieceIndex;
      const data = buffers[i % 2]!.subarray(0, layout.pieceSize(index));
      return this.#readPiece(index, data).then(
        () => data,
        () => undefined,
      );
    };
    let next = layout.pieceCount > 0 ? read(0) : undefined;
    for (let i = 0; i < layout.pieceCount; i++) {
      signal?.throwIfAborted();
      const index = i as PieceIndex;
      const data = await next!;
      next = i + 1 < layout.pieceCount ? read(i + 1) : undefined;
      const ok = data !== undefined && VerifiedPiece.check(layout, index, data) !== undefined;
      if (ok && !this.#have[i]) {
        this.#have[i] = 1;
        this.#haveCount++;
      }
      if (ok) progress.goodPieces++;
      else {
        progress.badPieces++;
        for (const { file } of this.#dataset.byteMap.filesOfPiece(index)) {
          // A file spanning several bad pieces is named once: pieces come in stream order.
          if (!file.pad && progress.badFiles[progress.badFiles.length - 1] !== file.path) progress.badFiles.push(file.path);
        }
      }
      progress.checkedBytes += layout.pieceSize(index);
      onProgress?.(progress);
    }
    await next?.catch(() => undefined);
    return progress;
  }

  has(index: PieceIndex): boolean {
    return this.#have[index] === 1;
  }

  *haveIndices(): Iterable<PieceIndex> {
    for (let i = 0; i < this.#have.length; i++) if (this.#have[i]) yield i as PieceIndex;
  }

  async put(_piece: VerifiedPiece): Promise<boolean> {
    return false;
  }

  /**
   * Peers ask for a piece block by block: the whole piece is read once and kept
   * in a small cache, so 64 requests cost one read, not 64.
   */
  async readBlock(index: PieceIndex, offset: number, length: number): Promise<Buffer> {
    if (!this.has(index)) throw new Error(`piece ${index} is not held`);
    const size = this.#dataset.byteMap.layout.pieceSize(index);
    if (offset < 0 || length < 0 || offset + length > size) throw new RangeError(`block ${offset}+${length} outside piece ${index}`);
    let piece = this.#recent.get(index);
    if (!piece) {
      const buf = Buffer.allocUnsafe(size);
      piece = this.#readPiece(index, buf).then(() => buf);
      this.#recent.set(index, piece);
      piece.catch(() => this.#recent.delete(index));
    }
    return (await piece).subarray(offset, offset + length);
  }

  async close(): Promise<void> {
    const handles = [...this.#fds.values()];
    this.#fds.clear();
    await Promise.allSettled(handles.map(async (h) => (await h).close()));
  }

  /** Fills `out` with piece `index` from the files it covers. Pad files read as zeros. */
  async #readPiece(index: PieceIndex, out: Buffer): Promise<void> {
    for (const span of this.#dataset.byteMap.filesOfPiece(index)) {
      const into = out.subarray(span.offsetInPiece, span.offsetInPiece + span.length);
      if (span.file.pad) into.fill(0);
      else await this.#readFile(span.file.path, span.offsetInFile, into);
    }
  }

  async #readFile(path: string, position: number, into: Buffer): Promise<void> {
    const full = this.#dataset.multiFile ? join(this.#root, ...path.split('/')) : this.#root;
    let fd = this.#fds.get(full);
    if (!fd) {
      fd = open(full, 'r');
      this.#fds.set(full, fd);
      fd.catch(() => this.#fds.delete(full));
    }
    const handle = await fd;
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
      if (bytesRead === 0) throw new Error(`${full} is shorter than the torrent says`);
      done += bytesRead;
    }
  }
}
