import { EventEmitter } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { PieceIndex, PieceLayout } from '../metainfo/piece-layout.js';
import { VerifiedPiece } from '../store/verified-piece.js';
import type { PieceStorage } from './piece-storage.js';

/** The part of a Metainfo that maps the torrent's byte stream onto files. */
export interface DatasetLayout {
  layout: PieceLayout;
  files: ReadonlyArray<{ path: string; length: number; offset: number; pad: boolean }>;
  /** False for a single-file torrent: the dataset path is then the file itself. */
  multiFile: boolean;
}

export interface VerifyProgress {
  /** Bytes checked so far / in all. */
  checkedBytes: number;
  totalBytes: number;
  goodPieces: number;
  badPieces: number;
}

/**
 * Serves a dataset as it lies on disk (`btmount seed`): the folder given to
 * `create` (or, for a single-file torrent, the file). Pieces are read straight
 * from the files; `verify` must run first and only pieces whose SHA-1 matched
 * are offered. Read-only: `put` stores nothing.
 */
export class DirectoryPieceStorage extends EventEmitter implements PieceStorage {
  private readonly have: Uint8Array;
  private haveCount = 0;
  private readonly fds: LRUCache<string, Promise<FileHandle>>;
  /** Pieces read for uploads lately (whole pieces: peers ask for all their blocks). */
  private readonly recent: LRUCache<PieceIndex, Promise<Buffer>>;
  /** File index whose byte range starts at or before a stream offset: files sorted by offset. */
  private readonly files: DatasetLayout['files'];

  constructor(
    private readonly dataset: DatasetLayout,
    private readonly root: string,
    opts: { maxOpenFiles?: number; cachedPieces?: number } = {},
  ) {
    super();
    this.have = new Uint8Array(dataset.layout.pieceCount);
    this.files = dataset.files;
    this.recent = new LRUCache<PieceIndex, Promise<Buffer>>({ max: opts.cachedPieces ?? 32 });
    this.fds = new LRUCache<string, Promise<FileHandle>>({
      max: opts.maxOpenFiles ?? 128,
      dispose: (fd) => void fd.then((h) => h.close()).catch(() => {}),
    });
  }

  get layout(): PieceLayout {
    return this.dataset.layout;
  }

  get pieceCountHeld(): number {
    return this.haveCount;
  }

  /**
   * Reads and hashes every piece; afterwards only good pieces are served.
   * Missing or short files make their pieces bad, not the whole run.
   */
  async verify(onProgress?: (p: VerifyProgress) => void, signal?: AbortSignal): Promise<VerifyProgress> {
    const layout = this.dataset.layout;
    const progress: VerifyProgress = { checkedBytes: 0, totalBytes: layout.totalLength, goodPieces: 0, badPieces: 0 };
    // Two buffers: the next piece is read (in libuv's pool) while this one is hashed.
    const buffers = [Buffer.allocUnsafeSlow(layout.pieceLength), Buffer.allocUnsafeSlow(layout.pieceLength)];
    const read = (i: number): Promise<Buffer | undefined> => {
      const index = i as PieceIndex;
      const data = buffers[i % 2]!.subarray(0, layout.pieceSize(index));
      return this.readRange(layout.pieceOffset(index), data).then(
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
      if (ok && !this.have[i]) {
        this.have[i] = 1;
        this.haveCount++;
      }
      if (ok) progress.goodPieces++;
      else progress.badPieces++;
      progress.checkedBytes += layout.pieceSize(index);
      onProgress?.(progress);
    }
    await next?.catch(() => undefined);
    return progress;
  }

  has(index: PieceIndex): boolean {
    return this.have[index] === 1;
  }

  *haveIndices(): Iterable<PieceIndex> {
    for (let i = 0; i < this.have.length; i++) if (this.have[i]) yield i as PieceIndex;
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
    const size = this.dataset.layout.pieceSize(index);
    if (offset < 0 || length < 0 || offset + length > size) throw new RangeError(`block ${offset}+${length} outside piece ${index}`);
    let piece = this.recent.get(index);
    if (!piece) {
      const buf = Buffer.allocUnsafe(size);
      piece = this.readRange(this.dataset.layout.pieceOffset(index), buf).then(() => buf);
      this.recent.set(index, piece);
      piece.catch(() => this.recent.delete(index));
    }
    return (await piece).subarray(offset, offset + length);
  }

  async close(): Promise<void> {
    const handles = [...this.fds.values()];
    this.fds.clear();
    await Promise.allSettled(handles.map(async (h) => (await h).close()));
  }

  /** Fills `out` with the torrent stream's bytes from `start`. Pad files read as zeros. */
  private async readRange(start: number, out: Buffer): Promise<void> {
    let pos = 0;
    let fileIndex = this.fileAt(start);
    while (pos < out.length) {
      const file = this.files[fileIndex];
      if (!file) throw new Error(`offset ${start + pos} is past the last file`);
      const inFile = start + pos - file.offset;
      const n = Math.min(file.length - inFile, out.length - pos);
      if (n > 0) {
        if (file.pad) out.fill(0, pos, pos + n);
        else await this.readFile(file.path, inFile, out.subarray(pos, pos + n));
        pos += n;
      }
      fileIndex++;
    }
  }

  private async readFile(path: string, position: number, into: Buffer): Promise<void> {
    const full = this.dataset.multiFile ? join(this.root, ...path.split('/')) : this.root;
    let fd = this.fds.get(full);
    if (!fd) {
      fd = open(full, 'r');
      this.fds.set(full, fd);
      fd.catch(() => this.fds.delete(full));
    }
    const handle = await fd;
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
      if (bytesRead === 0) throw new Error(`${full} is shorter than the torrent says`);
      done += bytesRead;
    }
  }

  /** Binary search: the first file that holds byte `offset` (zero-length files skipped by the read loop). */
  private fileAt(offset: number): number {
    let lo = 0;
    let hi = this.files.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.files[mid]!.offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    // Step back over zero-length files that share the offset, then forward to one that holds the byte.
    while (lo > 0 && this.files[lo - 1]!.offset === this.files[lo]!.offset) lo--;
    while (lo < this.files.length - 1 && this.files[lo]!.offset + this.files[lo]!.length <= offset) lo++;
    return lo;
  }
}
