import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { ControlConnection, ControlRequestError, ControlUnavailableError, requestOnce } from '../control/client.js';
import type { ControlReply } from '../control/protocol.js';
import { mountRelativePath, OutsideMountError } from '../control/selection.js';
import type { WarmJobStatus } from '../control/status-schema.js';
import { UserError } from '../user-error.js';
import { formatSize } from '../byte-size.js';
import { formatDuration, jobProgressText } from './format.js';
import { parseSeconds } from './options.js';

interface WarmOptions {
  fromList?: string;
  background?: boolean;
  check?: boolean;
  evict?: boolean;
  cancel?: boolean;
  json?: boolean;
  stallTimeout: number;
}

/** Exit codes beyond 0 (all warmed) and 1 (an error before or instead of warming). */
const EXIT_INCOMPLETE = 2;
const EXIT_INTERRUPTED = 130;
/** Without a terminal: one progress line this often. */
const PLAIN_PROGRESS_EVERY_MS = 5000;

export function registerWarm(program: Command): void {
  program
    .command('warm')
    .description('fetch files and directories of a mount into its cache ahead of reads (no PATH: everything)')
    .argument('<mountpoint>', 'a btmount mount point')
    .argument('[paths...]', 'files or directories in the mount: relative to its root (or to the current directory inside it), or absolute')
    .option('--from-list <file>', "paths in order, one per line ('-' = stdin); warmed in exactly that order")
    .option('--background', 'start the job and return at once; btmount status shows it')
    .option('--check', 'show how much of each path is cached (percent, bytes); fetch nothing')
    .option('--evict', 'drop the paths from the cache')
    .option('--cancel', "stop this mount's running warm jobs")
    .option('--json', 'JSON output; while warming, one progress object per line')
    .option('--stall-timeout <sec>', 'give up when no data has arrived for this long', (v) => parseSeconds(v, '--stall-timeout'), 120)
    .addHelpText(
      'after',
      `
Warm fetches at a priority below live reads: a training job reading meanwhile is served first.
When the cache cannot hold everything asked for, the paths are warmed in order until it is
full and the rest is named. Ctrl-C stops the warm job, not the mount.

Exit codes: 0 everything asked is cached and verified; 1 error (bad path, no such mount);
2 the job ended without warming everything (did not fit, no data, fetch failures);
130 interrupted.`,
    )
    .action(async (mountpoint: string, paths: string[], opts: WarmOptions) => {
      await warm(path.resolve(mountpoint), paths, opts);
    });
}

async function warm(mountpoint: string, args: string[], opts: WarmOptions): Promise<void> {
  const modes = (['check', 'evict', 'cancel', 'background'] as const).filter((m) => opts[m]);
  if (modes.length > 1) throw new UserError('invalid options', `--${modes[0]} and --${modes[1]} do not go together`);
  const action = opts.check ? 'cannot check' : opts.evict ? 'cannot evict' : opts.cancel ? 'cannot cancel' : 'cannot warm';
  try {
    if (opts.cancel) {
      if (args.length > 0 || opts.fromList) throw new UserError('invalid options', '--cancel takes no paths');
      return await cancelJobs(mountpoint, opts);
    }
    const { paths, shown } = await requestedPaths(mountpoint, args, opts.fromList);
    if (opts.check) return await check(mountpoint, paths, shown, opts);
    if (opts.evict) return await evict(mountpoint, paths, opts);
    return await runWarm(mountpoint, paths, opts);
  } catch (err) {
    if (err instanceof ControlUnavailableError || err instanceof ControlRequestError) throw new UserError(action, err.message);
    if (err instanceof OutsideMountError) throw new UserError(action, err.message);
    throw err;
  }
}

/** Mount-relative paths in the order given (arguments first, then the list); the whole mount when none. */
async function requestedPaths(mountpoint: string, args: string[], list: string | undefined): Promise<{ paths: string[]; shown: string[] }> {
  const shown = [...args];
  const paths = args.map((a) => mountRelativePath(mountpoint, a));
  if (list !== undefined) {
    let text: string;
    try {
      text = list === '-' ? await readStdin() : await readFile(list, 'utf8');
    } catch (err) {
      throw new UserError(`cannot read ${list}`, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message);
    }
    const lines = text.split('\n');
    lines.forEach((raw, i) => {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line === '') return;
      try {
        paths.push(mountRelativePath(mountpoint, line));
      } catch (err) {
        if (err instanceof OutsideMountError) throw new UserError('cannot warm', `${err.message} (line ${i + 1} of ${list === '-' ? 'stdin' : list})`);
        throw err;
      }
      shown.push(line);
    });
    if (paths.length === 0) throw new UserError('cannot warm', `${list === '-' ? 'stdin' : list} names no paths`);
  }
  if (paths.length === 0) return { paths: [''], shown: ['.'] };
  return { paths, shown };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

