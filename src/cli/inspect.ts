import type { Command } from 'commander';
import { loadSource, type Metainfo, type TorrentSource } from '../metainfo/index.js';
import { UserError } from '../user-error.js';
import { formatSize } from '../byte-size.js';

interface InspectOptions {
  json?: boolean;
  files?: boolean;
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show what a torrent, magnet URI or infohash contains')
    .argument('<source>', '.torrent file, magnet URI or 40-hex infohash')
    .option('--json', 'print one JSON object')
    .option('--files', 'list every file with its size')
    .action(async (spec: string, opts: InspectOptions) => {
      let source: TorrentSource;
      try {
        source = await loadSource(spec);
      } catch (err) {
        throw new UserError(`cannot read torrent ${spec}`, (err as Error).message);
      }
      process.stdout.write(opts.json ? JSON.stringify(describe(source, opts.files ?? false), null, 2) + '\n' : render(source, opts.files ?? false));
    });
}

/** The JSON shape of `inspect --json`. */
function describe(source: TorrentSource, withFiles: boolean): Record<string, unknown> {
  if (source.kind === 'hash') {
    return { infoHash: source.infoHash, name: source.name ?? null, complete: false, trackers: source.announce, webSeeds: source.urlList, peers: source.peers };
  }
  const m = source.metainfo;
  return {
    infoHash: m.infoHash,
    name: m.name,
    complete: true,
    pieceLength: m.layout.pieceLength,
    pieceCount: m.layout.pieceCount,
    totalLength: m.layout.totalLength,
    fileCount: m.tree.fileCount,
    private: m.private,
    trackers: m.announce,
    webSeeds: m.urlList,
    created: m.created?.toISOString() ?? null,
    createdBy: m.createdBy ?? null,
    comment: m.comment ?? null,
    ...(withFiles ? { files: [...m.tree.visibleFiles()].map((f) => ({ path: f.path, length: f.length })) } : {}),
  };
}

function render(source: TorrentSource, withFiles: boolean): string {
  if (source.kind === 'hash') {
    return lines([
      ['name', source.name ?? '(unknown until metadata is fetched from peers)'],
      ['infohash', source.infoHash],
      ['trackers', source.announce.join(', ') || 'none'],
      ['web seeds', source.urlList.join(', ') || 'none'],
      ['peers', source.peers.join(', ') || 'none'],
    ]);
  }
  const m: Metainfo = source.metainfo;
  let out = lines([
    ['name', m.name],
    ['infohash', m.infoHash],
    ['size', `${formatSize(m.layout.totalLength)} (${m.layout.totalLength} bytes)`],
    ['pieces', `${m.layout.pieceCount} × ${formatSize(m.layout.pieceLength)}`],
    ['files', `${m.tree.fileCount} in ${m.tree.dirCount} directories`],
    ['private', m.private ? 'yes' : 'no'],
    ['trackers', m.announce.join(', ') || 'none'],
    ['web seeds', m.urlList.join(', ') || 'none'],
    ...(m.created ? [['created', m.created.toISOString()] as [string, string]] : []),
  ]);
  if (withFiles) {
    for (const file of m.tree.visibleFiles()) out += `${String(file.length).padStart(14)}  ${file.path}\n`;
  }
  return out;
}

function lines(rows: Array<[string, string]>): string {
  return rows.map(([k, v]) => `${(k + ':').padEnd(11)}${v}\n`).join('');
}
