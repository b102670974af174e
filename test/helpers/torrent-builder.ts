import bencode from 'bencode';
import { createHash } from 'node:crypto';

/** A file for a hand-built torrent: path components as strings or raw bytes. */
export interface BuilderFile {
  path: Array<string | Uint8Array>;
  length: number;
  attr?: string;
}

/**
 * Builds .torrent bytes by hand, so tests can write exactly the hostile or
 * broken metadata a stranger could. Piece hashes are of zero-filled data
 * unless `data` is given.
 */
export function buildTorrent(opts: {
  name?: string | Uint8Array;
  files?: BuilderFile[];
  length?: number;
  pieceLength?: number;
  data?: Buffer;
  infoExtra?: Record<string, unknown>;
  topExtra?: Record<string, unknown>;
}): Buffer {
  const pieceLength = opts.pieceLength ?? 16384;
  const total = opts.files ? opts.files.reduce((s, f) => s + f.length, 0) : (opts.length ?? 0);
  const data = opts.data ?? Buffer.alloc(total);
  const hashes: Buffer[] = [];
  for (let at = 0; at < total; at += pieceLength) {
    hashes.push(createHash('sha1').update(data.subarray(at, Math.min(at + pieceLength, total))).digest());
  }
  const info: Record<string, unknown> = {
    name: typeof opts.name === 'string' || opts.name === undefined ? Buffer.from(opts.name ?? 'dataset') : opts.name,
    'piece length': pieceLength,
    pieces: Buffer.concat(hashes),
    ...(opts.files
      ? {
          files: opts.files.map((f) => ({
            length: f.length,
            path: f.path.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)),
            ...(f.attr ? { attr: Buffer.from(f.attr) } : {}),
          })),
        }
      : { length: total }),
    ...opts.infoExtra,
  };
  return Buffer.from(bencode.encode({ info, ...opts.topExtra }));
}
