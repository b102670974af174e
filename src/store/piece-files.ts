import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PieceLayout } from '../metainfo/piece-layout.js';
import { closeFile, errorCode, openFile, writeAll } from './file-io.js';

/**
 * The on-disk format of one torrent's cache, `<cacheRoot>/<infohash>/`:
 *
 *   lock                    who holds the store (see store-lock.ts)
 *   meta.json               the layout this cache was written for (pieces are wiped if it differs)
 *   recency                 LRU order at the last clean close: magic, then u32 LE piece indices, oldest first
 *   incoming/<index>.<n>    a piece being written; never read; emptied at open
 *   pieces/<index/1024>/<index>   one complete piece, exactly its bytes
 *
 * Why one file per piece rather than one sparse file plus a journal: eviction is an
 * unlink, which returns the space at once (a sparse file needs hole punching, which
 * Node cannot do), a damaged file costs one piece and nothing else, and "complete"
 * is the atomic rename from incoming/ to pieces/, so no journal has to agree with
 * the data. The cost is one fd per piece being read, which FdCache bounds, and a
 * file per piece, spread over directories of at most 1024 entries.
 *
 * Crash-safety rule: a file under pieces/ is only ever created by renaming a fully
 * written temp file, so after kill -9 it is either whole or absent. There is no
 * fsync per piece (it would halve write speed); a power loss may therefore leave a
 * renamed file empty or torn. That is why nothing found on disk at open is trusted:
 * each piece is SHA-1-checked against the torrent on its first read after open
 * (once per piece per open), and a mismatch drops the file.
 */
export class PieceFiles {
  static readonly SHARD_SIZE = 1024;
  readonly piecesDir: string;
  readonly incomingDir: string;
  readonly #knownShards: Uint8Array;
  #seq = 0;

  constructor(
    readonly dir: string,
    readonly layout: PieceLayout,
  ) {
    this.piecesDir = path.join(dir, 'pieces');
    this.incomingDir = path.join(dir, 'incoming');
    this.#knownShards = new Uint8Array(Math.ceil(layout.pieceCount / PieceFiles.SHARD_SIZE));
  }

  pathOf(index: number): string {
    return path.join(this.piecesDir, String(Math.floor(index / PieceFiles.SHARD_SIZE)), String(index));
  }

  /** Creates the directories, wipes pieces written for a different layout, and empties incoming/. */
  async prepare(): Promise<{ wiped: boolean }> {
    await mkdir(this.dir, { recursive: true });
    const fingerprint = layoutFingerprint(this.layout);
    const metaPath = path.join(this.dir, 'meta.json');
    const previous = await readFile(metaPath, 'utf8').catch(() => undefined);
    let wiped = false;
    if (previous !== undefined && previous !== fingerprint) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(previous);
      } catch {
        parsed = undefined; // torn write of meta.json: pieces are checked on read anyway
      }
      if (parsed !== undefined) {
        await rm(this.piecesDir, { recursive: true, force: true });
        wiped = true;
      }
    }
    if (previous !== fingerprint) await this.#writeAtomically('meta.json', Buffer.from(fingerprint));
    await rm(this.incomingDir, { recursive: true, force: true });
    await mkdir(this.incomingDir, { recursive: true });
    await mkdir(this.piecesDir, { recursive: true });
    return { wiped };
  }

  /** Calls `found` for every complete piece file; removes anything else under pieces/. */
  async scan(found: (index: number) => void): Promise<void> {
    for (const shard of await readdir(this.piecesDir, { withFileTypes: true })) {
      const shardPath = path.join(this.piecesDir, shard.name);
      const s = parseDecimal(shard.name);
      if (!shard.isDirectory() || s === undefined || s >= this.#knownShards.length) {
        await rm(shardPath, { recursive: true, force: true });
        continue;
      }
      this.#knownShards[s] = 1;
      for (const entry of await readdir(shardPath, { withFileTypes: true })) {
        const index = parseDecimal(entry.name);
        if (
          entry.isFile() &&
          index !== undefined &&
          this.layout.isValidPiece(index) &&
          Math.floor(index / PieceFiles.SHARD_SIZE) === s
        ) {
          found(index);
        } else {
          await rm(path.join(shardPath, entry.name), { recursive: true, force: true });
        }
      }
    }
  }

  /** Writes the piece to incoming/ and renames it into pieces/: it appears whole or not at all. */
  async writePiece(index: number, data: Buffer): Promise<void> {
    const tmp = path.join(this.incomingDir, `${index}.${this.#seq++}`);
    try {
      const fd = await openFile(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL);
      try {
        await writeAll(fd, data);
      } finally {
        await closeFile(fd);
      }
      const shard = Math.floor(index / PieceFiles.SHARD_SIZE);
      if (this.#knownShards[shard] !== 1) {
        await mkdir(path.dirname(this.pathOf(index)), { recursive: true });
        this.#knownShards[shard] = 1;
      }
      await rename(tmp, this.pathOf(index));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  async removePiece(index: number): Promise<void> {
    try {
      await unlink(this.pathOf(index));
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
    }
  }

  /** The LRU order saved at the last clean close (oldest first); empty if absent or unreadable. */
  async readRecency(): Promise<Uint32Array> {
    const buf = await readFile(path.join(this.dir, 'recency')).catch(() => undefined);
    if (!buf || buf.length < RECENCY_MAGIC.length || !buf.subarray(0, RECENCY_MAGIC.length).equals(RECENCY_MAGIC)) {
      return new Uint32Array(0);
    }
    const body = buf.subarray(RECENCY_MAGIC.length);
    const out = new Uint32Array(Math.floor(body.length / 4));
    for (let i = 0; i < out.length; i++) out[i] = body.readUInt32LE(i * 4);
    return out;
  }

  async writeRecency(oldestFirst: Iterable<number>, count: number): Promise<void> {
    const buf = Buffer.allocUnsafe(RECENCY_MAGIC.length + count * 4);
    RECENCY_MAGIC.copy(buf);
    let at = RECENCY_MAGIC.length;
    for (const index of oldestFirst) {
      if (at >= buf.length) break;
      buf.writeUInt32LE(index, at);
      at += 4;
    }
    await this.#writeAtomically('recency', buf.subarray(0, at));
  }

  async #writeAtomically(name: string, data: Buffer): Promise<void> {
    const tmp = path.join(this.dir, `${name}.tmp`);
    await writeFile(tmp, data);
    await rename(tmp, path.join(this.dir, name));
  }
}

const RECENCY_MAGIC = Buffer.from('BTMLRU1\n');

function parseDecimal(name: string): number | undefined {
  return /^(0|[1-9]\d{0,9})$/.test(name) ? Number(name) : undefined;
}

function layoutFingerprint(layout: PieceLayout): string {
  return (
    JSON.stringify({
      format: 1,
      pieceLength: layout.pieceLength,
      totalLength: layout.totalLength,
      pieceCount: layout.pieceCount,
      pieceHashesSha1: createHash('sha1').update(layout.pieceHashes).digest('hex'),
    }) + '\n'
  );
}
