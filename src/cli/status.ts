import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { ControlRequestError, ControlUnavailableError, requestOnce } from '../control/client.js';
import type { MountStatus, WarmJobStatus } from '../control/status-schema.js';
import { UserError } from '../user-error.js';
import { formatSize } from '../byte-size.js';
import { parseSeconds } from './options.js';
import { count, formatDuration, jobProgressText } from './format.js';

interface StatusOptions {
  json?: boolean;
  watch?: boolean;
  interval: number;
}

const ACTION = 'cannot get status';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('what a mount is doing: peers, rates, cache, waiting reads, warm jobs')
    .argument('<mountpoint>', 'a btmount mount point')
    .option('--json', 'one JSON object (schema in the README); with --watch, one per line')
    .option('--watch', 'refresh until Ctrl-C')
    .option('--interval <sec>', 'seconds between refreshes with --watch', (v) => parseSeconds(v, '--interval'), 2)
    .action(async (mountpoint: string, opts: StatusOptions) => {
      await status(path.resolve(mountpoint), opts);
    });
}

async function fetchStatus(mountpoint: string): Promise<MountStatus> {
  try {
    const reply = await requestOnce(mountpoint, { op: 'status' });
    if (reply.type === 'result' && 'status' in reply) return reply.status;
    throw new ControlUnavailableError(`the daemon sent an unexpected reply (${reply.type})`);
  } catch (err) {
    if (err instanceof ControlUnavailableError || err instanceof ControlRequestError) throw new UserError(ACTION, err.message);
    throw err;
  }
}

