/**
 * Real peers for the swarm tests: datasets on disk, aria2c and python3-libtorrent
 * processes, a tiny HTTP tracker (aria2c takes peers only from trackers), and
 * hand-written misbehaving peers built on bittorrent-protocol. Every process is
 * started here and ended by its PID in `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { setMaxListeners } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import bencode from 'bencode';
import Wire from 'bittorrent-protocol';
import { createTorrentFile } from '../../src/cli/create.js';
import { loadMetainfo, Metainfo } from '../../src/metainfo/index.js';
import type { PieceIndex } from '../../src/metainfo/piece-layout.js';
import { MemoryPieceStorage, Swarm } from '../../src/swarm/index.js';
import { VerifiedPiece } from '../../src/metainfo/verified-piece.js';
import { BTMOUNT_BIN, REPO_ROOT } from './run.js';

export { BTMOUNT_BIN };

export const LT_PEER = path.join(REPO_ROOT, 'test', 'helpers', 'lt_peer.py');

// ── datasets ─────────────────────────────────────────────────────────────────

export interface DatasetFile {
  path: string;
  length: number;
  sha256: string;
}

export interface Dataset {
  /** The dataset folder (what create and seed take). */
  root: string;
  /** Its parent: aria2c's and libtorrent's save path. */
  parent: string;
  name: string;
  files: DatasetFile[];
  torrentPath: string;
  metainfo: Metainfo;
}

