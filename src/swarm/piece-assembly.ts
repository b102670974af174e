import { createHash } from 'node:crypto';
import { BLOCK_SIZE, type PieceIndex, type PieceLayout } from '../metainfo/piece-layout.js';
import { VerifiedPiece } from '../metainfo/verified-piece.js';

/**
 * Pieces being put together from peers' blocks: their buffers (from a pool, since fresh
 * memory costs page faults and GC: measured, a third of a download's CPU without reuse),
 * the hash check that turns one into a VerifiedPiece, and who is to blame when it fails.
 *
 * Blame: a failed piece from one host strikes that host. From several, each one's blocks
 * are remembered by digest; when the piece later verifies (from anyone), the hosts whose
 * blocks differ from the good copy are struck ("smart ban"). A host struck `banThreshold`
 * times is to be banned. The Swarm decides which blocks are accepted (the scheduler) and
 * applies bans; this unit only counts.
 */

export interface PieceAssemblyOptions {
  /** Strikes after which a host is banned (default 2). */
  banThreshold?: number;
  /** Bytes of idle piece buffers kept for reuse (default 80 MiB). */
  maxPooledBytes?: number;
}

/** A host charged for bad data: `ban` once its strikes reach the threshold. */
export interface Charge {
  readonly host: string;
  readonly strikes: number;
  readonly ban: boolean;
  readonly reason: string;
}

export type AssemblyOutcome =
  | { readonly ok: true; readonly piece: VerifiedPiece }
  | { readonly ok: false; readonly charges: Charge[] };

/** Per failed piece from several hosts: who sent which block with what digest. */
interface Suspect {
  readonly host: string;
  readonly block: number;
  readonly digest: Buffer;
}

/** Failed pieces remembered for smart ban (oldest forgotten first). */
const MAX_SUSPECT_PIECES = 256;
/** An idle pool shrinks to this many buffers. */
const IDLE_POOLED_BUFFERS = 4;
const POOL_IDLE_MS = 10_000;

export class PieceAssembly {
  readonly #layout: PieceLayout;
  readonly #banThreshold: number;
  readonly #maxPooledBytes: number;
  readonly #assembling = new Map<PieceIndex, Buffer>();
  readonly #pool: Buffer[] = [];
  /** Buffers this unit handed out (only those go back to the pool). */
  readonly #ours = new WeakSet<Buffer>();
  #lastAllocAt = 0;
  readonly #strikes = new Map<string, number>();
  readonly #suspects = new Map<PieceIndex, Suspect[]>();
  #hashFailures = 0;
  readonly #verifyTime = { pieces: 0, totalMs: 0, maxMs: 0 };

  constructor(layout: PieceLayout, opts: PieceAssemblyOptions = {}) {
    this.#layout = layout;
    this.#banThreshold = opts.banThreshold ?? 2;
    this.#maxPooledBytes = opts.maxPooledBytes ?? 80 * 1024 * 1024;
  }

  /** Pieces failed so far. */
  get hashFailures(): number {
    return this.#hashFailures;
  }