async function status(mountpoint: string, opts: StatusOptions): Promise<void> {
  if (!opts.watch) {
    const s = await fetchStatus(mountpoint);
    process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : renderStatus(s));
    return;
  }
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.once('SIGINT', onSigint);
  const tty = process.stdout.isTTY && !opts.json;
  try {
    for (let first = true; !stop.signal.aborted; first = false) {
      const s = await fetchStatus(mountpoint);
      if (opts.json) process.stdout.write(JSON.stringify(s) + '\n');
      else if (tty) process.stdout.write('\x1b[H\x1b[2J' + renderStatus(s));
      else process.stdout.write((first ? '' : '\n') + renderStatus(s));
      await sleep(opts.interval * 1000, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}

const rate = (n: number): string => `${formatSize(n)}/s`;

/** The human view of a status object. */
export function renderStatus(s: MountStatus): string {
  const lines: string[] = [];
  const t = s.torrent;
  lines.push(`${s.mountpoint}: ${t.name}`);
  lines.push(`  infohash   ${t.infoHash}`);
  lines.push(`  daemon     pid ${s.pid}, up ${formatDuration(s.uptimeSeconds)}`);
  lines.push(
    `  pieces     ${s.pieces.have} of ${s.pieces.total} (${pct(s.pieces.have, s.pieces.total)}), ` +
      `${formatSize(t.pieceLength)} each; ${t.fileCount} files, ${formatSize(t.totalBytes)}`,
  );
  const c = s.cache;
  const hit = c.hitRate === null ? 'no reads yet' : `hit rate ${(c.hitRate * 100).toFixed(1)}% of ${c.hits + c.misses} reads`;
  // The budget in force is whole pieces, and no more than the torrent: say so only when the disk lowered it.
  const wholeBudget = Math.min(Math.floor(c.budgetBytes / t.pieceLength), t.pieceCount) * t.pieceLength;
  const lowered = c.effectiveBudgetBytes < wholeBudget ? ` (lowered to ${formatSize(c.effectiveBudgetBytes)}: the disk filled up)` : '';
  lines.push(`  cache      ${formatSize(c.usedBytes)} of ${formatSize(c.budgetBytes)} budget${lowered}; ${hit}; ${c.evictions} evictions`);
  lines.push(`             ${c.dir}`);
  const x = s.transfer;
  lines.push(`  transfer   down ${rate(x.downloadRate)} (${formatSize(x.downloadedBytes)} in all), up ${rate(x.uploadRate)} (${formatSize(x.uploadedBytes)} in all)`);
  lines.push(`  peers      ${s.peers.length} connected`);
  for (const p of s.peers) {
    const flags = [p.choked ? 'choking us' : '', p.interested ? 'interested' : ''].filter(Boolean).join(', ');
    lines.push(
      `    ${p.address.padEnd(22)} ${p.source.padEnd(8)} down ${rate(p.downloadRate).padEnd(12)} up ${rate(p.uploadRate).padEnd(12)} ` +
        `${p.client ?? ''}${flags ? ` (${flags})` : ''}`.trimEnd(),
    );
  }
  const r = s.reads;
  const waiting = r.oldest
    ? `${r.waiting} waiting; the oldest for ${formatDuration(r.oldest.ageSeconds)} on ${r.oldest.path} (piece ${r.oldest.piece}): ${r.oldest.reason}`
    : 'none waiting';
  lines.push(`  reads      ${r.count} (${formatSize(r.bytes)}), ${r.failed} failed; ${waiting}`);
  const banned = s.integrity.bannedPeers;
  lines.push(`  integrity  ${count(s.integrity.hashFailures, 'hash failure')}, ${count(banned.length, 'banned peer')}${banned.length ? ` (${banned.join(', ')})` : ''}`);
  if (s.warm.length === 0) lines.push('  warm       no jobs');
  for (const job of s.warm) lines.push(`  warm       ${jobLine(job)}`);
  lines.push(`  fuse       ${fuseLine(s.fuse)}`);
  lines.push(`  discovery  ${discoveryLine(s.discovery)}`);
  for (const tr of s.discovery.trackers) {
    const last = tr.lastAnnounceAt ? `last announce ${tr.lastAnnounceAt}: ${tr.lastResult ?? '?'} (${count(tr.peers, 'peer')})` : 'not announced to';
    lines.push(`    ${tr.url}  ${last}`);
  }
  // A daemon from before web seeds sends no webSeeds: the same as none.
  const webSeeds = s.webSeeds ?? [];
  if (webSeeds.length > 0) lines.push(`  web seeds  ${webSeeds.length}`);
  for (const w of webSeeds) lines.push(`    ${webSeedLine(w)}`);
  return lines.join('\n') + '\n';
}

/** `URL  ready; 12 pieces (3 MiB) fetched; 1 failure, last 12:00:01 stalled: no bytes from … for 15000 ms`. */
export function webSeedLine(w: MountStatus['webSeeds'][number]): string {
  const state = w.state === 'backing-off' && w.retryAt ? `backing off until ${w.retryAt.slice(11, 19)}` : w.state;
  const inflight = w.inflight ? `, ${w.inflight} in flight` : '';
  const fetched = `${count(w.piecesFetched, 'piece')} (${formatSize(w.bytesFetched)}) fetched${inflight}`;
  const failed = w.lastFailure
    ? `; ${count(w.failures, 'failure')}, last ${w.lastFailure.at.slice(11, 19)} ${w.lastFailure.kind}: ${w.lastFailure.message}`
    : '';
  return `${w.url}  ${state}; ${fetched}${failed}`;
}

function jobLine(job: WarmJobStatus): string {
  const head = `job ${job.id} ${job.state}${job.background ? ' (background)' : ''}: ${jobProgressText(job)}`;
  return job.message ? `${head}; ${job.message}` : head;
}

function discoveryLine(d: MountStatus['discovery']): string {
  const dht = d.dht.enabled ? `DHT ${count(d.dht.nodes, 'node')}` : 'DHT off';
  const pex = d.pex.enabled ? 'PEX on' : 'PEX off';
  return `${count(d.staticPeers, 'static peer')}; ${dht}; ${count(d.trackers.length, 'tracker')}; ${pex}`;
}

function pct(part: number, whole: number): string {
  return whole === 0 ? '100%' : `${Math.floor((part / whole) * 1000) / 10}%`;
}

function fuseLine(f: MountStatus['fuse'] | undefined): string {
  if (!f?.backend) return 'starting';
  if (f.backend === 'fuse-native') return 'fuse-native (libfuse 2; the native addon is not in use)';
  const n = f.nativeReads;
  return `native (libfuse 3)${n ? `: ${n.servedInC} reads served from the cache in C, ${n.sentToReader} sent to the reader` : ''}`;
}