/** Writes random files under `<base>/<name>/` and makes a torrent of them with `btmount create`'s code. */
export async function makeDataset(
  base: string,
  name: string,
  files: Array<{ path: string; length: number }>,
  pieceSize: number,
): Promise<Dataset> {
  const root = path.join(base, name);
  const out: DatasetFile[] = [];
  for (const f of files) {
    const full = path.join(root, f.path);
    await mkdir(path.dirname(full), { recursive: true });
    const data = randomBytes(f.length);
    await writeFile(full, data);
    out.push({ path: f.path, length: f.length, sha256: createHash('sha256').update(data).digest('hex') });
  }
  const torrentPath = path.join(base, `${name}.torrent`);
  await createTorrentFile(root, { output: torrentPath, pieceSize, tracker: [], webSeed: [] });
  return { root, parent: base, name, files: out, torrentPath, metainfo: await loadMetainfo(torrentPath) };
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** sha256 of each file of the torrent, rebuilt from the pieces in a storage. */
export function filesFromPieces(metainfo: Metainfo, storage: MemoryPieceStorage): Map<string, string> {
  const out = new Map<string, string>();
  const { layout } = metainfo;
  for (const f of metainfo.files) {
    if (f.pad) continue;
    const hash = createHash('sha256');
    let pos = f.offset;
    const end = f.offset + f.length;
    while (pos < end) {
      const index = Math.floor(pos / layout.pieceLength) as PieceIndex;
      const piece = storage.get(index);
      if (!piece) throw new Error(`piece ${index} missing`);
      const from = pos - layout.pieceOffset(index);
      const n = Math.min(piece.length - from, end - pos);
      hash.update(piece.subarray(from, from + n));
      pos += n;
    }
    out.set(f.path, hash.digest('hex'));
  }
  return out;
}

/** A storage holding every piece of the dataset (a full seed, in memory). */
export async function fullStorage(ds: Dataset): Promise<MemoryPieceStorage> {
  const { layout } = ds.metainfo;
  const stream = Buffer.alloc(layout.totalLength);
  const { readFile } = await import('node:fs/promises');
  for (const f of ds.metainfo.files) {
    if (!f.pad) (await readFile(path.join(ds.root, ...f.path.split('/')))).copy(stream, f.offset);
  }
  const storage = new MemoryPieceStorage(layout);
  for (let i = 0; i < layout.pieceCount; i++) {
    const index = i as PieceIndex;
    const start = layout.pieceOffset(index);
    const piece = VerifiedPiece.check(layout, index, Buffer.from(stream.subarray(start, start + layout.pieceSize(index))));
    if (!piece) throw new Error(`piece ${i} does not verify`);
    await storage.put(piece);
  }
  return storage;
}

/** Fetches every piece with the given swarm (one signal for all); resolves when all are stored. */
export async function fetchAll(swarm: Swarm, pieceCount: number, signal?: AbortSignal): Promise<void> {
  if (signal) setMaxListeners(0, signal);
  await Promise.all(Array.from({ length: pieceCount }, (_, i) => swarm.fetch(i as PieceIndex, 'warm', signal)));
}

// ── processes ────────────────────────────────────────────────────────────────

export interface Proc {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** Resolves with the first match of `re` in stdout+stderr. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
  /** SIGTERM by PID, SIGKILL after a grace period; resolves when it is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function startProcess(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Proc {
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer): void => {
    text += d.toString('utf8');
    if (text.length > 1_000_000) text = text.slice(-500_000);
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      for (const l of listeners) l();
      resolve(code ?? (signal ? 128 : null));
    });
    child.once('error', () => resolve(null));
  });
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    pid: child.pid ?? -1,
    output: () => text,
    exited,
    waitFor(re, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = text.match(re);
          if (m) {
            cleanup();
            resolve(m);
          } else if (done) {
            cleanup();
            reject(new Error(`${cmd} exited before printing ${re}:\n${text.slice(-2000)}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${re} from ${cmd}:\n${text.slice(-2000)}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (done || child.pid === undefined) return exited;
      try {
        process.kill(child.pid, signal);
      } catch {
        return exited;
      }
      const timer = setTimeout(() => {
        try {
          if (!done) process.kill(child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A free TCP port on the address (the OS picks, we release it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function waitForPort(host: string, port: number, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on ${host}:${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ARIA2_COMMON = [
  '--enable-dht=false',
  '--enable-dht6=false',
  '--bt-enable-lpd=false',
  '--enable-peer-exchange=false',
  '--file-allocation=none',
  '--summary-interval=0',
  '--console-log-level=warn',
  '--check-certificate=false',
  '--bt-max-peers=0',
  '--max-overall-upload-limit=0',
  '--max-overall-download-limit=0',
  '--no-conf=true',
  '--disable-ipv6=true',
];

/** aria2c seeding a dataset that is already complete in `ds.parent` (`extra`: more aria2c options). */
export async function startAria2Seeder(ds: Dataset, port: number, extra: string[] = []): Promise<Proc> {
  const proc = startProcess('aria2c', [
    ...ARIA2_COMMON,
    `--dir=${ds.parent}`,
    `--listen-port=${port}`,
    '--check-integrity=true',
    '--seed-ratio=0.0',
    '--bt-seed-unverified=false',
    ...extra,
    ds.torrentPath,
  ]);
  await waitForPort('127.0.0.1', port);
  return proc;
}

/** aria2c downloading into `dir`, told of peers by `trackerUrl`; exits when complete. */
export function startAria2Leecher(torrentPath: string, dir: string, trackerUrl: string, port: number): Proc {
  return startProcess('aria2c', [
    ...ARIA2_COMMON,
    `--dir=${dir}`,
    `--listen-port=${port}`,
    `--bt-tracker=${trackerUrl}`,
    '--bt-tracker-interval=1',
    '--seed-time=0',
    '--bt-stop-timeout=120',
    torrentPath,
  ]);
}

/** aria2c downloading into `dir` from whoever connects to it (no tracker); resolves once it listens, exits when complete. */
export async function startListeningAria2Leecher(torrentPath: string, dir: string, port: number): Promise<Proc> {
  const proc = startProcess('aria2c', [...ARIA2_COMMON, `--dir=${dir}`, `--listen-port=${port}`, '--seed-time=0', '--bt-stop-timeout=120', torrentPath]);
  await waitForPort('127.0.0.1', port);
  return proc;
}

/** A python3-libtorrent peer (see lt_peer.py); resolves once it listens. */
export async function startLibtorrent(
  mode: 'seed' | 'leech',
  opts: {
    torrentPath?: string;
    magnet?: string;
    savePath: string;
    listen: string;
    peers?: string[];
    exitWhenDone?: boolean;
    /** Dial without trying encryption first (btmount refuses MSE; libtorrent's plain retry is not always quick). */
    plaintext?: boolean;
  },
): Promise<Proc & { port: number }> {
  const source = opts.magnet ? ['--magnet', opts.magnet] : ['--torrent', opts.torrentPath!];
  const args = [LT_PEER, mode, ...source, '--save-path', opts.savePath, '--listen', opts.listen];
  for (const p of opts.peers ?? []) args.push('--peer', p);
  if (opts.exitWhenDone) args.push('--exit-when-done');
  if (opts.plaintext) args.push('--plaintext');
  const proc = startProcess('/usr/bin/python3', args);
  const m = await proc.waitFor(/"event": "listening", "port": (\d+)/, 20_000);
  const port = Number(m[1]);
  const host = opts.listen.slice(0, opts.listen.lastIndexOf(':'));
  await waitForPort(host, port);
  return Object.assign(proc, { port });
}

// ── a tracker ────────────────────────────────────────────────────────────────

/** An HTTP tracker that answers every announce with the same peers (compact form). */
export async function startTracker(peers: Array<{ host: string; port: number }>): Promise<{ url: string; close(): Promise<void> }> {
  const compact = Buffer.concat(
    peers.map(({ host, port }) => {
      const b = Buffer.alloc(6);
      host.split('.').forEach((octet, i) => (b[i] = Number(octet)));
      b.writeUInt16BE(port, 4);
      return b;
    }),
  );
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(Buffer.from(bencode.encode({ interval: 5, 'min interval': 1, complete: peers.length, incomplete: 0, peers: compact })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/announce`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ── misbehaving peers ────────────────────────────────────────────────────────

export type FakePeerBehaviour = (socket: net.Socket, wire: Wire, metainfo: Metainfo) => void;

export interface FakePeer {
  host: string;
  port: number;
  /** Connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

/**
 * A peer that completes the handshake with bittorrent-protocol, announces every
 * piece, unchokes whoever is interested, then answers requests as `behaviour`
 * decides.
 */
export async function startFakePeer(
  host: string,
  metainfo: Metainfo,
  onRequest: (ctx: { wire: Wire; socket: net.Socket; index: number; offset: number; length: number; count: number }) => void,
): Promise<FakePeer> {
  let count = 0;
  return startRawPeer(host, (socket) => {
    const wire = new Wire('tcpIncoming');
    (socket.pipe(wire as unknown as NodeJS.WritableStream) as unknown as Wire).pipe(socket);
    socket.on('error', () => {});
    wire.on('handshake', () => {
      wire.handshake(metainfo.infoHash, randomBytes(20), { dht: false, fast: false });
      const bits = new Uint8Array(Math.ceil(metainfo.layout.pieceCount / 8));
      for (let i = 0; i < metainfo.layout.pieceCount; i++) bits[i >> 3]! |= 0x80 >> (i & 7);
      wire.bitfield(bits);
    });
    wire.on('interested', () => wire.unchoke());
    wire.on('request', (index: number, offset: number, length: number) => onRequest({ wire, socket, index, offset, length, count: ++count }));
  });
}

/** A TCP server whose connections are handed to `onConnection` as raw sockets. */
export async function startRawPeer(host: string, onConnection: (socket: net.Socket) => void): Promise<FakePeer> {
  const sockets = new Set<net.Socket>();
  const peer: FakePeer = {
    host,
    port: 0,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer((socket) => {
    peer.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  peer.port = (server.address() as net.AddressInfo).port;
  return peer;
}

/** Our own engine seeding a dataset from memory: an honest peer. */
export async function startHonestSeeder(ds: Dataset, host: string): Promise<{ swarm: Swarm; port: number }> {
  const swarm = new Swarm({ infoHash: ds.metainfo.infoHash, layout: ds.metainfo.layout, storage: await fullStorage(ds), port: 0, host });
  return { swarm, port: await swarm.listen() };
}

/** The 68-byte BitTorrent handshake for a torrent. */
export function handshakeBytes(infoHash: string, peerId = randomBytes(20)): Buffer {
  return Buffer.concat([Buffer.from('\x13BitTorrent protocol', 'latin1'), Buffer.alloc(8), Buffer.from(infoHash, 'hex'), peerId]);
}

/**
 * A seeder in this process holding every piece of a torrent built from `data` (for tests that make
 * their own torrent with buildTorrent). Safe beside a mount: the mount is another process.
 */
export async function startSeederFromBytes(raw: Buffer, data: Buffer, host = '127.0.0.1'): Promise<{ metainfo: Metainfo; swarm: Swarm; port: number }> {
  const metainfo = Metainfo.fromTorrentFile(raw);
  const { layout } = metainfo;
  const storage = new MemoryPieceStorage(layout);
  for (let i = 0; i < layout.pieceCount; i++) {
    const index = i as PieceIndex;
    const at = layout.pieceOffset(index);
    await storage.put(VerifiedPiece.check(layout, index, data.subarray(at, at + layout.pieceSize(index)))!);
  }
  const swarm = new Swarm({ infoHash: metainfo.infoHash, layout, storage, port: 0, host });
  return { metainfo, swarm, port: await swarm.listen() };
}
