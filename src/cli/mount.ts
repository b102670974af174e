import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { MountSession } from '../daemon/mount-session.js';
import { removeRecord, socketPath, writeRecord } from '../daemon/mount-registry.js';
import {
  Discovery,
  MetadataTimeoutError,
  PortReservation,
  fetchMetainfo,
  loadCachedTorrent,
  parsePeerAddress,
  type MetadataProgress,
  type PeerAddress,
} from '../discovery/index.js';
import { mountpointProblem } from '../fs/mountpoint.js';
import { createLogger, type Logger } from '../log.js';
import { InvalidTorrentError, loadSource, type Metainfo, type TorrentSource } from '../metainfo/index.js';
import { DEFAULT_CACHE_BUDGET_RULE, defaultCacheBudget, defaultCacheRoot } from '../store/cache-location.js';
import { addDiscoveryOptions, discoveryFromOptions, type DiscoveryCliOptions } from './discovery-options.js';
import { UserError } from './errors.js';
import { collectHostPort, parsePort, parseRate, parseSeconds, parseSizeOption, type HostPort } from './options.js';

interface MountOptions extends DiscoveryCliOptions {
  cache?: string;
  cacheSize?: number;
  peer?: HostPort[];
  port?: number;
  readTimeout: number;
  uploadLimit?: number;
  downloadLimit?: number;
  logFile?: string;
  foreground?: boolean;
  metadataTimeout: number;
}

/** What a daemon child tells the process that started it, over the IPC channel. */
type DaemonMessage =
  | { type: 'ready'; pid: number; logFile: string; name: string }
  | { type: 'error'; message: string }
  | { type: 'progress'; message: string };

const ACTION = 'cannot mount';
const BIN = fileURLToPath(new URL('../../../bin/btmount.js', import.meta.url));

export function registerMount(program: Command): void {
  const command = program.command('mount');
  command
    .description('mount a torrent as a read-only directory (returns once it is ready; also: btmount <source> <mountpoint>)')
    .argument('<source>', '.torrent file, magnet URI or 40-hex infohash')
    .argument('<mountpoint>', 'an empty directory')
    .option('--cache <dir>', `piece cache directory (default ${defaultCacheRoot()})`)
    .option('--cache-size <size>', `cache budget, e.g. 20G or 512M (${DEFAULT_CACHE_BUDGET_RULE})`, (v) => parseSizeOption(v, '--cache-size'))
    .option('--peer <host:port>', 'a peer to connect to (repeatable)', collectHostPort('--peer'))
    .option('--port <n>', 'listen port for other peers (default: first free of 6881-6889; 0 = any)', (v) => parsePort(v))
    .option('--host <address>', 'listen address; peers and trackers are also contacted from it (default: all interfaces)')
    .option('--read-timeout <sec>', 'a read waits this long for data, then fails with EIO (seconds)', (v) => parseSeconds(v, '--read-timeout'), 60)
    .option('--upload-limit <rate>', 'bytes/s, e.g. 50M (default: none)', (v) => parseRate(v, '--upload-limit'))
    .option('--download-limit <rate>', 'bytes/s, e.g. 100M (default: none)', (v) => parseRate(v, '--download-limit'))
    .option(
      '--metadata-timeout <sec>',
      'magnet or infohash: give up when no peer has given the torrent metadata after this long (seconds)',
      (v) => parseSeconds(v, '--metadata-timeout'),
      120,
    )
    .option('--log-file <file>', 'JSON log (default: <cache>/logs/<infohash>.log; stderr with --foreground)')
    .option('--foreground', 'stay attached to the terminal; Ctrl-C unmounts')
    .action(async (source: string, mountpoint: string, opts: MountOptions, cmd: Command) => {
      const debug = Boolean(cmd.optsWithGlobals().debug);
      await mount(source, path.resolve(mountpoint), opts, debug);
    });
  addDiscoveryOptions(command);
}