// ---------------------------------------------------------------- warm

async function runWarm(mountpoint: string, paths: string[], opts: WarmOptions): Promise<void> {
  const conn = await ControlConnection.open(mountpoint);
  const view = opts.json ? new JsonProgress() : process.stderr.isTTY ? new BarProgress() : new PlainProgress();
  conn.send({
    op: 'warm',
    paths,
    background: Boolean(opts.background),
    stallTimeoutMs: opts.stallTimeout * 1000,
    progressIntervalMs: opts.json || !process.stderr.isTTY ? 1000 : 250,
  });

  // Ctrl-C: ask the daemon to stop the job and report what was done; a second one leaves at once.
  let interrupted = false;
  const onSigint = (): void => {
    if (interrupted) {
      conn.close();
      return;
    }
    interrupted = true;
    conn.send({ op: 'cancel' });
    setTimeout(() => conn.close(), 3000).unref();
  };
  process.on('SIGINT', onSigint);
  let final: WarmJobStatus | undefined;
  try {
    for await (const reply of conn.replies()) {
      if (reply.type === 'warm-start') {
        warnIfTooBig(reply.job);
        if (opts.background) {
          if (opts.json) printJson({ event: 'start', ...reply.job });
          else
            process.stdout.write(
              `warm job ${reply.job.id} started in the background: ${reply.job.files.total} files, ${formatSize(reply.job.bytes.total)}; ` +
                `btmount status ${mountpoint} shows its progress\n`,
            );
          return;
        }
        view.start(reply.job);
      } else if (reply.type === 'warm-progress') {
        view.progress(reply.job);
      } else if (reply.type === 'warm-end') {
        final = reply.job;
      }
    }
  } catch (err) {
    if (!interrupted || !(err instanceof ControlUnavailableError)) throw err;
  } finally {
    process.off('SIGINT', onSigint);
    conn.close();
    view.stop();
  }
  if (!final) {
    if (interrupted) throw new UserError('warm interrupted', 'the daemon did not say how far it got', EXIT_INTERRUPTED);
    throw new UserError('cannot warm', 'the daemon closed the connection before the job ended (is the mount stopping?)');
  }
  view.end(final);
  finish(final, Boolean(opts.json));
}

function warnIfTooBig(job: WarmJobStatus): void {
  const { notFitting, requested } = job;
  if (notFitting.files === 0) return;
  process.stderr.write(
    `btmount: warning: the cache cannot hold all ${requested.files} files (${formatSize(requested.bytes)}) asked for: ` +
      `warming the first ${job.files.total} (${formatSize(job.bytes.total)}) in order; ` +
      `${notFitting.files} files (${formatSize(notFitting.bytes)}) from ${notFitting.first} on will not fit (raise --cache-size to hold them)\n`,
  );
}

/** The summary line and the exit code. */
function finish(job: WarmJobStatus, json: boolean): void {
  const seconds = (Date.parse(job.finishedAt!) - Date.parse(job.startedAt)) / 1000;
  if (job.state === 'complete') {
    if (json) return;
    const fetched = job.bytes.done - job.alreadyCachedBytes;
    const cachedNote = job.alreadyCachedBytes > 0 ? `; ${formatSize(job.alreadyCachedBytes)} were cached already` : '';
    const rate = seconds > 0 && fetched > 0 ? `, ${formatSize(fetched / seconds)}/s` : '';
    process.stdout.write(`warmed ${job.files.total} files (${formatSize(job.bytes.total)}) in ${formatDuration(seconds)}${rate}${cachedNote}\n`);
    return;
  }
  const done = `${job.files.done} of ${job.requested.files} files (${formatSize(job.bytes.done)} of ${formatSize(job.requested.bytes)}) are cached`;
  if (job.state === 'cancelled') throw new UserError('warm interrupted', done, EXIT_INTERRUPTED);
  if (job.state === 'failed') throw new UserError('warm stopped', `${job.message}; ${done}`, EXIT_INCOMPLETE);
  throw new UserError('not everything was warmed', `${job.message}; ${done}`, EXIT_INCOMPLETE);
}

interface ProgressView {
  start(job: WarmJobStatus): void;
  progress(job: WarmJobStatus): void;
  end(job: WarmJobStatus): void;
  /** Leaves the terminal clean, however the job ended. */
  stop(): void;
}

class JsonProgress implements ProgressView {
  start(job: WarmJobStatus): void {
    printJson({ event: 'start', ...job });
  }
  progress(job: WarmJobStatus): void {
    printJson({ event: 'progress', ...job });
  }
  end(job: WarmJobStatus): void {
    printJson({ event: 'end', ...job });
  }
  stop(): void {}
}

