import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { removeRecord, socketPath, writeRecord } from '../control/mount-registry.js';
import type { MetadataProgress, PeerAddress } from '../discovery/index.js';
import { createLogger } from '../log.js';
import type { FuseAccessOptions } from '../fs/fuse-options.js';
import type { MetricsAddress } from '../metrics/metrics-server.js';
import type { TorrentSource } from '../metainfo/index.js';
import { defaultCacheBudget } from '../store/cache-location.js';
import { UserError } from '../user-error.js';
import { MountSession } from './mount-session.js';
import { resolveTorrent, type DiscoveryFactory } from './resolve-torrent.js';
import { untilStopped } from './stop-signal.js';

/**
 * The process that serves a mount, from its first line to its last: resolve
 * the torrent, start the session, register the mount, say it is ready, wait
 * for a stop, stop in order. `btmount mount` runs it in a detached child of
 * itself (spawnMountDaemon) or, with --foreground, in place.
 */

/** What a daemon child tells the process that started it, over the IPC channel. */
export type DaemonMessage =
  | { type: 'ready'; pid: number; logFile: string; name: string }
  | { type: 'error'; message: string }
  | { type: 'progress'; progress: MetadataProgress };

export interface MountProcessOptions {
  source: TorrentSource;
  mountpoint: string;
  cacheRoot: string;
  /** JSON log; undefined = stderr (--foreground on a terminal). */
  logFile: string | undefined;
  debug: boolean;
  /** --cache-size; undefined = the default for the cache's disk. */
  cacheBudget: number | undefined;
  peers: readonly PeerAddress[];
  port: number | undefined;
  /** --host: listen address, also the source of outgoing connections and announces. */
  host?: string;
  readTimeoutMs: number;
  uploadLimit: number;
  downloadLimit: number;
  metadataTimeoutMs: number;
  /** --web-seed URLs (checked already); the torrent's url-list and a magnet's ws= are added here. */
  webSeeds: readonly string[];
  /** --web-seed-limit: bytes/s from all web seeds together; 0 = none. */
  webSeedLimit: number;
  extraTrackers: readonly string[];
  /** Who may read the mount (--allow-other, --uid, --file-mode, …). */
  access: FuseAccessOptions;
  /** --metrics: serve Prometheus metrics there. */
  metrics?: MetricsAddress;
  discoveryFor: DiscoveryFactory;
  /** The progress line of a magnet's metadata wait (`fetching metadata: 3 peers`). */
  describeProgress(progress: MetadataProgress): string;
}

const ACTION = 'cannot mount';
const BIN = fileURLToPath(new URL('../../../bin/btmount.js', import.meta.url));

/** True in the child spawnMountDaemon started (it has an IPC channel to its parent). */
export function isDaemonChild(): boolean {
  return typeof process.send === 'function';
}

