import { setMaxListeners } from 'node:events';
import type { Logger } from '../log.js';
import type { ByteMap, TorrentFile } from '../metainfo/index.js';
import type { PieceIndex } from '../metainfo/piece-layout.js';
import type { Priority } from '../scheduler/index.js';
import { RateMeter } from '../scheduler/rate-meter.js';
import { formatSize } from '../byte-size.js';
import type { WarmJobState, WarmJobStatus } from './status-schema.js';
import { plannedPiece, type WarmPlan } from './warm-plan.js';

/** What a warm job uses of the mount: the reader's one path from ranges to pieces, and a look at the cache. */
export interface WarmDeps {
  byteMap: ByteMap;
  prefetch(file: TorrentFile, offset: number, length: number, priority: Priority, signal: AbortSignal): Promise<void>;
  has(index: PieceIndex): boolean;
  /** Why wanted pieces are not arriving (for the message of a stalled job). */
  waitingReason(): string;
  log: Logger;
}

export interface WarmJobOptions {
  id: number;
  background: boolean;
  /** Pieces requested at once. */
  window: number;
  stallTimeoutMs: number;
}

/** Why a job stopped before its end. */
class JobStopped extends Error {
  constructor(
    readonly state: 'failed' | 'cancelled',
    message: string,
  ) {
    super(message);
  }
}

/**
 * One warm job: fetches the planned pieces through the Reader at warm priority,
 * at most `window` at a time and in plan order, so they arrive in the order
 * asked; counts files and bytes done; gives up when nothing arrives for
 * `stallTimeoutMs`. At the end it checks that every planned file is in the
 * cache: "complete" means every byte asked is cached and verified.
 */
export class WarmJob {
  readonly id: number;
  readonly background: boolean;
  readonly startedAt = new Date();
  #finishedAt: Date | undefined;
  #state: WarmJobState = 'running';
  #message: string | null = null;
  readonly #plan: WarmPlan;
  readonly #deps: WarmDeps;
  readonly #opts: WarmJobOptions;
  readonly #abort = new AbortController();
  readonly #meter: RateMeter;
  /** Per torrent file index: its position in plan.files, or -1. */
  readonly #position: Int32Array;
  /** Per planned file: pieces still to arrive. */
  readonly #remaining: Int32Array;
  /** Per planned piece: 1 once it is cached. */
  readonly #pieceDone: Uint8Array;
  readonly #totalBytes: number;
  #next = 0;
  #inflight = 0;
  #firstUndone = 0;
  #piecesDone = 0;
  #filesDone = 0;
  #bytesDone = 0;
  #alreadyCachedBytes = 0;
  #failedPieces = 0;
  #lastFailure: string | undefined;
  #lastProgressAt = Date.now();
  #stallTimer: NodeJS.Timeout | undefined;
  #missing = { files: 0, bytes: 0, first: null as string | null };
  readonly #finished: Promise<WarmJobStatus>;
  #finish!: (status: WarmJobStatus) => void;