async function mount(spec: string, mountpoint: string, opts: MountOptions, debug: boolean): Promise<void> {
  const daemonChild = typeof process.send === 'function';
  try {
    const source = await readSource(spec);
    const infoHash = source.kind === 'torrent' ? source.metainfo.infoHash : source.infoHash;
    const problem = await mountpointProblem(mountpoint);
    if (problem) throw new UserError(ACTION, problem);
    const cacheRoot = path.resolve(opts.cache ?? defaultCacheRoot());
    const logFile = opts.logFile ?? (opts.foreground && !daemonChild ? undefined : path.join(cacheRoot, 'logs', `${infoHash}.log`));

    if (!opts.foreground) return await startDaemon(mountpoint, logFile!);

    const log = createLogger({ ...(logFile ? { file: logFile } : {}), level: debug ? 'debug' : 'info' });
    const report = (message: string): void => {
      if (!daemonChild) process.stderr.write(`${message}\n`);
      else if (process.connected) process.send!({ type: 'progress', message } satisfies DaemonMessage);
    };
    // The mount command waiting for us was interrupted (Ctrl-C during a long metadata wait): give up.
    const parentGone = new AbortController();
    if (daemonChild) process.once('disconnect', () => parentGone.abort(new Error('the mount command was interrupted')));
    const { metainfo, discovery, peers, port } = await resolveTorrent(source, cacheRoot, opts, log, report, parentGone.signal);
    const session = await startSession(metainfo, mountpoint, cacheRoot, opts, log, discovery, peers, port);
    await writeRecord({
      mountpoint,
      pid: process.pid,
      infoHash: metainfo.infoHash,
      name: metainfo.name,
      logFile: logFile ?? '(stderr)',
      socket: socketPath(mountpoint),
      startedAt: new Date().toISOString(),
    });
    if (daemonChild) {
      process.send!({ type: 'ready', pid: process.pid, logFile: logFile!, name: metainfo.name } satisfies DaemonMessage);
      process.disconnect();
    } else {
      process.stderr.write(`btmount: mounted ${metainfo.name} at ${mountpoint}; Ctrl-C to unmount\n`);
    }
    await waitForStop(session, log);
    await session.stop();
    await removeRecord(mountpoint);
    log.flush();
    // fuse-native keeps its native thread referenced when the mount was removed from
    // outside (its own unmount then fails): nothing is left to do, so leave.
    setTimeout(() => process.exit(), 500).unref();
  } catch (err) {
    if (!daemonChild) throw err;
    const message = err instanceof UserError ? `${err.action}: ${err.reason}` : `${ACTION}: ${(err as Error).message}`;
    if (process.connected) process.send!({ type: 'error', message } satisfies DaemonMessage);
    process.exitCode = 1;
  }
}

async function readSource(spec: string): Promise<TorrentSource> {
  try {
    return await loadSource(spec);
  } catch (err) {
    throw new UserError(`cannot read torrent ${spec}`, (err as Error).message);
  }
}

interface ResolvedTorrent {
  metainfo: Metainfo;
  /** Started already when the metadata had to come from peers. */
  discovery: Discovery;
  /** --peer and the magnet's x.pe peers, liars left out. */
  peers: PeerAddress[];
  /** The port to listen on (the one trackers and the DHT were told, if they were). */
  port: number | undefined;
}

/**
 * The torrent to mount: the .torrent given, or for a magnet / bare infohash
 * the one saved by an earlier mount, or else the info dictionary fetched from
 * peers found by every source (BEP 9), then saved for next time.
 */