/** Serves a mount until SIGINT/SIGTERM or an unmount from outside. In a daemon child, errors go to the parent. */
export async function runMountProcess(opts: MountProcessOptions): Promise<void> {
  const daemonChild = isDaemonChild();
  try {
    const log = createLogger({ ...(opts.logFile ? { file: opts.logFile } : {}), level: opts.debug ? 'debug' : 'info' });
    const onProgress = (progress: MetadataProgress): void => {
      if (!daemonChild) process.stderr.write(`${opts.describeProgress(progress)}\n`);
      else if (process.connected) process.send!({ type: 'progress', progress } satisfies DaemonMessage);
    };
    // The mount command waiting for us was interrupted (Ctrl-C during a long metadata wait): give up.
    const parentGone = new AbortController();
    if (daemonChild) process.once('disconnect', () => parentGone.abort(new Error('the mount command was interrupted')));
    const magnetWebSeeds = opts.source.kind === 'hash' ? opts.source.urlList : [];
    const { metainfo, discovery, peers, port } = await resolveTorrent(opts.source, {
      cacheRoot: opts.cacheRoot,
      peers: opts.peers,
      port: opts.port,
      ...(opts.host ? { host: opts.host } : {}),
      extraTrackers: opts.extraTrackers,
      metadataTimeoutMs: opts.metadataTimeoutMs,
      webSeedCount: magnetWebSeeds.length + opts.webSeeds.length,
      discoveryFor: opts.discoveryFor,
      log,
      onProgress,
      signal: parentGone.signal,
    });
    let session: MountSession;
    try {
      session = await MountSession.start({
        metainfo,
        mountpoint: opts.mountpoint,
        cacheRoot: opts.cacheRoot,
        cacheBudget: opts.cacheBudget ?? (await defaultCacheBudget(opts.cacheRoot)),
        peers,
        port,
        ...(opts.host ? { host: opts.host } : {}),
        readTimeoutMs: opts.readTimeoutMs,
        uploadLimit: opts.uploadLimit,
        downloadLimit: opts.downloadLimit,
        webSeeds: [metainfo.urlList, magnetWebSeeds, opts.webSeeds],
        webSeedLimit: opts.webSeedLimit,
        access: opts.access,
        ...(opts.metrics ? { metrics: opts.metrics } : {}),
        log,
        discovery,
      });
    } catch (err) {
      await discovery.stop().catch(() => undefined);
      log.error({ err }, 'mount failed');
      throw new UserError(ACTION, (err as Error).message);
    }
    await writeRecord({
      mountpoint: opts.mountpoint,
      pid: process.pid,
      infoHash: metainfo.infoHash,
      name: metainfo.name,
      logFile: opts.logFile ?? '(stderr)',
      socket: socketPath(opts.mountpoint),
      startedAt: new Date().toISOString(),
    });
    if (daemonChild) {
      process.send!({ type: 'ready', pid: process.pid, logFile: opts.logFile!, name: metainfo.name } satisfies DaemonMessage);
      process.disconnect();
    } else {
      process.stderr.write(`btmount: mounted ${metainfo.name} at ${opts.mountpoint}; Ctrl-C to unmount\n`);
    }
    const why = await untilStopped(session.whenUnmountedExternally().then(() => 'unmounted from outside'));
    log.info(`stopping: ${why}`);
    await session.stop();
    await removeRecord(opts.mountpoint);
    log.flush();
    // fuse-native keeps its native thread referenced when the mount was removed from
    // outside (its own unmount then fails): nothing is left to do, so leave.
    setTimeout(() => process.exit(), 500).unref();
  } catch (err) {
    if (!daemonChild) throw err;
    reportToParent(err);
  }
}

/** In a daemon child: tells the waiting `btmount mount` why the mount failed, and exits 1. */
export function reportToParent(err: unknown): void {
  const message = err instanceof UserError ? `${err.action}: ${err.reason}` : `${ACTION}: ${(err as Error).message}`;
  if (process.connected) process.send!({ type: 'error', message } satisfies DaemonMessage);
  process.exitCode = 1;
}

/**
 * Re-runs this command (`args`, as given after `btmount`) as a detached daemon
 * with --foreground and returns once it reports ready, or throws why not.
 * Its progress lines are shown on stderr meanwhile.
 */
export async function spawnMountDaemon(
  args: readonly string[],
  logFile: string,
  describeProgress: (progress: MetadataProgress) => string,
): Promise<{ pid: number; logFile: string; name: string }> {
  const child = spawn(process.execPath, [BIN, ...args, '--foreground', '--log-file', logFile], { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const tty = process.stderr.isTTY;
  let progressShown = false;
  const message = await new Promise<Exclude<DaemonMessage, { type: 'progress' }>>((resolve) => {
    child.on('message', (m: DaemonMessage) => {
      if (m.type !== 'progress') return resolve(m);
      // "fetching metadata: 3 peers" while a magnet waits: one line, rewritten in place on a terminal.
      const line = describeProgress(m.progress);
      process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
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
  return message;
}
