import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { MountSession } from '../daemon/mount-session.js';
import { removeRecord, socketPath, writeRecord } from '../daemon/mount-registry.js';
import { mountpointProblem } from '../fs/mountpoint.js';
import { createLogger, type Logger } from '../log.js';
import { loadSource, type Metainfo } from '../metainfo/index.js';
import { DEFAULT_CACHE_BUDGET_RULE, defaultCacheBudget, defaultCacheRoot } from '../store/cache-location.js';
import { UserError } from './errors.js';
import { collectHostPort, parsePort, parseRate, parseSeconds, parseSizeOption, type HostPort } from './options.js';

interface MountOptions {
  cache?: string;
  cacheSize?: number;
  peer?: HostPort[];
  port?: number;
  readTimeout: number;
  uploadLimit?: number;
  downloadLimit?: number;
  logFile?: string;
  foreground?: boolean;
}

/** What a daemon child tells the process that started it, over the IPC channel. */
type DaemonMessage = { type: 'ready'; pid: number; logFile: string; name: string } | { type: 'error'; message: string };

const ACTION = 'cannot mount';
const BIN = fileURLToPath(new URL('../../../bin/btmount.js', import.meta.url));

export function registerMount(program: Command): void {
  program
    .command('mount')
    .description('mount a torrent as a read-only directory (returns once it is ready; also: btmount <source> <mountpoint>)')
    .argument('<source>', '.torrent file, magnet URI or 40-hex infohash')
    .argument('<mountpoint>', 'an empty directory')
    .option('--cache <dir>', `piece cache directory (default ${defaultCacheRoot()})`)
    .option('--cache-size <size>', `cache budget, e.g. 20G or 512M (${DEFAULT_CACHE_BUDGET_RULE})`, (v) => parseSizeOption(v, '--cache-size'))
    .option('--peer <host:port>', 'a peer to connect to (repeatable)', collectHostPort('--peer'))
    .option('--port <n>', 'listen port for other peers (default: first free of 6881-6889; 0 = any)', (v) => parsePort(v))
    .option('--read-timeout <sec>', 'a read waits this long for data, then fails with EIO (seconds)', (v) => parseSeconds(v, '--read-timeout'), 60)
    .option('--upload-limit <rate>', 'bytes/s, e.g. 50M (default: none)', (v) => parseRate(v, '--upload-limit'))
    .option('--download-limit <rate>', 'bytes/s, e.g. 100M (default: none)', (v) => parseRate(v, '--download-limit'))
    .option('--log-file <file>', 'JSON log (default: <cache>/logs/<infohash>.log; stderr with --foreground)')
    .option('--foreground', 'stay attached to the terminal; Ctrl-C unmounts')
    .action(async (source: string, mountpoint: string, opts: MountOptions, cmd: Command) => {
      const debug = Boolean(cmd.optsWithGlobals().debug);
      await mount(source, path.resolve(mountpoint), opts, debug);
    });
}

async function mount(spec: string, mountpoint: string, opts: MountOptions, debug: boolean): Promise<void> {
  const daemonChild = typeof process.send === 'function';
  try {
    const metainfo = await loadMountable(spec);
    const problem = await mountpointProblem(mountpoint);
    if (problem) throw new UserError(ACTION, problem);
    const cacheRoot = path.resolve(opts.cache ?? defaultCacheRoot());
    const logFile = opts.logFile ?? (opts.foreground && !daemonChild ? undefined : path.join(cacheRoot, 'logs', `${metainfo.infoHash}.log`));

    if (!opts.foreground) return await startDaemon(mountpoint, logFile!);

    const log = createLogger({ ...(logFile ? { file: logFile } : {}), level: debug ? 'debug' : 'info' });
    const session = await startSession(metainfo, mountpoint, cacheRoot, opts, log);
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
    process.send!({ type: 'error', message } satisfies DaemonMessage);
    process.exitCode = 1;
  }
}

async function loadMountable(spec: string): Promise<Metainfo> {
  let source;
  try {
    source = await loadSource(spec);
  } catch (err) {
    throw new UserError(`cannot read torrent ${spec}`, (err as Error).message);
  }
  if (source.kind === 'hash') {
    throw new UserError(ACTION, 'mounting by magnet URI or bare infohash needs metadata from peers, which this version cannot fetch yet; give the .torrent file');
  }
  return source.metainfo;
}

async function startSession(metainfo: Metainfo, mountpoint: string, cacheRoot: string, opts: MountOptions, log: Logger): Promise<MountSession> {
  try {
    return await MountSession.start({
      metainfo,
      mountpoint,
      cacheRoot,
      cacheBudget: opts.cacheSize ?? (await defaultCacheBudget(cacheRoot)),
      peers: opts.peer ?? [],
      port: opts.port,
      readTimeoutMs: opts.readTimeout * 1000,
      uploadLimit: opts.uploadLimit ?? 0,
      downloadLimit: opts.downloadLimit ?? 0,
      log,
    });
  } catch (err) {
    log.error({ err }, 'mount failed');
    throw new UserError(ACTION, (err as Error).message);
  }
}

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
  const message = await new Promise<DaemonMessage>((resolve) => {
    child.once('message', (m: DaemonMessage) => resolve(m));
    child.once('exit', (code) => resolve({ type: 'error', message: `${ACTION}: the daemon exited (code ${code}) before it was ready; see ${logFile}` }));
  });
  child.removeAllListeners();
  child.unref();
  child.channel?.unref();
  if (message.type === 'error') {
    const [action, ...rest] = message.message.split(': ');
    throw new UserError(action!, rest.join(': '));
  }
  process.stdout.write(`mounted ${message.name} at ${mountpoint} (daemon pid ${message.pid}, log ${message.logFile})\n`);
}
