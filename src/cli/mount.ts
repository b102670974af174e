import path from 'node:path';
import type { Command } from 'commander';
import { isDaemonChild, reportToParent, runMountProcess, spawnMountDaemon } from '../daemon/mount-daemon.js';
import { mountpointProblem } from '../fs/mountpoint.js';
import { loadSource, loadSourceInfoHash, type TorrentSource } from '../metainfo/index.js';
import { DEFAULT_CACHE_BUDGET_RULE, defaultCacheRoot } from '../store/cache-location.js';
import { addDiscoveryOptions, discoveryFromOptions, type DiscoveryCliOptions } from './discovery-options.js';
import { UserError } from '../user-error.js';
import { metadataProgressText } from './format.js';
import { collectHostPort, collectWebSeedUrl, parseId, parseMetricsAddress, parseMode, parsePort, parseRate, parseSeconds, parseSizeOption, type HostPort } from './options.js';
import { applyMountOptions } from './mount-options.js';
import { accessProblem, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, readFuseConf, type FuseAccessOptions } from '../fs/fuse-options.js';

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
  allowOther?: boolean;
  allowRoot?: boolean;
  uid?: number;
  gid?: number;
  fileMode?: number;
  dirMode?: number;
  metrics?: HostPort;
  webSeed?: string[];
  webSeedLimit?: number;
  /** `-o` lists (mount(8), fstab). */
  options?: string[];
}

const ACTION = 'cannot mount';

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
    .option('--web-seed <url>', "an HTTP(S) origin of the torrent's files, BEP 19 (repeatable; the torrent's url-list and a magnet's ws= count too)", collectWebSeedUrl(ACTION))
    .option('--web-seed-limit <rate>', 'bytes/s from all web seeds together, e.g. 50M (default: none)', (v) => parseRate(v, '--web-seed-limit'))
    .option(
      '--metadata-timeout <sec>',
      'magnet or infohash: give up when no peer has given the torrent metadata after this long (seconds)',
      (v) => parseSeconds(v, '--metadata-timeout'),
      120,
    )
    .option('--log-file <file>', 'JSON log (default: <cache>/logs/<infohash>.log; stderr with --foreground)')
    .option('--foreground', 'stay attached to the terminal; Ctrl-C unmounts')
    .option('--allow-other', 'let every user read the mount, not only the one who mounted it (non-root: needs user_allow_other in /etc/fuse.conf)')
    .option('--allow-root', 'let root read the mount too (non-root: needs user_allow_other in /etc/fuse.conf)')
    .option('--uid <id>', 'owner of every file and directory (default: the mounting user)', (v) => parseId(v, '--uid'))
    .option('--gid <id>', 'group of every file and directory (default: the mounting group)', (v) => parseId(v, '--gid'))
    .option('--file-mode <mode>', 'permission bits of files, octal (default 0444)', (v) => parseMode(v, '--file-mode'))
    .option('--dir-mode <mode>', 'permission bits of directories, octal (default 0555)', (v) => parseMode(v, '--dir-mode'))
    .option('--metrics <[host:]port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (default host 127.0.0.1; off unless given)', (v) => parseMetricsAddress(v))
    .option('-o, --options <list>', 'mount(8)/fstab style: cache=DIR,cache_size=20G,peer=HOST:PORT,no_dht,allow_other (any long option; repeatable)', collectList)
    .action(async (source: string, mountpoint: string, given: MountOptions, cmd: Command) => {
      const debug = Boolean(cmd.optsWithGlobals().debug);
      applyMountOptions(cmd, given.options ?? [], ACTION);
      await mount(source, path.resolve(mountpoint), cmd.opts<MountOptions>(), debug);
    });
  addDiscoveryOptions(command);
}

async function mount(spec: string, mountpoint: string, opts: MountOptions, debug: boolean): Promise<void> {
  const daemonChild = isDaemonChild();
  let source: TorrentSource | undefined;
  let cacheRoot: string;
  let logFile: string | undefined;
  const access = accessFromOptions(opts);
  try {
    // Without --foreground the daemon parses the torrent; here only its infohash is needed (at a million files a parse is seconds).
    if (opts.foreground) source = await readSource(spec);
    const infoHash = source ? (source.kind === 'torrent' ? source.metainfo.infoHash : source.infoHash) : await readInfoHash(spec);
    const problem = (await mountpointProblem(mountpoint)) ?? accessProblem(access, process.getuid?.() ?? 0, await readFuseConf());
    if (problem) throw new UserError(ACTION, problem);
    cacheRoot = path.resolve(opts.cache ?? defaultCacheRoot());
    logFile = opts.logFile ?? (opts.foreground && !daemonChild ? undefined : path.join(cacheRoot, 'logs', `${infoHash}.log`));
  } catch (err) {
    if (!daemonChild) throw err;
    return reportToParent(err);
  }

  if (!opts.foreground) {
    const ready = await spawnMountDaemon(process.argv.slice(2), logFile!, metadataProgressText);
    process.stdout.write(`mounted ${ready.name} at ${mountpoint} (daemon pid ${ready.pid}, log ${ready.logFile})\n`);
    return;
  }
  await runMountProcess({
    source: source!,
    mountpoint,
    cacheRoot,
    logFile,
    debug,
    cacheBudget: opts.cacheSize,
    peers: opts.peer ?? [],
    port: opts.port,
    ...(opts.host ? { host: opts.host } : {}),
    readTimeoutMs: opts.readTimeout * 1000,
    uploadLimit: opts.uploadLimit ?? 0,
    downloadLimit: opts.downloadLimit ?? 0,
    metadataTimeoutMs: opts.metadataTimeout * 1000,
    webSeeds: opts.webSeed ?? [],
    webSeedLimit: opts.webSeedLimit ?? 0,
    extraTrackers: opts.tracker ?? [],
    access,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    describeProgress: metadataProgressText,
    discoveryFor: (torrent, staticPeers, log) =>
      discoveryFromOptions(torrent.infoHash, cacheRoot, torrent.announce, torrent.private, staticPeers, opts, log),
  });
}

async function readSource(spec: string): Promise<TorrentSource> {
  try {
    return await loadSource(spec);
  } catch (err) {
    throw new UserError(`cannot read torrent ${spec}`, (err as Error).message);
  }
}

async function readInfoHash(spec: string): Promise<string> {
  try {
    return await loadSourceInfoHash(spec);
  } catch (err) {
    throw new UserError(`cannot read torrent ${spec}`, (err as Error).message);
  }
}

function collectList(text: string, previous: string[] = []): string[] {
  return [...previous, text];
}

/** Who may read the mount, from --allow-other, --uid, --file-mode and their defaults. */
function accessFromOptions(opts: MountOptions): FuseAccessOptions {
  return {
    allowOther: opts.allowOther ?? false,
    allowRoot: opts.allowRoot ?? false,
    uid: opts.uid ?? process.getuid?.() ?? 0,
    gid: opts.gid ?? process.getgid?.() ?? 0,
    fileMode: opts.fileMode ?? DEFAULT_FILE_MODE,
    dirMode: opts.dirMode ?? DEFAULT_DIR_MODE,
  };
}