async function resolveTorrent(
  source: TorrentSource,
  cacheRoot: string,
  opts: MountOptions,
  log: Logger,
  report: (message: string) => void,
  signal: AbortSignal,
): Promise<ResolvedTorrent> {
  const peers: PeerAddress[] = [...(opts.peer ?? [])];
  if (source.kind === 'torrent') {
    const { metainfo } = source;
    return { metainfo, discovery: discoveryFromOptions(metainfo.infoHash, cacheRoot, metainfo.announce, metainfo.private, peers.length, opts, log), peers, port: opts.port };
  }
  for (const text of source.peers) {
    const peer = parsePeerAddress(text);
    if (peer) peers.push(peer);
    else log.warn({ peer: text }, 'ignoring an unusable x.pe address in the magnet');
  }
  const saved = await loadCachedTorrent(cacheRoot, source.infoHash, log);
  if (saved) {
    log.info({ infoHash: source.infoHash }, 'using the torrent saved by an earlier mount');
    const trackers = [...new Set([...saved.announce, ...source.announce])];
    return { metainfo: saved, discovery: discoveryFromOptions(saved.infoHash, cacheRoot, trackers, saved.private, peers.length, opts, log), peers, port: opts.port };
  }

  const discovery = discoveryFromOptions(source.infoHash, cacheRoot, source.announce, false, peers.length, opts, log);
  let reservation: PortReservation;
  try {
    reservation = await PortReservation.take(opts.port, opts.host);
  } catch (err) {
    throw new UserError(ACTION, (err as Error).message);
  }
  const say = (p: MetadataProgress): void =>
    report(`fetching metadata: ${p.connected} peers${p.known > p.connected ? ` (${p.known} known)` : ''}${p.rejected > 0 ? `, ${p.rejected} rejected` : ''}`);
  say({ connected: 0, known: 0, rejected: 0 });
  try {
    const fetched = await fetchMetainfo({
      infoHash: source.infoHash,
      cacheRoot,
      discovery,
      reservation,
      staticPeers: peers,
      trackers: [...source.announce, ...(opts.tracker ?? [])],
      timeoutMs: opts.metadataTimeout * 1000,
      signal,
      log,
      onProgress: say,
    });
    const { metainfo } = fetched;
    for (const host of fetched.liars) discovery.ignoreHost(host);
    if (metainfo.private) await discovery.restrictToTrackers();
    return { metainfo, discovery, peers: peers.filter((p) => !fetched.liars.has(p.host)), port: reservation.port };
  } catch (err) {
    await discovery.stop().catch(() => undefined);
    if (err instanceof MetadataTimeoutError) throw new UserError(ACTION, `could not fetch the torrent's metadata: ${err.message}`);
    if (err instanceof InvalidTorrentError) throw new UserError(ACTION, err.message);
    throw err;
  } finally {
    await reservation.release();
  }
}

/** Trackers, DHT and PEX as the options allow; a private torrent (BEP 27) gets trackers only. */
async function startSession(
  metainfo: Metainfo,
  mountpoint: string,
  cacheRoot: string,
  opts: MountOptions,
  log: Logger,
  discovery: Discovery,
  peers: PeerAddress[],
  port: number | undefined,
): Promise<MountSession> {
  try {
    return await MountSession.start({
      metainfo,
      mountpoint,
      cacheRoot,
      cacheBudget: opts.cacheSize ?? (await defaultCacheBudget(cacheRoot)),
      peers,
      port,
      ...(opts.host ? { host: opts.host } : {}),
      readTimeoutMs: opts.readTimeout * 1000,
      uploadLimit: opts.uploadLimit ?? 0,
      downloadLimit: opts.downloadLimit ?? 0,
      log,
      discovery,
    });
  } catch (err) {
    await discovery.stop().catch(() => undefined);
    log.error({ err }, 'mount failed');
    throw new UserError(ACTION, (err as Error).message);
  }
}

/** `--tracker URL`, repeatable: HTTP(S) and UDP trackers only (btmount does not do WebRTC). */
/** Until SIGINT/SIGTERM or an unmount from outside (fusermount -u). */
function waitForStop(session: MountSession, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    const stop = (why: string): void => {
      log.info(`stopping: ${why}`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    void session.whenUnmountedExternally().then(() => stop('unmounted from outside'));
  });
}

/** Re-runs this command as a detached daemon and returns once it reports ready (or why not). */
async function startDaemon(mountpoint: string, logFile: string): Promise<void> {
  const args = [BIN, ...process.argv.slice(2), '--foreground', '--log-file', logFile];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const tty = process.stderr.isTTY;
  let progressShown = false;
  const message = await new Promise<Exclude<DaemonMessage, { type: 'progress' }>>((resolve) => {
    child.on('message', (m: DaemonMessage) => {
      if (m.type !== 'progress') return resolve(m);
      // "fetching metadata: 3 peers" while a magnet waits: one line, rewritten in place on a terminal.
      process.stderr.write(tty ? `\r\x1b[K${m.message}` : `${m.message}\n`);
      progressShown = true;
    });
    child.once('exit', (code) => resolve({ type: 'error', message: `${ACTION}: the daemon exited (code ${code}) before it was ready; see ${logFile}` }));
  });
  if (tty && progressShown) process.stderr.write('\r\x1b[K');
  child.removeAllListeners();
  child.unref();
  child.channel?.unref();
  if (message.type === 'error') {
    const [action, ...rest] = message.message.split(': ');
    throw new UserError(action!, rest.join(': '));
  }
  process.stdout.write(`mounted ${message.name} at ${mountpoint} (daemon pid ${message.pid}, log ${message.logFile})\n`);
}
