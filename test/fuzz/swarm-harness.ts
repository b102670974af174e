import { EventEmitter, setMaxListeners } from 'node:events';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Metainfo, type PieceIndex } from '../../src/metainfo/index.js';
import { MemoryPieceStorage, Swarm } from '../../src/swarm/index.js';
import { PEX_EXTENSION, PeerExchange } from '../../src/discovery/pex.js';
import { usableAddress } from '../../src/discovery/peer-address.js';
import { VerifiedPiece } from '../../src/metainfo/verified-piece.js';
import { silentLogger } from '../../src/log.js';
import { buildTorrent } from '../helpers/torrent-builder.js';
import { expect } from './target.js';
import type { WireShape } from './wire-gen.js';

/** The torrent every wire target speaks about: 24 pieces of 32 KiB, bytes fixed (generators know them). */
const PIECE_LENGTH = 32 * 1024;
const PIECES = 24;
const DATA = Buffer.concat(
  Array.from({ length: (PIECE_LENGTH * PIECES) / 32 - 100 }, (_, i) => createHash('sha256').update(`fuzz ${i}`).digest()),
);
export const FUZZ_METAINFO = Metainfo.fromTorrentFile(buildTorrent({ name: 'fuzz', length: DATA.length, pieceLength: PIECE_LENGTH, data: DATA }));

export const FUZZ_SHAPE: WireShape = {
  infoHash: Buffer.from(FUZZ_METAINFO.infoHash, 'hex'),
  pieceCount: FUZZ_METAINFO.layout.pieceCount,
  pieceLength: PIECE_LENGTH,
  block: (index, offset, length) => {
    const start = index * PIECE_LENGTH + offset;
    return DATA.subarray(start, Math.min(start + length, DATA.length, (index + 1) * PIECE_LENGTH));
  },
};

const HELD = 8; // pieces the swarm holds (and serves): a bounded storage evicts the oldest
const SWARM_RESET_EVERY = 500; // runs; also keeps bans (hash failures) from closing the door
/** How long the swarm may take to close its side after the peer's FIN (it normally does at once). */
const HALF_OPEN_GRACE_MS = 5_000;

/**
 * A real Swarm (with ut_metadata serving and peer exchange, as a mount runs
 * it) listening on 127.0.0.1; each run is one TCP connection from a fresh
 * 127.0.x.y address that sends the generated chunks, then closes. Peers that
 * PEX teaches are recorded, never dialed.
 */
export class SwarmUnderFuzz {
  swarm: Swarm | undefined;
  private storage: MemoryPieceStorage | undefined;
  private pex: PeerExchange | undefined;
  private port = 0;
  private runs = 0;
  private wants = new AbortController();
  private readonly fetching = new Set<number>();
  /** Addresses PEX handed to the swarm during the current run. */
  learned: Array<{ host: string; port: number }> = [];
  /** Totals over the harness's life: how deep the inputs got. */
  totals = { learned: 0, verified: 0, readyPeers: 0 };

  async open(): Promise<void> {
    const { layout, infoHash, infoBuffer } = FUZZ_METAINFO;
    this.storage = new MemoryPieceStorage(layout, HELD + 4);
    for (let i = 0; i < HELD; i++) {
      const start = i * PIECE_LENGTH;
      await this.storage.put(VerifiedPiece.check(layout, i as PieceIndex, Buffer.from(DATA.subarray(start, start + layout.pieceSize(i as PieceIndex))))!);
    }
    this.swarm = new Swarm({ infoHash, layout, storage: this.storage, log: silentLogger, port: 0, host: '127.0.0.1', infoBuffer, extensions: [PEX_EXTENSION] });
    const relay = Object.assign(new EventEmitter(), {
      addPeer: (host: string, port: number) => {
        this.totals.learned++;
        this.learned.push({ host, port });
      },
    });
    this.swarm.on('peer-ready', (pc) => {
      this.totals.readyPeers++;
      relay.emit('peer-ready', pc);
    });
    this.swarm.on('verified', () => this.totals.verified++);
    this.pex = new PeerExchange(relay, silentLogger);
    this.port = await this.swarm.listen();
    this.wants = new AbortController();
    setMaxListeners(0, this.wants.signal);
    this.fetching.clear();
  }

  async close(): Promise<void> {
    this.wants.abort(new Error('fuzz run over'));
    this.pex?.close();
    await this.swarm?.close();
    // Whatever the strangers sent, only bytes that verify may have been stored.
    for (const i of this.storage?.haveIndices() ?? []) {
      const bytes = await this.storage!.readBlock(i, 0, FUZZ_METAINFO.layout.pieceSize(i));
      expect(VerifiedPiece.check(FUZZ_METAINFO.layout, i, Buffer.from(bytes)), `storage holds piece ${i} with wrong bytes`);
    }
    this.swarm = undefined;
  }

  /** Sends one connection's chunks; resolves when the swarm has closed it (or answered our close). */
  async feed(chunks: Buffer[]): Promise<void> {
    if (++this.runs % SWARM_RESET_EVERY === 0) {
      await this.close();
      await this.open();
    }
    this.wantMissing();
    this.learned = [];
    const n = this.runs;
    const localAddress = `127.0.${(n >> 8) & 255}.${(n & 255) || 1}`;
    const socket = net.connect({ host: '127.0.0.1', port: this.port, localAddress });
    socket.on('error', () => {});
    socket.resume(); // whatever the swarm answers, we read and drop
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => {
      socket.once('connect', resolve);
      socket.once('close', resolve);
    });
    for (const chunk of chunks) {
      if (socket.destroyed) break;
      await new Promise<void>((resolve) => socket.write(chunk, () => resolve()));
      // Two turns of the loop: the swarm reads, schedules, and may ask for blocks before the next chunk.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    }
    socket.end();
    // The swarm must hang up once our FIN is in (it did not once in CI): a connection left
    // half-open is a finding. Our side is closed either way so that the run ends. The grace is
    // counted in short sleeps: after a stalled event loop one timer of the whole grace could
    // fire before the I/O that closed the socket had been read.
    let settled = false;
    void closed.then(() => (settled = true));
    for (let slept = 0; !settled && slept < HALF_OPEN_GRACE_MS; slept += 100) await new Promise((resolve) => setTimeout(resolve, 100));
    if (!settled) {
      socket.destroy();
      await closed;
    }
    expect(settled, `the swarm left the connection half-open ${HALF_OPEN_GRACE_MS / 1000} s after the peer's FIN`);
  }

  /** Asks for the pieces the storage lacks, so that "piece" messages meet requests. */
  private wantMissing(): void {
    const swarm = this.swarm!;
    for (let i = 0; i < FUZZ_METAINFO.layout.pieceCount; i++) {
      if (this.storage!.has(i as PieceIndex) || this.fetching.has(i)) continue;
      this.fetching.add(i);
      swarm
        .fetch(i as PieceIndex, 'warm', this.wants.signal)
        .catch(() => {})
        .finally(() => this.fetching.delete(i));
    }
  }

  /** Every address PEX handed on is one a peer could listen at; no more than the per-peer cap. */
  checkLearned(cap: number): void {
    expect(this.learned.length <= cap, `one connection taught ${this.learned.length} addresses (cap ${cap})`);
    for (const a of this.learned) expect(usableAddress(a.host, a.port), `PEX handed on an unusable address ${a.host}:${a.port}`);
  }
}
