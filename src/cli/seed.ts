import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { createLogger } from '../log.js';
import { loadMetainfo, type Metainfo } from '../metainfo/index.js';
import { SeedSession } from '../daemon/seed-session.js';
import type { FillResult } from '../daemon/seed-fill.js';
import type { VerifyProgress } from '../store/directory-storage.js';
import type { SwarmStats } from '../swarm/index.js';
import type { ShareMode } from '../swarm/share-policy.js';
import { defaultCacheRoot } from '../store/cache-location.js';
import { addDiscoveryOptions, discoveryFromOptions, type DiscoveryCliOptions } from './discovery-options.js';
import { UserError } from '../user-error.js';
import { formatSize } from '../byte-size.js';
import { count } from './format.js';
import { collectHostPort, collectWebSeedUrl, parseMetricsAddress, parsePort, parsePositive, parseRate, type HostPort } from './options.js';
import { MetricsServer } from '../metrics/metrics-server.js';
import { SeedMetrics } from '../metrics/seed-metrics.js';

interface SeedOptions extends DiscoveryCliOptions {
  cache?: string;
  port?: number;
  host?: string;
  peer?: Array<{ host: string; port: number }>;
  uploadLimit?: number;
  maxConnections?: number;
  logFile?: string;
  share: ShareMode;
  metrics?: HostPort;
  webSeed?: string[];
  webSeedLimit?: number;
}

const ACTION = 'cannot seed';

export function registerSeed(program: Command): void {
  const command = program.command('seed');
  command
    .description('verify a dataset against its torrent, then serve it to peers until interrupted')
    .argument('<torrent>', 'the .torrent file')
    .argument('<path>', 'the dataset folder given to create (for a single-file torrent: the file)')
    .option('--port <port>', 'listen port (default: first free of 6881-6889; 0 = any)', (v) => parsePort(v))
    .option('--host <address>', 'listen address (default: all)')
    .option('--peer <host:port>', 'a peer to connect to (repeatable)', collectHostPort('--peer'))
    .option('--upload-limit <rate>', 'bytes/s, e.g. 50M or 50MB/s (default: none)', (v) => parseRate(v, '--upload-limit'))
    .option('--max-connections <n>', 'open connections at most (default 50)', (v) => parsePositive(v, '--max-connections'))
    .option('--share <mode>', "distinct: reject a request for a piece another peer has or is getting, so peers trade it (each byte leaves the origin about once); all: serve every request", parseShareMode, 'distinct')
    .option('--web-seed <url>', "an HTTP(S) origin of the torrent's files, BEP 19 (repeatable; with the torrent's url-list): pieces missing or damaged in the dataset are fetched from it into <cache>/seed-fill/ and served", collectWebSeedUrl(ACTION))
    .option('--web-seed-limit <rate>', 'bytes/s from all web seeds together, e.g. 50M (default: none)', (v) => parseRate(v, '--web-seed-limit'))
    .option('--log-file <file>', 'JSON log (default: <cache>/logs/seed-<infohash>.log)')
    .option('--cache <dir>', `where the DHT routing table and the log are kept between runs (default ${defaultCacheRoot()})`)
    .option('--metrics <[host:]port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (default host 127.0.0.1; off unless given)', (v) => parseMetricsAddress(v))
    .action(async (torrent: string, dataset: string, opts: SeedOptions, cmd: Command) => {
      const debug = Boolean(cmd.optsWithGlobals().debug);
      await seed(torrent, dataset, opts, debug);
    });
  // The origin announces itself like any mount, so `btmount <infohash> /data` finds it.
  addDiscoveryOptions(command);
}

