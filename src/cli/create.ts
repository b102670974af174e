import type { Command } from 'commander';
import createTorrent from 'create-torrent';
import { readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Metainfo } from '../metainfo/index.js';
import { UserError } from '../user-error.js';
import { formatSize } from '../byte-size.js';
import { parseSizeOption } from './options.js';

export interface CreateOptions {
  output: string;
  pieceSize?: number;
  tracker: string[];
  webSeed: string[];
  private?: boolean;
  name?: string;
  comment?: string;
}

const ACTION = 'cannot create torrent';

export function registerCreate(program: Command): void {
  program
    .command('create')
    .description('make a .torrent of a dataset folder (or one file); adds no trackers unless given')
    .argument('<path>', 'the dataset folder or file')
    .requiredOption('-o, --output <file>', 'where to write the .torrent')
    .option('--piece-size <size>', 'piece length, a power of two ≥ 16 KiB (e.g. 1MiB, 4M); default: by total size', (v) => parsePieceSize(v))
    .option('--tracker <url>', 'announce URL (repeatable)', collect)
    .option('--web-seed <url>', 'web seed URL, BEP 19 (repeatable)', collect)
    .option('--private', 'private torrent: peers only from its trackers (BEP 27)')
    .option('--name <name>', 'torrent name (default: the folder or file name)')
    .option('--comment <text>', 'free-text comment')
    .action(async (input: string, cli: Omit<CreateOptions, 'tracker' | 'webSeed'> & { tracker?: string[]; webSeed?: string[] }) => {
      const opts: CreateOptions = { ...cli, tracker: cli.tracker ?? [], webSeed: cli.webSeed ?? [] };
      const summary = await createTorrentFile(input, opts, process.stderr.isTTY ? progressPrinter() : undefined);
      process.stdout.write(
        `created ${opts.output}: ${summary.infoHash} — ${summary.fileCount} files, ${formatSize(summary.totalLength)}, ` +
          `${summary.pieceCount} pieces of ${formatSize(summary.pieceLength)}${summary.trackers ? `, ${summary.trackers} trackers` : ', no trackers'}\n`,
      );
    });
}

export interface CreateSummary {
  infoHash: string;
  fileCount: number;
  totalLength: number;
  pieceCount: number;
  pieceLength: number;
  trackers: number;
}

/** Writes a .torrent of `input` to `opts.output`. Throws UserError for anything the user can fix. */
export async function createTorrentFile(
  input: string,
  opts: CreateOptions,
  onProgress?: (hashed: number, total: number) => void,
): Promise<CreateSummary> {
  const source = path.resolve(input);
  const info = await stat(source).catch(() => undefined);
  if (!info) throw new UserError(ACTION, `${input}: no such file or directory`);
  if (!info.isDirectory() && !info.isFile()) throw new UserError(ACTION, `${input} is neither a folder nor a file`);
  const output = path.resolve(opts.output);
  if (info.isDirectory() && !path.relative(source, output).startsWith('..')) {
    throw new UserError(ACTION, `the output ${opts.output} is inside the dataset folder ${input}`);
  }
  if (info.isDirectory() && !(await hasVisibleFile(source))) {
    throw new UserError(ACTION, `${input} holds no files (hidden files are left out)`);
  }
  for (const url of [...opts.tracker, ...opts.webSeed]) {
    if (!/^(https?|udp|wss?):\/\/./i.test(url)) throw new UserError(ACTION, `not a tracker or web seed URL: ${url}`);
  }

  // create-torrent adds public trackers when given no announce list, and any in
  // globalThis.WEBTORRENT_ANNOUNCE: a leak for a private dataset. Pass ours, always.
  delete (globalThis as { WEBTORRENT_ANNOUNCE?: unknown }).WEBTORRENT_ANNOUNCE;
  const buf = await new Promise<Uint8Array>((resolve, reject) => {
    createTorrent(
      source,
      {
        announceList: opts.tracker.map((url) => [url]),
        ...(opts.webSeed.length > 0 ? { urlList: opts.webSeed } : {}),
        ...(opts.private ? { private: true } : {}),
        ...(opts.name !== undefined ? { name: opts.name } : {}),
        ...(opts.comment !== undefined ? { comment: opts.comment } : {}),
        ...(opts.pieceSize !== undefined ? { pieceLength: opts.pieceSize } : {}),
        createdBy: 'btmount',
        ...(onProgress ? { onProgress } : {}),
      },
      (err, torrent) => (err ? reject(err) : resolve(torrent)),
    );
  }).catch((err: unknown) => {
    throw new UserError(ACTION, (err as Error).message);
  });
  const torrent = Buffer.from(buf);
  let metainfo;
  try {
    metainfo = Metainfo.fromTorrentFile(torrent);
  } catch (err) {
    throw new UserError(ACTION, `the result does not parse: ${(err as Error).message}`);
  }
  if (metainfo.layout.totalLength === 0) throw new UserError(ACTION, `${input} holds no data (empty, or only hidden files)`);
  if (onProgress) process.stderr.write('\n');
  await writeFile(output, torrent).catch((err: NodeJS.ErrnoException) => {
    throw new UserError(ACTION, `cannot write ${opts.output}: ${err.code ?? err.message}`);
  });
  return {
    infoHash: metainfo.infoHash,
    fileCount: metainfo.files.filter((f) => !f.pad).length,
    totalLength: metainfo.layout.totalLength,
    pieceCount: metainfo.layout.pieceCount,
    pieceLength: metainfo.layout.pieceLength,
    trackers: opts.tracker.length,
  };
}

function parsePieceSize(value: string): number {
  const n = parseSizeOption(value, '--piece-size');
  if (n < 16 * 1024 || (n & (n - 1)) !== 0) {
    throw new UserError(ACTION, `--piece-size must be a power of two of at least 16 KiB, not ${value}`);
  }
  return n;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function progressPrinter(): (hashed: number, total: number) => void {
  let last = 0;
  return (hashed, total) => {
    const now = Date.now();
    if (now - last < 200 && hashed < total) return;
    last = now;
    const pct = total > 0 ? Math.floor((hashed / total) * 100) : 100;
    process.stderr.write(`\rhashing: ${pct}% (${formatSize(hashed)} of ${formatSize(total)})`);
  };
}

/** True when the folder holds a regular file outside hidden folders (what create-torrent will include). */
async function hasVisibleFile(dir: string): Promise<boolean> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    if (e.isFile()) return true;
    if (e.isDirectory() && (await hasVisibleFile(path.join(dir, e.name)))) return true;
  }
  return false;
}