  constructor(plan: WarmPlan, deps: WarmDeps, opts: WarmJobOptions) {
    // Every piece in flight (up to the window, 256 by default) listens on the one stop signal.
    setMaxListeners(0, this.#abort.signal);
    this.id = opts.id;
    this.background = opts.background;
    this.#plan = plan;
    this.#deps = deps;
    this.#opts = opts;
    this.#meter = new RateMeter(Date.now(), 500, 10);
    this.#position = new Int32Array(deps.byteMap.files.length).fill(-1);
    this.#remaining = new Int32Array(plan.files.length);
    this.#pieceDone = new Uint8Array(plan.pieces.length);
    let total = 0;
    plan.files.forEach((file, i) => {
      this.#position[file.index] = i;
      const range = deps.byteMap.pieceRangeOfFile(file);
      this.#remaining[i] = range ? range.last - range.first + 1 : 0;
      if (!range) this.#filesDone++;
      total += file.length;
    });
    this.#totalBytes = total;
    this.#finished = new Promise((resolve) => (this.#finish = resolve));
  }

  get state(): WarmJobState {
    return this.#state;
  }

  /** Resolves with the final status when the job has ended, however it ended. */
  get finished(): Promise<WarmJobStatus> {
    return this.#finished;
  }

  start(): void {
    const { log } = this.#deps;
    log.info(
      { job: this.id, files: this.#plan.files.length, bytes: this.#totalBytes, pieces: this.#plan.pieces.length, notFitting: this.#plan.notFitting },
      `warm job ${this.id} started: ${this.#plan.files.length} files, ${formatSize(this.#totalBytes)}`,
    );
    this.#stallTimer = setInterval(() => this.#checkStall(), Math.min(1000, this.#opts.stallTimeoutMs));
    this.#pump();
    this.#maybeEnd(); // nothing to fetch
  }

  /** Stops the job: 'cancelled' for a user's request, 'failed' for anything else (the mount stopping). */
  stop(state: 'failed' | 'cancelled', message: string): void {
    if (this.#state !== 'running' || this.#abort.signal.aborted) return;
    this.#abort.abort(new JobStopped(state, message));
    this.#maybeEnd();
  }

  status(): WarmJobStatus {
    const now = Date.now();
    const running = this.#state === 'running';
    const rate = running ? Math.round(this.#meter.rate(now)) : 0;
    const left = this.#totalBytes - this.#bytesDone;
    const firstUndone = this.#firstUndone < this.#plan.pieces.length ? this.#plan.files[this.#plan.pieceFile[this.#firstUndone]!] : undefined;
    return {
      id: this.id,
      state: this.#state,
      background: this.background,
      startedAt: this.startedAt.toISOString(),
      finishedAt: this.#finishedAt?.toISOString() ?? null,
      requested: { ...this.#plan.requested },
      files: { done: this.#filesDone, total: this.#plan.files.length },
      bytes: { done: this.#bytesDone, total: this.#totalBytes },
      pieces: { done: this.#piecesDone, total: this.#plan.pieces.length },
      alreadyCachedBytes: this.#alreadyCachedBytes,
      rate,
      etaSeconds: running && rate > 0 ? Math.ceil(left / rate) : running && left === 0 ? 0 : null,
      current: running ? (firstUndone?.path ?? null) : null,
      window: this.#opts.window,
      notFitting: { ...this.#plan.notFitting },
      missing: { ...this.#missing },
      message: this.#message,
    };
  }

  // ---------------------------------------------------------------- internals

  #pump(): void {
    const { pieces } = this.#plan;
    const signal = this.#abort.signal;
    while (!signal.aborted && this.#inflight < this.#opts.window && this.#next < pieces.length) {
      const i = this.#next++;
      const piece = plannedPiece(this.#plan, i);
      const file = this.#plan.files[this.#plan.pieceFile[i]!]!;
      const cachedBefore = this.#deps.has(piece);
      // Any byte of the file inside this piece names the piece to the Reader.
      const offsetInFile = Math.max(0, this.#deps.byteMap.layout.pieceOffset(piece) - file.offset);
      this.#inflight++;
      this.#deps
        .prefetch(file, offsetInFile, 1, 'warm', signal)
        .then(
          () => this.#onPiece(i, piece, cachedBefore),
          (err: unknown) => this.#onPieceFailed(piece, err),
        )
        .finally(() => {
          this.#inflight--;
          this.#pump();
          this.#maybeEnd();
        });
    }
  }

  #onPiece(i: number, piece: PieceIndex, cachedBefore: boolean): void {
    const now = Date.now();
    this.#lastProgressAt = now;
    this.#pieceDone[i] = 1;
    this.#piecesDone++;
    while (this.#firstUndone < this.#pieceDone.length && this.#pieceDone[this.#firstUndone]) this.#firstUndone++;
    for (const span of this.#deps.byteMap.filesOfPiece(piece)) {
      const pos = this.#position[span.file.index]!;
      if (pos < 0) continue;
      this.#bytesDone += span.length;
      if (cachedBefore) this.#alreadyCachedBytes += span.length;
      else this.#meter.add(now, span.length);
      if (--this.#remaining[pos]! === 0) {
        this.#filesDone++;
        this.#deps.log.debug({ job: this.id, file: span.file.path, n: this.#filesDone }, 'warm: file cached');
      }
    }
  }

  #onPieceFailed(piece: PieceIndex, err: unknown): void {
    if (this.#abort.signal.aborted) return;
    this.#failedPieces++;
    this.#lastFailure = `piece ${piece}: ${(err as Error).message}`;
    this.#deps.log.warn({ job: this.id, piece, err }, 'warm: fetching a piece failed');
  }

  #checkStall(): void {
    if (this.#state !== 'running' || this.#inflight === 0) return;
    const idle = Date.now() - this.#lastProgressAt;
    if (idle < this.#opts.stallTimeoutMs) return;
    this.stop('failed', `no data for ${Math.round(idle / 1000)} s (${this.#deps.waitingReason()})`);
  }

  #maybeEnd(): void {
    if (this.#state !== 'running' || this.#inflight > 0) return;
    const stopped = this.#abort.signal.reason as JobStopped | undefined;
    if (!stopped && this.#next < this.#plan.pieces.length) return;
    clearInterval(this.#stallTimer);
    this.#finishedAt = new Date();
    this.#missing = this.#findMissing();
    if (stopped) {
      this.#state = stopped.state;
      this.#message = stopped.message;
    } else if (this.#missing.files === 0 && this.#plan.notFitting.files === 0) {
      this.#state = 'complete';
    } else {
      this.#state = 'partial';
      this.#message = this.#partialMessage();
    }
    const status = this.status();
    this.#deps.log.info({ job: this.id, ...status }, `warm job ${this.id} ${status.state}${status.message ? `: ${status.message}` : ''}`);
    this.#finish(status);
  }

  /** Planned files not (or no longer) all in the cache. */
  #findMissing(): { files: number; bytes: number; first: string | null } {
    const out = { files: 0, bytes: 0, first: null as string | null };
    for (const file of this.#plan.files) {
      const range = this.#deps.byteMap.pieceRangeOfFile(file);
      if (!range) continue;
      for (let p = range.first; p <= range.last; p++) {
        if (this.#deps.has(p)) continue;
        out.files++;
        out.bytes += file.length;
        out.first ??= file.path;
        break;
      }
    }
    return out;
  }

  #partialMessage(): string {
    const parts: string[] = [];
    const { notFitting } = this.#plan;
    if (notFitting.files > 0) {
      parts.push(`${notFitting.files} files (${formatSize(notFitting.bytes)}) from ${notFitting.first} on did not fit in the cache`);
    }
    const missing = this.#missing;
    if (missing.files > 0) {
      const why =
        this.#failedPieces > 0
          ? `${this.#failedPieces} pieces could not be fetched (${this.#lastFailure})`
          : 'evicted again by reads while warming; the cache is too small for both';
      parts.push(`${missing.files} files (${formatSize(missing.bytes)}) from ${missing.first} on are not in the cache: ${why}`);
    }
    return parts.join('; ');
  }
}
