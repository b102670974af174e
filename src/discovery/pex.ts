import type { EventEmitter } from 'node:events';
import utPex, { type PexExtension } from 'ut_pex';
import type { Logger } from '../log.js';
import type { PeerConnection } from '../swarm/peer-connection.js';
import { formatPeerAddress, parsePeerAddress, usableAddress } from './peer-address.js';

/** The ut_pex wire extension; a swarm offers it on every connection when PEX is on. */
export const PEX_EXTENSION = utPex();

/** What peer exchange needs of the swarm: its 'peer-ready'(PeerConnection) event and addPeer. */
export interface PexSwarm extends EventEmitter {
  addPeer(host: string, port: number, source: 'pex'): void;
}

/** Our first message goes out soon after the handshake; then one a minute, as BEP 11 asks. */
const FIRST_MESSAGE_MS = 2_000;
const MESSAGE_EVERY_MS = 65_000;
/** Addresses one connection may teach us, in all: enough for a swarm, not a flood. */
const MAX_LEARNED_PER_PEER = 200;

interface Exchange {
  pc: PeerConnection;
  ext: PexExtension;
  /** Where the peer accepts connections, if known (dialed address, or `p` of its extended handshake). */
  listen: string | undefined;
  ipv6: boolean;
  /** The peer speaks ut_pex. */
  active: boolean;
  learned: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Peer exchange (BEP 11) over a swarm's connections with ut_pex: tells each
 * peer where the other peers we are connected to listen, and hands the peers
 * they tell us of to the swarm (source 'pex').
 */
export class PeerExchange {
  readonly #exchanges = new Map<PeerConnection, Exchange>();
  readonly #onReady = (pc: PeerConnection): void => this.#add(pc);
  #closed = false;

  readonly #swarm: PexSwarm;
  readonly #log: Logger;

  constructor(
    swarm: PexSwarm,
    log: Logger,
  ) {
    this.#swarm = swarm;
    this.#log = log;
    swarm.on('peer-ready', this.#onReady);
  }

  /** Connections exchanging peers now. */
  get activeCount(): number {
    let n = 0;
    for (const x of this.#exchanges.values()) if (x.active) n++;
    return n;
  }

  close(): void {
    this.#closed = true;
    this.#swarm.off('peer-ready', this.#onReady);
    for (const x of this.#exchanges.values()) clearTimeout(x.timer);
    this.#exchanges.clear();
  }

  #add(pc: PeerConnection): void {
    const ext = pc.extension<PexExtension>('ut_pex');
    if (this.#closed || !ext || pc.closed) return;
    const x: Exchange = { pc, ext, listen: undefined, ipv6: false, active: false, learned: 0, timer: undefined };
    this.#exchanges.set(pc, x);
    pc.once('close', () => this.#remove(x));
    ext.on('peer', (text: string) => this.#learn(x, text));
    ext.on('warning', (err: Error) => this.#log.debug({ peer: pc.address, reason: err.message }, 'pex warning'));
    if (pc.peerExtendedHandshake) this.#begin(x);
    else pc.once('extended-handshake', () => this.#begin(x));
  }

  #begin(x: Exchange): void {
    if (this.#closed || x.pc.closed || !this.#exchanges.has(x.pc)) return;
    const { pc } = x;
    const p = pc.peerExtendedHandshake?.['p'];
    const port = pc.direction === 'out' ? pc.port : typeof p === 'number' ? p : 0;
    const address = usableAddress(pc.host, port);
    if (address) {
      x.listen = formatPeerAddress(address);
      x.ipv6 = address.host.includes(':');
    }
    x.active = pc.peerSpeaks('ut_pex');
    for (const other of this.#exchanges.values()) {
      if (other === x) continue;
      if (x.active && other.listen) advertise(x.ext, other);
      if (other.active && x.listen) advertise(other.ext, x);
    }
    if (!x.active) return;
    const send = (): void => {
      if (this.#closed || x.pc.closed) return;
      try {
        x.ext._sendMessage();
      } catch (err) {
        this.#log.debug({ peer: pc.address, err }, 'pex message not sent');
      }
      x.timer = setTimeout(send, MESSAGE_EVERY_MS);
      x.timer.unref();
    };
    x.timer = setTimeout(send, FIRST_MESSAGE_MS);
    x.timer.unref();
  }

  #learn(x: Exchange, text: string): void {
    if (this.#closed || x.learned >= MAX_LEARNED_PER_PEER) return;
    const peer = parsePeerAddress(text);
    if (!peer) return;
    x.learned++;
    this.#swarm.addPeer(peer.host, peer.port, 'pex');
  }

  #remove(x: Exchange): void {
    clearTimeout(x.timer);
    if (!this.#exchanges.delete(x.pc) || !x.listen) return;
    for (const other of this.#exchanges.values()) {
      if (!other.active) continue;
      try {
        if (x.ipv6) other.ext.dropPeer6(x.listen);
        else other.ext.dropPeer(x.listen);
      } catch {
        // a malformed address: nothing to drop
      }
    }
  }
}

function advertise(to: PexExtension, peer: Exchange): void {
  try {
    if (peer.ipv6) to.addPeer6(peer.listen!);
    else to.addPeer(peer.listen!);
  } catch {
    // ut_pex refuses what it cannot encode
  }
}
