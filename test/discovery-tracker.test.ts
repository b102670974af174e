import test from 'ava';
import path from 'node:path';
import { checkAllFiles, magnetOf, mountSource, startAria2TrackerSeeder, startTrackerServer, waitUntil } from './helpers/discovery.js';
import { freePort, makeDataset } from './helpers/peers.js';
import { btmount, tempDir } from './helpers/run.js';

test('tracker only: the mount announces over HTTP and UDP, finds the seeder, and says `stopped` on unmount', async (t) => {
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  // A long interval: no re-announce during the test (the announcer waits for the answer to
  // `stopped` itself, see test/tracker-announcer.test.ts, so one would do no harm).
  const tracker = await startTrackerServer({ intervalMs: 3_600_000 });
  t.teardown(tracker.close);
  const ds = await makeDataset(dir.path, 'tracked', [
    { path: 'x/1.bin', length: 600_000 },
    { path: 'x/2.bin', length: 250_000 },
  ], 64 * 1024);
  const seederPort = await freePort();
  const seeder = await startAria2TrackerSeeder(ds, seederPort, tracker.httpUrl);
  t.teardown(() => seeder.stop());
  await waitUntil('aria2c to announce itself to the tracker', () => tracker.announces.some((a) => a.port === seederPort));

  const mountPort = await freePort();
  const magnet = magnetOf(ds, `&tr=${encodeURIComponent(tracker.httpUrl)}&tr=${encodeURIComponent(tracker.udpUrl)}`);
  const m = await mountSource(dir.path, magnet, ['--cache', path.join(dir.path, 'cache'), '--port', String(mountPort), '--no-dht']);
  t.teardown(m.unmount);
  const { got, want } = await checkAllFiles(m.mountpoint, ds);
  t.deepEqual(got, want);

  const status = await btmount(['status', m.mountpoint, '--json']);
  t.is(status.code, 0, status.stderr);
  const { trackers } = (JSON.parse(status.stdout) as { discovery: { trackers: Array<{ url: string; lastResult: string | null; peers: number }> } }).discovery;
  t.deepEqual(trackers.map((x) => x.url).sort(), [tracker.httpUrl, tracker.udpUrl].sort());
  for (const x of trackers) {
    t.is(x.lastResult, 'ok', x.url);
    t.true(x.peers >= 1, x.url);
  }

  const ours = (event: string) => tracker.announces.filter((a) => a.port === mountPort && a.event === event).map((a) => a.type).sort();
  t.deepEqual(ours('started'), ['http', 'udp']);
  t.deepEqual(ours('stopped'), []);
  t.is((await m.unmount()).code, 0);
  t.deepEqual(ours('stopped'), ['http', 'udp']);
});
