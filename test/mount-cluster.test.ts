import test from 'ava';
import path from 'node:path';
import { tempDir } from './helpers/run.js';
import { freePort, makeDataset } from './helpers/peers.js';
import { mountTorrent, seedWithBtmount, sha256Via } from './helpers/mount.js';

test('a mount serves what it has read: a second mount reads the dataset from the first after the origin is gone', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(
    dir.path,
    'dataset',
    [
      { path: 'a/1.bin', length: 300_000 },
      { path: 'a/2.bin', length: 5_000 },
      { path: 'b.bin', length: 200_000 },
    ],
    32 * 1024,
  );
  const originPort = await freePort();
  const origin = await seedWithBtmount(ds, originPort);
  t.teardown(() => origin.stop());

  const nodeAPort = await freePort();
  const nodeA = await mountTorrent(dir.path, ds.torrentPath, {
    name: 'node-a',
    cache: path.join(dir.path, 'cache-a'),
    peers: [`127.0.0.1:${originPort}`],
    extra: ['--port', String(nodeAPort)],
    readTimeout: 30,
  });
  t.teardown(nodeA.unmount);
  for (const f of ds.files) t.is(await sha256Via(path.join(nodeA.mountpoint, f.path)), f.sha256);
  await origin.stop();

  const nodeB = await mountTorrent(dir.path, ds.torrentPath, {
    name: 'node-b',
    cache: path.join(dir.path, 'cache-b'),
    peers: [`127.0.0.1:${nodeAPort}`],
    readTimeout: 30,
  });
  t.teardown(nodeB.unmount);
  for (const f of ds.files) t.is(await sha256Via(path.join(nodeB.mountpoint, f.path)), f.sha256, `${f.path} from node A`);
});
