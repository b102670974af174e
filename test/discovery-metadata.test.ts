import test from 'ava';
import { createHash } from 'node:crypto';
import { MetadataFetcher, MetadataTimeoutError, makePeerId } from '../src/discovery/index.js';
import { silentLogger } from '../src/log.js';
import { Swarm } from '../src/swarm/index.js';
import { startMetadataLiar } from './helpers/discovery.js';
import { fullStorage, makeDataset, startRawPeer, handshakeBytes } from './helpers/peers.js';
import { tempDir } from './helpers/run.js';

// The liar lives on 127.0.0.2: a ban is per host, and the honest peer is on 127.0.0.1.

test('metadata from a liar is rejected and its host banned; the honest peer gives the real info dictionary', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'real', [{ path: 'a.bin', length: 300_000 }], 32 * 1024);
  const other = await makeDataset(dir.path, 'fake', [{ path: 'a.bin', length: 300_000 }], 32 * 1024);
  const liar = await startMetadataLiar('127.0.0.2', ds.metainfo.infoHash, other.torrentPath);
  t.teardown(liar.close);
  const honest = new Swarm({ infoHash: ds.metainfo.infoHash, layout: ds.metainfo.layout, storage: await fullStorage(ds), port: 0, host: '127.0.0.1', infoBuffer: ds.metainfo.infoBuffer });
  const honestPort = await honest.listen();
  t.teardown(() => honest.close());

  const fetcher = new MetadataFetcher({ infoHash: ds.metainfo.infoHash, peerId: makePeerId(), listenPort: 1, log: silentLogger });
  t.teardown(() => fetcher.close());
  const rejected = new Promise<string>((resolve) => fetcher.once('rejected', (peer: string) => resolve(peer)));
  const result = fetcher.fetch(60_000);
  fetcher.addPeer(liar.host, liar.port, true);
  t.is(await rejected, `127.0.0.2:${liar.port}`);
  t.true(fetcher.bannedHosts.has('127.0.0.2'));
  fetcher.addPeer(liar.host, liar.port + 1, true); // any port of a banned host is ignored
  t.is(fetcher.progress().known, 0);

  fetcher.addPeer('127.0.0.1', honestPort);
  const info = await result;
  t.true(info.equals(ds.metainfo.infoBuffer));
  t.is(createHash('sha1').update(info).digest('hex'), ds.metainfo.infoHash);
  t.is(fetcher.progress().rejected, 1);
});

test('a peer sending a metadata piece of the wrong size is dropped, and the fetch gives up with a reason', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(dir.path, 'ds', [{ path: 'x', length: 50_000 }], 16 * 1024);
  let closed = 0;
  const bencode = (await import('bencode')).default;
  // Handshake + an extended handshake offering 100 bytes of metadata, then a 7-byte "piece 0".
  const peer = await startRawPeer('127.0.0.3', (socket) => {
    let got = Buffer.alloc(0);
    let stage = 0;
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (stage === 0 && got.length >= 68) {
        stage = 1;
        const hs = handshakeBytes(ds.metainfo.infoHash);
        hs[25] = 0x10; // extension protocol (BEP 10)
        socket.write(hs);
      }
      // Then our extended handshake: learn the id we gave ut_metadata.
      if (stage !== 1 || got.length < 72) return;
      const len = got.readUInt32BE(68);
      if (got.length < 72 + len) return;
      stage = 2;
      const ours = bencode.decode(got.subarray(74, 72 + len)) as { m: { ut_metadata: number } };
      const ext = Buffer.from(bencode.encode({ m: { ut_metadata: 3 }, metadata_size: 100 }));
      const extMsg = Buffer.concat([u32(ext.length + 2), Buffer.from([20, 0]), ext]);
      const piece = Buffer.concat([Buffer.from(bencode.encode({ msg_type: 1, piece: 0, total_size: 100 })), Buffer.from('1234567')]);
      const pieceMsg = Buffer.concat([u32(piece.length + 2), Buffer.from([20, ours.m.ut_metadata]), piece]);
      socket.write(extMsg);
      setTimeout(() => socket.write(pieceMsg), 200);
    });
    socket.on('close', () => closed++);
  });
  t.teardown(peer.close);
  const fetcher = new MetadataFetcher({ infoHash: ds.metainfo.infoHash, peerId: makePeerId(), listenPort: 1, log: silentLogger });
  t.teardown(() => fetcher.close());
  fetcher.addPeer(peer.host, peer.port);
  const err = await t.throwsAsync(fetcher.fetch(2500), { instanceOf: MetadataTimeoutError });
  t.regex(err!.message, /no peer gave the metadata in 3 s/);
  t.true(closed >= 1);
});

test('with no peers at all, the timeout says so', async (t) => {
  const fetcher = new MetadataFetcher({ infoHash: 'a'.repeat(40), peerId: makePeerId(), listenPort: 1, log: silentLogger });
  t.teardown(() => fetcher.close());
  const err = await t.throwsAsync(fetcher.fetch(300), { instanceOf: MetadataTimeoutError });
  t.regex(err!.message, /no peers found/);
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
