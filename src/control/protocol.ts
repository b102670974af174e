import type { MountStatus, WarmJobStatus } from './status-schema.js';

/**
 * The control channel's messages: one JSON object per line, both directions,
 * over the mount's unix socket. A client sends one request per connection and
 * reads replies until a final one (`result`, `error` or `warm-end`). A warm
 * connection stays open while the job runs: a later `cancel` line on it stops
 * the job, and so does closing it (unless the job runs in the background).
 */

/** Paths are relative to the mount root, '/'-separated, as the mount shows them ('' = the root). */
export type ControlRequest =
  | { op: 'status' }
  | {
      op: 'warm';
      paths: string[];
      /** Keep running after this connection closes; the reply is `warm-start` alone. */
      background: boolean;
      /** Give up when no piece has arrived for this long while pieces are wanted. */
      stallTimeoutMs: number;
      /** How often to send `warm-progress`. */
      progressIntervalMs: number;
    }
  | { op: 'check'; paths: string[] }
  | { op: 'evict'; paths: string[] }
  /** Stops warm jobs: these ids, or every running one. On a warm connection: that connection's job. */
  | { op: 'cancel'; jobs?: number[] };

export interface PathReport {
  path: string;
  kind: 'file' | 'dir';
  files: number;
  bytes: number;
  /** Files all of whose bytes are in the cache (empty files count as cached). */
  filesCached: number;
  cachedBytes: number;
}

export interface CheckResult {
  paths: PathReport[];
  /** All the paths together, each file counted once. */
  total: Omit<PathReport, 'path' | 'kind'>;
}

export interface EvictResult {
  files: number;
  pieces: number;
  bytes: number;
  /** Pieces a read is using right now: left in the cache. */
  pinnedPieces: number;
}

export type ControlReply =
  | { type: 'result'; status: MountStatus }
  | { type: 'result'; check: CheckResult }
  | { type: 'result'; evict: EvictResult }
  | { type: 'result'; cancelled: number[] }
  | { type: 'warm-start'; job: WarmJobStatus }
  | { type: 'warm-progress'; job: WarmJobStatus }
  | { type: 'warm-end'; job: WarmJobStatus }
  | { type: 'error'; code: ControlErrorCode; message: string };

export type ControlErrorCode = 'bad-request' | 'bad-path' | 'stopping' | 'internal';

/** A request line longer than this is refused (a million-path list is about 50 MiB). */
export const MAX_LINE_BYTES = 512 * 1024 * 1024;

/** Splits a byte stream into lines; refuses lines over `maxBytes`. */
export class LineDecoder {
  #parts: Buffer[] = [];
  #partBytes = 0;

  readonly #maxBytes: number;

  constructor(maxBytes = MAX_LINE_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** The complete lines in `chunk` (with what came before it), without their '\n'. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      this.#parts.push(chunk.subarray(start, nl));
      lines.push(Buffer.concat(this.#parts).toString('utf8'));
      this.#parts = [];
      this.#partBytes = 0;
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.#partBytes += chunk.length - start;
      if (this.#partBytes > this.#maxBytes) throw new Error(`a control message is longer than ${this.#maxBytes} bytes`);
      this.#parts.push(chunk.subarray(start));
    }
    return lines;
  }
}

export function encodeLine(message: ControlRequest | ControlReply): string {
  return JSON.stringify(message) + '\n';
}

/** Checks the shape of a request from the socket; returns a reason when it is not one. */
export function requestProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'not a JSON object';
  const req = value as Record<string, unknown>;
  const paths = req['paths'];
  const isPathList = Array.isArray(paths) && paths.every((p) => typeof p === 'string');
  switch (req['op']) {
    case 'status':
      return undefined;
    case 'check':
    case 'evict':
      return isPathList ? undefined : '"paths" must be a list of strings';
    case 'warm':
      if (!isPathList) return '"paths" must be a list of strings';
      if (typeof req['background'] !== 'boolean') return '"background" must be true or false';
      if (!isPositiveNumber(req['stallTimeoutMs'])) return '"stallTimeoutMs" must be a positive number';
      if (!isPositiveNumber(req['progressIntervalMs'])) return '"progressIntervalMs" must be a positive number';
      return undefined;
    case 'cancel': {
      const jobs = req['jobs'];
      if (jobs !== undefined && !(Array.isArray(jobs) && jobs.every((j) => Number.isInteger(j)))) return '"jobs" must be a list of job ids';
      return undefined;
    }
    default:
      return `unknown op ${JSON.stringify(req['op'])}`;
  }
}

function isPositiveNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}
