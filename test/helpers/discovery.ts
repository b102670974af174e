/**
 * Peers and services for the discovery tests, all on 127.0.0.0/8: a DHT of a
 * few bittorrent-dht nodes, bittorrent-tracker's real server (HTTP and UDP), a
 * peer that lies about the metadata, an aria2c seeder that announces to a
 * tracker. Everything started here is stopped by the returned close/stop.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import bencode from 'bencode';
import Wire from 'bittorrent-protocol';
import DHT from 'bittorrent-dht';
import { Server, type AnnounceParams } from 'bittorrent-tracker';
import utMetadata from 'ut_metadata';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { mountWithCli, sha256Via, type MountedTorrent } from './mount.js';
import { startAria2Seeder, type Dataset, type Proc } from './peers.js';
import { makePeerId } from '../../src/discovery/index.js';
import { TrackerAnnouncer } from '../../src/discovery/tracker-announcer.js';
import { memoryLogger } from './store-fixtures.js';

// ── DHT ──────────────────────────────────────────────────────────────────────

export interface LocalDht {
  nodes: DHT[];
  /** `--dht-bootstrap` values for the first nodes. */
  bootstrap: string[];
  /** Stores `port` for the infohash at the nodes (as a seeder announcing itself does). */
  announce(infoHash: string, port: number): Promise<void>;
  /** Peers a fresh lookup from the last node finds for the infohash. */
  lookup(infoHash: string): Promise<Array<{ host: string; port: number }>>;
  close(): Promise<void>;
}

/** `count` bittorrent-dht nodes on 127.0.0.1 that know each other; never the public routers. */
export async function startLocalDht(count = 4): Promise<LocalDht> {
  const nodes: DHT[] = [];
  for (let i = 0; i < count; i++) {
    const node = new DHT({ bootstrap: false, host: false });
    node.on('error', () => undefined);
    node.on('warning', () => undefined);
    await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', resolve));
    nodes.push(node);
  }
  for (const a of nodes) {
    for (const b of nodes) if (a !== b) a.addNode({ host: '127.0.0.1', port: b.address().port, id: b.nodeId });
  }
  return {
    nodes,
    bootstrap: nodes.slice(0, 2).map((n) => `127.0.0.1:${n.address().port}`),
    announce: (infoHash, port) =>
      new Promise<void>((resolve, reject) => nodes[0]!.announce(infoHash, port, (err) => (err ? reject(err) : resolve()))),
    lookup: (infoHash) =>
      new Promise((resolve) => {
        const node = nodes[nodes.length - 1]!;
        const found: Array<{ host: string; port: number }> = [];
        const onPeer = (peer: { host: string; port: number }, hash: Uint8Array): void => {
          if (Buffer.from(hash).toString('hex') === infoHash) found.push(peer);
        };
        node.on('peer', onPeer);
        node.lookup(infoHash, () => {
          node.off('peer', onPeer);
          resolve(found);
        });
      }),
    close: () => Promise.all(nodes.map((n) => new Promise<void>((resolve) => n.destroy(() => resolve())))).then(() => undefined),
  };
}

// ── tracker ──────────────────────────────────────────────────────────────────

export interface LocalTracker {
  httpUrl: string;
  udpUrl: string;
  /** Every announce the server answered, in order. */
  announces: AnnounceParams[];
  close(): Promise<void>;
}

/**
 * bittorrent-tracker's own server, HTTP and UDP on one port of 127.0.0.1; it asks for a
 * re-announce every `intervalMs`, and answers an announce `answerDelayMs(params)` late.
 */