  /** SHA-1 checks done here: how many, and the event-loop time they took. */
  get verifyTime(): { pieces: number; totalMs: number; maxMs: number } {
    return { ...this.#verifyTime };
  }

  /** Idle buffers held for reuse. */
  get pooledBuffers(): number {
    return this.#pool.length;
  }

  isAssembling(index: PieceIndex): boolean {
    return this.#assembling.has(index);
  }

  /** Copies a block the scheduler accepted into its piece (in any order; the same block again overwrites). */
  write(index: PieceIndex, offset: number, block: Uint8Array, now = Date.now()): void {
    let buf = this.#assembling.get(index);
    if (!buf) {
      buf = this.#alloc(this.#layout.pieceSize(index), now);
      this.#assembling.set(index, buf);
    }
    buf.set(block, offset);
  }

  /** Drops a partly assembled piece (unwanted, or it came from elsewhere), keeping its buffer for reuse. */
  discard(index: PieceIndex): void {
    const buf = this.#assembling.get(index);
    if (!buf) return;
    this.#assembling.delete(index);
    this.release(buf);
  }

  /**
   * Every block of the piece is in: hash it. A good piece is returned (its buffer is the
   * caller's until `release`; pass it to `convict` as any good copy); a bad one charges the hosts `contributors` names (asked only
   * then: host → the blocks it sent) and its buffer goes back to the pool.
   */
  verify(index: PieceIndex, contributors: () => ReadonlyMap<string, readonly number[]>): AssemblyOutcome | undefined {
    const data = this.#assembling.get(index);
    if (!data) return undefined;
    this.#assembling.delete(index);
    const started = performance.now();
    const piece = VerifiedPiece.check(this.#layout, index, data);
    const ms = performance.now() - started;
    this.#verifyTime.pieces++;
    this.#verifyTime.totalMs += ms;
    this.#verifyTime.maxMs = Math.max(this.#verifyTime.maxMs, ms);
    if (piece) return { ok: true, piece };
    this.#hashFailures++;
    const charges = this.#blame(index, data, contributors());
    this.release(data);
    return { ok: false, charges };
  }

  /**
   * A good copy of a piece, from here or another source (a web seed): the hosts whose
   * blocks of an earlier failed copy differ from it are struck.
   */
  convict(piece: VerifiedPiece): Charge[] {
    const list = this.#suspects.get(piece.index);
    if (!list) return [];
    this.#suspects.delete(piece.index);
    const liars = new Set<string>();
    for (const s of list) if (!blockDigest(piece.data, s.block).equals(s.digest)) liars.add(s.host);
    return [...liars].map((host) => this.#strike(host, `sent corrupt blocks of piece ${piece.index}`));
  }

  /** The storage is done with a buffer: ours go back to the pool (while it has room). */
  release(buf: Buffer): void {
    if (!this.#ours.has(buf) || buf.length !== this.#layout.pieceLength) return;
    if ((this.#pool.length + 1) * buf.length <= Math.max(this.#maxPooledBytes, buf.length)) this.#pool.push(buf);
  }

  /** Periodic upkeep: a pool unused for a while shrinks. */
  trimPool(now = Date.now()): void {
    if (now - this.#lastAllocAt > POOL_IDLE_MS && this.#pool.length > IDLE_POOLED_BUFFERS) this.#pool.length = IDLE_POOLED_BUFFERS;
  }

  #alloc(size: number, now: number): Buffer {
    this.#lastAllocAt = now;
    if (size === this.#layout.pieceLength) {
      const pooled = this.#pool.pop();
      if (pooled) return pooled;
    }
    const buf = Buffer.allocUnsafeSlow(size);
    this.#ours.add(buf);
    return buf;
  }

  #blame(index: PieceIndex, data: Buffer, contributors: ReadonlyMap<string, readonly number[]>): Charge[] {
    if (contributors.size === 1) return [this.#strike([...contributors.keys()][0]!, `sent piece ${index}, which failed its hash check`)];
    // Several sources: remember each one's blocks; when the piece later verifies, the differing blocks name the liar.
    const list: Suspect[] = [];
    for (const [host, blocks] of contributors) for (const block of blocks) list.push({ host, block, digest: blockDigest(data, block) });
    if (list.length > 0) {
      if (this.#suspects.size >= MAX_SUSPECT_PIECES) this.#suspects.delete(this.#suspects.keys().next().value as PieceIndex);
      this.#suspects.set(index, list);
    }
    return [];
  }

  #strike(host: string, reason: string): Charge {
    const strikes = (this.#strikes.get(host) ?? 0) + 1;
    this.#strikes.set(host, strikes);
    return { host, strikes, ban: strikes >= this.#banThreshold, reason };
  }
}

function blockDigest(data: Buffer, block: number): Buffer {
  return createHash('sha1')
    .update(data.subarray(block * BLOCK_SIZE, (block + 1) * BLOCK_SIZE))
    .digest();
}