async function seed(torrentPath: string, dataset: string, opts: SeedOptions, debug: boolean): Promise<void> {
  let metainfo: Metainfo;
  try {
    metainfo = await loadMetainfo(torrentPath);
  } catch (err) {
    throw new UserError(`cannot read torrent ${torrentPath}`, (err as Error).message);
  }
  const info = await stat(dataset).catch(() => undefined);
  if (!info) throw new UserError(ACTION, `${dataset}: no such file or directory`);
  if (metainfo.multiFile && !info.isDirectory()) throw new UserError(ACTION, `${dataset} is not a folder (the torrent has ${metainfo.files.length} files)`);
  if (!metainfo.multiFile && !info.isFile()) throw new UserError(ACTION, `${dataset} is not a file (the torrent is one file)`);
  const cacheRoot = path.resolve(opts.cache ?? defaultCacheRoot());
  // Like a mount's log, but its own file: a mount and a seed of one torrent may share a cache.
  const logFile = path.resolve(opts.logFile ?? path.join(cacheRoot, 'logs', `seed-${metainfo.infoHash}.log`));
  const log = createLogger({ file: logFile, level: debug ? 'debug' : 'info' });

  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const session = new SeedSession({
    metainfo,
    dataset,
    port: opts.port,
    host: opts.host,
    uploadLimit: opts.uploadLimit,
    maxConnections: opts.maxConnections,
    shareMode: opts.share,
    peers: opts.peer ?? [],
    webSeeds: [metainfo.urlList, opts.webSeed ?? []],
    webSeedLimit: opts.webSeedLimit ?? 0,
    cacheRoot,
    discovery: discoveryFromOptions(metainfo.infoHash, cacheRoot, metainfo.announce, metainfo.private, opts.peer?.length ?? 0, opts, log),
    log,
  });
  let statusTimer: NodeJS.Timeout | undefined;
  let metricsServer: MetricsServer | undefined;
  try {
    if (opts.metrics) {
      const metrics = new SeedMetrics({ swarm: () => session.stats(), piecesHave: () => session.pieceCountHeld, pieceCount: metainfo.layout.pieceCount });
      metricsServer = await MetricsServer.start(metrics, opts.metrics, log).catch((err: Error) => {
        throw new UserError(ACTION, err.message);
      });
    }
    const checked = await verifyWithProgress(session, metainfo, stop.signal);
    if (stop.signal.aborted) return;
    const fill = checked.badPieces > 0 ? await fillWithProgress(session, checked.badPieces, stop.signal) : undefined;
    if (stop.signal.aborted) return;
    const stillMissing = checked.badPieces - (fill?.filled ?? 0);
    if (checked.goodPieces + (fill?.filled ?? 0) === 0) {
      const tried = session.webSeeds.size > 0 ? ' nor could any piece be fetched from its web seeds (see the log)' : '';
      throw new UserError(ACTION, `no data in ${dataset} matches ${torrentPath}${tried}`);
    }
    if (stillMissing > 0) {
      const fromWeb = fill ? `, ${fill.filled} more filled from web seeds` : '';
      process.stderr.write(
        `btmount: warning: ${stillMissing} of ${metainfo.layout.pieceCount} pieces are missing or damaged; serving the other ${metainfo.layout.pieceCount - stillMissing}${fromWeb} ` +
          `(the bad pieces hold bytes of ${namedFiles(checked.badFiles)})\n`,
      );
    } else if (fill) {
      process.stderr.write(`btmount: ${fill.filled} missing or damaged pieces were fetched from web seeds; serving every piece (the dataset itself is unchanged)\n`);
    }

    const port = await session.serve();
    const metricsNote = metricsServer ? `, metrics http://${opts.metrics!.host}:${metricsServer.address.port}/metrics` : '';
    process.stdout.write(`seeding ${metainfo.name} (${metainfo.infoHash}) on port ${port} (log ${logFile}${metricsNote})\n`);

    const tty = process.stdout.isTTY;
    if (tty) statusTimer = setInterval(() => process.stdout.write(`\r\x1b[K${statusLine(session.stats()!)}`), 1000);
    if (!stop.signal.aborted) await new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
    if (tty) process.stdout.write('\r\x1b[K');
    process.stdout.write(`stopped: uploaded ${formatSize(session.stats()!.uploaded)}\n`);
  } finally {
    clearInterval(statusTimer);
    await metricsServer?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await session.close();
    log.info('stopped');
    log.flush();
  }
}

async function verifyWithProgress(session: SeedSession, metainfo: Metainfo, signal: AbortSignal): Promise<VerifyProgress> {
  const total = metainfo.layout.totalLength;
  const bar = process.stderr.isTTY
    ? new SingleBar({ format: 'verifying [{bar}] {percentage}% {done} of {size}', hideCursor: true, clearOnComplete: true, stream: process.stderr })
    : undefined;
  bar?.start(total, 0, { done: formatSize(0), size: formatSize(total) });
  try {
    return await session.verify((p) => bar?.update(p.checkedBytes, { done: formatSize(p.checkedBytes), size: formatSize(total) }), signal);
  } catch (err) {
    if (signal.aborted) return { checkedBytes: 0, totalBytes: total, goodPieces: 0, badPieces: 0, badFiles: [] };
    throw err;
  } finally {
    bar?.stop();
  }
}

/** Fills missing pieces from the web seeds (if any), with a progress line on a terminal. */
async function fillWithProgress(session: SeedSession, missing: number, signal: AbortSignal): Promise<FillResult | undefined> {
  if (session.webSeeds.size === 0) return undefined;
  const bar = process.stderr.isTTY
    ? new SingleBar({ format: 'filling from web seeds [{bar}] {value} of {total} missing pieces', hideCursor: true, clearOnComplete: true, stream: process.stderr })
    : undefined;
  bar?.start(missing, 0);
  try {
    return await session.fillMissing(signal, (r) => bar?.update(r.filled));
  } finally {
    bar?.stop();
  }
}

/** How many files a warning names before "and N more". */
const NAMED_FILES = 5;

/** `2 files: a.jpg, b.jpg` or `7 files: a, b, c, d, e and 2 more`. */
function namedFiles(files: readonly string[]): string {
  const shown = files.slice(0, NAMED_FILES).join(', ');
  const more = files.length > NAMED_FILES ? ` and ${files.length - NAMED_FILES} more` : '';
  return `${count(files.length, 'file')}: ${shown}${more}`;
}

function statusLine(s: SwarmStats): string {
  const up = s.peers.reduce((sum, p) => sum + p.uploadRate, 0);
  const interested = s.peers.filter((p) => p.interested).length;
  return `${count(s.peers.length, 'peer')} (${interested} downloading), up ${formatSize(up)}/s, uploaded ${formatSize(s.uploaded)}`;
}

function parseShareMode(text: string): ShareMode {
  if (text === 'distinct' || text === 'all') return text;
  throw new UserError('invalid --share', `expected distinct or all: ${text}`);
}
