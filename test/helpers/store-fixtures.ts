import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, stat, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { asInfoHash, PieceLayout, pieceIndex, type InfoHash, type PieceIndex } from '../../src/metainfo/piece-layout.js';
import { VerifiedPiece } from '../../src/metainfo/verified-piece.js';

/** A synthetic torrent whose piece bytes are a pure function of (seed, index), so a child process can rebuild it. */
export interface TestTorrent {
  layout: PieceLayout;
  infoHash: InfoHash;
  data(index: number): Buffer;
  piece(index: number): VerifiedPiece;
}

export interface TorrentSpec {
  pieceLength: number;
  pieceCount: number;
  /** Bytes in the last piece (default: a full piece). */
  lastPieceLength?: number;
  seed?: number;
}

export function pieceBytes(seed: number, index: number, length: number): Buffer {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer, 0, length);
}

export function makeTorrent(spec: TorrentSpec): TestTorrent {
  const seed = spec.seed ?? 1;
  const last = spec.lastPieceLength ?? spec.pieceLength;
  const totalLength = spec.pieceLength * (spec.pieceCount - 1) + last;
  const sizeOf = (i: number): number => (i === spec.pieceCount - 1 ? last : spec.pieceLength);
  const hashes = Buffer.alloc(spec.pieceCount * 20);
  for (let i = 0; i < spec.pieceCount; i++) {
    createHash('sha1').update(pieceBytes(seed, i, sizeOf(i))).digest().copy(hashes, i * 20);
  }
  const layout = new PieceLayout(spec.pieceLength, totalLength, hashes);
  const infoHash = asInfoHash(createHash('sha1').update(`test-torrent-${seed}-${spec.pieceLength}-${spec.pieceCount}`).digest('hex'));
  const data = (i: number): Buffer => pieceBytes(seed, i, sizeOf(i));
  const piece = (i: number): VerifiedPiece => {
    const p = VerifiedPiece.check(layout, pieceIndex(i), data(i));
    if (!p) throw new Error(`fixture piece ${i} does not verify`);
    return p;
  };
  return { layout, infoHash, data, piece };
}

export const idx = (n: number): PieceIndex => pieceIndex(n);

/** A fresh directory removed when the test ends. */
export async function tempDir(t: { teardown(fn: () => Promise<void> | void): void }, prefix = 'btmount-store-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A pino logger that keeps its JSON lines in memory. */
export function memoryLogger(): { log: Logger; lines: Array<{ level: number; msg: string; [k: string]: unknown }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

/** Every regular file under `dir` with its size, relative paths. */
export async function listFiles(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const size = await stat(p).then((s) => s.size, () => undefined); // it may vanish while we look
        if (size !== undefined) out.set(path.relative(dir, p), size);
      }
    }
  };
  await walk(dir);
  return out;
}

/** Disk space the store's data file takes (allocated blocks: it is sparse). */
export async function pieceBytesOnDisk(storeDir: string): Promise<number> {
  const st = await stat(path.join(storeDir, 'data')).catch(() => undefined);
  return st ? st.blocks * 512 : 0;
}

/** The slot table as stored: `slots[s]` is the piece in slot s, or -1 (format: see src/store/cache-dir.ts). */
export async function readSlotTable(storeDir: string): Promise<{ slotSize: number; slots: number[] }> {
  const buf = await readFile(path.join(storeDir, 'slots'));
  const slots: number[] = [];
  for (let at = 16; at + 4 <= buf.length; at += 4) slots.push(buf.readInt32LE(at));
  return { slotSize: buf.readUInt32LE(8), slots };
}

/** Overwrites slot-table entry `slot` with `piece`. */
export async function writeSlotEntry(storeDir: string, slot: number, piece: number): Promise<void> {
  const fh = await open(path.join(storeDir, 'slots'), 'r+');
  const b = Buffer.alloc(4);
  b.writeInt32LE(piece);
  await fh.write(b, 0, 4, 16 + slot * 4);
  await fh.close();
}

/** Byte offset of `piece` in the data file. */
export async function pieceOffset(storeDir: string, piece: number): Promise<number> {
  const { slotSize, slots } = await readSlotTable(storeDir);
  const slot = slots.indexOf(piece);
  if (slot < 0) throw new Error(`piece ${piece} is in no slot`);
  return slot * slotSize;
}

export const storeHelperScript = fileURLToPath(new URL('./store-child.js', import.meta.url));

/** A child node process running test/helpers/store-child.ts, with its stdout lines. */
export class StoreChild {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  readonly #waiters: Array<() => void> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  constructor(config: object) {
    this.proc = spawn(process.execPath, [storeHelperScript, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    this.proc.stdout!.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      const parts = partial.split('\n');
      partial = parts.pop()!;
      this.lines.push(...parts);
      for (const w of this.#waiters.splice(0)) w();
    });
    this.proc.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => {
      for (const w of this.#waiters.splice(0)) w();
      resolve({ code, signal });
    }));
  }

  /** Resolves once `predicate(lines)` holds; rejects if the child exits first or after `ms`. */
  async waitFor(predicate: (lines: string[]) => boolean, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!predicate(this.lines)) {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
        throw new Error(`child exited (${this.proc.exitCode ?? this.proc.signalCode}) before the expected output; stderr: ${this.stderr}`);
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for child output; got: ${this.lines.slice(-5).join(' | ')}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    await this.exited;
  }
}

/** Bytes in use on the file system holding `dir` (exact and instantaneous on tmpfs). */
export async function usedBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return (s.blocks - s.bfree) * s.bsize;
}