export async function startTrackerServer(opts: { intervalMs?: number; answerDelayMs?: (params: AnnounceParams) => number } = {}): Promise<LocalTracker> {
  const { answerDelayMs } = opts;
  const server = new Server({
    http: true,
    udp: true,
    ws: false,
    stats: false,
    interval: opts.intervalMs ?? 60_000,
    ...(answerDelayMs ? { filter: (_infoHash: string, params: AnnounceParams, cb: (err?: Error) => void) => setTimeout(cb, answerDelayMs(params)) } : {}),
  });
  const announces: AnnounceParams[] = [];
  for (const event of ['start', 'update', 'complete', 'stop'] as const) {
    server.on(event, (_addr, params) => announces.push(params));
  }
  server.on('warning', () => undefined);
  server.on('error', () => undefined);
  const port = await freeUdpAndTcpPort();
  // Its 'listening' waits for a udp6 socket too; only HTTP and UDP over IPv4 matter here.
  const up = (emitter: NodeJS.EventEmitter): Promise<void> => new Promise((resolve) => emitter.once('listening', () => resolve()));
  const ready = Promise.all([up(server.http!), up(server.udp4!)]);
  server.listen(port, { http: '127.0.0.1', udp: '127.0.0.1', udp6: '::1' } as unknown as string);
  await ready;
  return {
    httpUrl: `http://127.0.0.1:${port}/announce`,
    udpUrl: `udp://127.0.0.1:${port}`,
    announces,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function freeUdpAndTcpPort(): Promise<number> {
  const { createSocket } = await import('node:dgram');
  for (;;) {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const udp = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (ok) return port;
  }
}

// ── aria2c ───────────────────────────────────────────────────────────────────

/** aria2c seeding a complete dataset, announcing itself to `trackerUrl` (it uses no DHT, no PEX). */
export function startAria2TrackerSeeder(ds: Dataset, port: number, trackerUrl: string): Promise<Proc> {
  return startAria2Seeder(ds, port, [`--bt-tracker=${trackerUrl}`, '--bt-tracker-interval=1']);
}

// ── a metadata liar ──────────────────────────────────────────────────────────

export interface MetadataLiar {
  host: string;
  port: number;
  /** Resolves when the liar has sent its whole (false) dictionary once. */
  served: Promise<void>;
  close(): Promise<void>;
}

/**
 * A peer that handshakes for `infoHash` and answers ut_metadata requests with
 * another torrent's info dictionary (`fakeTorrent`'s), so the SHA-1 check fails.
 */
export async function startMetadataLiar(host: string, infoHash: string, fakeTorrent: string): Promise<MetadataLiar> {
  const decoded = bencode.decode(await readFile(fakeTorrent)) as { info: unknown };
  const fakeInfo = Buffer.from(bencode.encode(decoded.info));
  let markServed: () => void = () => undefined;
  const served = new Promise<void>((resolve) => (markServed = resolve));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const wire = new Wire('tcpIncoming');
    wire.use(utMetadata(fakeInfo)); // before the handshake, ut_metadata takes any dictionary
    (socket.pipe(wire as unknown as NodeJS.WritableStream) as unknown as Wire).pipe(socket);
    // ut_metadata answers a request while handling it, before the wire emits it (small dictionaries are one piece).
    wire.on('extended', (ext: string) => {
      if (ext === 'ut_metadata') setImmediate(markServed);
    });
    wire.on('error', () => undefined);
    wire.on('handshake', () => wire.handshake(infoHash, randomBytes(20), { dht: false, fast: false }));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    host,
    port: (server.address() as net.AddressInfo).port,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ── mounting by hash ─────────────────────────────────────────────────────────

export type HashMount = MountedTorrent;

/**
 * `btmount mount <source> <dir>` with the real CLI (daemon mode). `args` must
 * say how to find peers without the public DHT (--no-dht or --dht-bootstrap).
 * Throws with the CLI's output when the mount fails.
 */
export async function mountSource(base: string, source: string, args: string[], name = 'mnt'): Promise<HashMount> {
  if (!args.includes('--no-dht') && !args.includes('--dht-bootstrap')) throw new Error('test mounts must pass --no-dht or --dht-bootstrap');
  const mountpoint = path.join(base, name);
  await mkdir(mountpoint, { recursive: true });
  return mountWithCli(mountpoint, ['mount', source, mountpoint, ...args], { timeoutMs: 90_000 });
}

/** sha256 of every file of the dataset read through the mount by child processes, beside the expected ones. */
export async function checkAllFiles(mountpoint: string, ds: Dataset): Promise<{ got: string[]; want: string[] }> {
  const got: string[] = [];
  for (const f of ds.files) got.push(`${f.path} ${await sha256Via(path.join(mountpoint, f.path))}`);
  return { got, want: ds.files.map((f) => `${f.path} ${f.sha256}`) };
}

export function magnetOf(ds: Dataset, extra = ''): string {
  return `magnet:?xt=urn:btih:${ds.metainfo.infoHash}&dn=${encodeURIComponent(ds.name)}${extra}`;
}

/** Polls `check` until it returns a value (not undefined/false), or throws after `timeoutMs` saying what it waited for. */
export async function waitUntil<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A TrackerAnnouncer for a test: a fresh peer id, a torrent with 10 bytes left, and a memory
 * log unless one is given. `port` defaults to a random one, which tells this announcer's
 * announces apart at a shared tracker server.
 */
export function testAnnouncer(opts: { urls: string[]; infoHash: string; port?: number; log?: ReturnType<typeof memoryLogger>['log'] }): { announcer: TrackerAnnouncer; port: number } {
  const port = opts.port ?? 20_000 + Math.floor(Math.random() * 20_000);
  const announcer = new TrackerAnnouncer({
    infoHash: opts.infoHash,
    peerId: makePeerId(),
    port,
    urls: opts.urls,
    counters: () => ({ uploaded: 0, downloaded: 0, left: 10 }),
    log: opts.log ?? memoryLogger().log,
  });
  return { announcer, port };
}
