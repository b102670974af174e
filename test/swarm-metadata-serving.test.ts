import test from 'ava';
import { createHash } from 'node:crypto';
import { MetadataFetcher, makePeerId } from '../src/discovery/index.js';
import { silentLogger } from '../src/log.js';
import { Swarm } from '../src/swarm/index.js';
import { fullStorage, makeDataset } from './helpers/peers.js';
import { tempDir } from './helpers/run.js';

test('a swarm serves an info dictionary of several 16 KiB metadata pieces to two fetchers, byte for byte', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  // 1,000 files: the info dictionary spans several ut_metadata pieces.
  const files = Array.from({ length: 1000 }, (_, i) => ({ path: `class${i % 7}/sample-${String(i).padStart(5, '0')}.jpg`, length: 1000 + i }));
  const ds = await makeDataset(dir.path, 'many', files, 16 * 1024);
  t.true(ds.metainfo.infoBuffer.length > 2 * 16 * 1024, `info dictionary of ${ds.metainfo.infoBuffer.length} bytes`);
  const swarm = new Swarm({ infoHash: ds.metainfo.infoHash, layout: ds.metainfo.layout, storage: await fullStorage(ds), port: 0, host: '127.0.0.1', infoBuffer: ds.metainfo.infoBuffer });
  const port = await swarm.listen();
  t.teardown(() => swarm.close());
  for (let k = 0; k < 2; k++) {
    const fetcher = new MetadataFetcher({ infoHash: ds.metainfo.infoHash, peerId: makePeerId(), listenPort: 1, log: silentLogger });
    t.teardown(() => fetcher.close());
    const result = fetcher.fetch(30_000);
    fetcher.addPeer('127.0.0.1', port);
    const info = await result;
    t.true(info.equals(ds.metainfo.infoBuffer), `fetcher ${k}`);
    t.is(createHash('sha1').update(info).digest('hex'), ds.metainfo.infoHash);
  }
});