/** Without a terminal (logs, CI): a line at the start, one every few seconds, none at the end (the summary says it). */
class PlainProgress implements ProgressView {
  #last = 0;
  start(job: WarmJobStatus): void {
    const cached = job.alreadyCachedBytes > 0 ? ` (${formatSize(job.alreadyCachedBytes)} cached already)` : '';
    process.stderr.write(`warm: ${job.files.total} files, ${formatSize(job.bytes.total)}${cached}\n`);
    this.#last = Date.now();
  }
  progress(job: WarmJobStatus): void {
    if (Date.now() - this.#last < PLAIN_PROGRESS_EVERY_MS) return;
    this.#last = Date.now();
    process.stderr.write(`warm: ${jobProgressText(job)}\n`);
  }
  end(): void {}
  stop(): void {}
}

class BarProgress implements ProgressView {
  readonly #bar = new SingleBar({
    format: 'warm [{bar}] {percentage}% | {files} files | {bytes} | {rate} | ETA {eta_text}',
    hideCursor: true,
    clearOnComplete: true,
    stream: process.stderr,
  });
  #running = false;
  start(job: WarmJobStatus): void {
    this.#bar.start(Math.max(1, job.bytes.total), job.bytes.done, this.#payload(job));
    this.#running = true;
  }
  progress(job: WarmJobStatus): void {
    this.#bar.update(job.bytes.done, this.#payload(job));
  }
  end(job: WarmJobStatus): void {
    this.progress(job);
  }
  stop(): void {
    if (this.#running) this.#bar.stop();
    this.#running = false;
  }
  #payload(job: WarmJobStatus): Record<string, string> {
    return {
      files: `${job.files.done}/${job.files.total}`,
      bytes: `${formatSize(job.bytes.done)} of ${formatSize(job.bytes.total)}`,
      rate: `${formatSize(job.rate)}/s`,
      eta_text: job.etaSeconds === null ? '?' : formatDuration(job.etaSeconds),
    };
  }
}

function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

// ---------------------------------------------------------------- check, evict, cancel

async function check(mountpoint: string, paths: string[], shown: string[], opts: WarmOptions): Promise<void> {
  const result = pick(await requestOnce(mountpoint, { op: 'check', paths }), (r) => ('check' in r ? r.check : undefined));
  if (opts.json) {
    printJson({
      paths: result.paths.map((r, i) => ({ ...r, path: shown[i] ?? r.path, percent: percent(r.cachedBytes, r.bytes) })),
      total: { ...result.total, percent: percent(result.total.cachedBytes, result.total.bytes) },
    });
    return;
  }
  const rows = result.paths.map((r, i) => ({ ...r, label: shown[i] ?? r.path }));
  if (rows.length > 1) rows.push({ ...result.total, path: '', kind: 'dir', label: 'total' });
  for (const r of rows) {
    const pct = percent(r.cachedBytes, r.bytes).toFixed(1).padStart(5);
    const sizes = `${formatSize(r.cachedBytes)} of ${formatSize(r.bytes)}`.padEnd(24);
    const files = r.kind === 'dir' ? `${r.filesCached}/${r.files} files`.padEnd(16) : ''.padEnd(16);
    process.stdout.write(`${pct}%  ${sizes} ${files} ${r.label}\n`);
  }
}

function percent(part: number, whole: number): number {
  return whole === 0 ? 100 : Math.floor((part / whole) * 1000) / 10;
}

async function evict(mountpoint: string, paths: string[], opts: WarmOptions): Promise<void> {
  const result = pick(await requestOnce(mountpoint, { op: 'evict', paths }), (r) => ('evict' in r ? r.evict : undefined));
  if (opts.json) printJson(result);
  else process.stdout.write(`evicted ${result.pieces} pieces (${formatSize(result.bytes)}) of ${result.files} files\n`);
  if (result.pinnedPieces > 0) {
    throw new UserError('not everything was evicted', `${result.pinnedPieces} pieces are being read right now and stay in the cache`, EXIT_INCOMPLETE);
  }
}

async function cancelJobs(mountpoint: string, opts: WarmOptions): Promise<void> {
  const cancelled = pick(await requestOnce(mountpoint, { op: 'cancel' }), (r) => ('cancelled' in r ? r.cancelled : undefined));
  if (opts.json) printJson({ cancelled });
  else process.stdout.write(cancelled.length > 0 ? `cancelled warm job ${cancelled.join(', ')}\n` : 'no warm job was running\n');
}

/** The part of a `result` reply a request expects. */
function pick<T>(reply: ControlReply, part: (result: Extract<ControlReply, { type: 'result' }>) => T | undefined): T {
  const value = reply.type === 'result' ? part(reply) : undefined;
  if (value === undefined) throw new ControlUnavailableError(`the daemon sent an unexpected reply (${reply.type})`);
  return value;
}
