import { once } from 'node:events';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { InfoHash } from '../../src/metainfo/piece-layout.js';
import { PeerConnection } from '../../src/swarm/peer-connection.js';

/**
 * Two PeerConnections over a real TCP connection on 127.0.0.1, `dialled` and `accepted`,
 * both past the handshake; destroyed in the test's teardown.
 */
export async function connectedPeerPair(
  t: { teardown(fn: () => void): void },
  opts: { infoHash: InfoHash; pieceCount: number; reqq: number; handshakeTimeoutMs?: number },
): Promise<{ dialled: PeerConnection; accepted: PeerConnection }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const connection = once(server, 'connection') as Promise<[net.Socket]>;
  const socket = net.connect(port, '127.0.0.1');
  const [incoming] = await connection;
  server.close();
  const dialled = new PeerConnection({ ...opts, socket, direction: 'out', host: '127.0.0.1', port, source: 'static', peerId: randomBytes(20) });
  const accepted = new PeerConnection({ ...opts, socket: incoming, direction: 'in', host: '127.0.0.1', port: incoming.remotePort ?? 0, source: 'incoming', peerId: randomBytes(20) });
  t.teardown(() => {
    dialled.destroy('test over');
    accepted.destroy('test over');
  });
  await Promise.all([once(dialled, 'ready'), once(accepted, 'ready')]);
  return { dialled, accepted };
}
