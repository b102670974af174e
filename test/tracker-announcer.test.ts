import test from 'ava';
import { startTrackerServer, testAnnouncer, waitUntil } from './helpers/discovery.js';

test('stop() waits for the answer to `stopped` itself, not for a re-announce answered meanwhile (HTTP and UDP)', async (t) => {
  // A re-announce is answered 400 ms late, `stopped` 2 s late (within the 3 s stop() allows):
  // the re-announce's answer comes while `stopped` is on its way.
  const tracker = await startTrackerServer({ intervalMs: 3_600_000, answerDelayMs: (params) => ({ started: 0, stopped: 2_000 })[params.event as string] ?? 400 });
  t.teardown(tracker.close);
  const { announcer, port } = testAnnouncer({ infoHash: 'd'.repeat(40), urls: [tracker.httpUrl, tracker.udpUrl] });
  t.teardown(() => announcer.stop());
  const answered = (event: string): string[] => tracker.announces.filter((a) => a.port === port && a.event === event).map((a) => a.type).sort();
  announcer.start();
  await waitUntil('`started` answered over HTTP and UDP', () => answered('started').length === 2);
  await waitUntil('both started announces taken', () => announcer.status().every((s) => s.lastResult === 'ok'));

  announcer.update();
  await new Promise((resolve) => setTimeout(resolve, 100));
  await announcer.stop();
  t.deepEqual(answered('update'), ['http', 'udp'], 'the re-announces were answered first');
  t.deepEqual(answered('stopped'), ['http', 'udp'], 'stop() returned before the tracker answered `stopped`');
});

test('stop() to a tracker that is not there returns at once, not after the bound', async (t) => {
  const { announcer } = testAnnouncer({ infoHash: 'c'.repeat(40), port: 6881, urls: ['http://127.0.0.1:9/announce'] });
  announcer.start();
  await waitUntil('the announce to fail', () => announcer.status()[0]!.lastResult !== null);
  const began = Date.now();
  await announcer.stop();
  // Generous: a refused connection takes milliseconds; the bound is 3 s.
  t.true(Date.now() - began < 2_500, `stop() took ${Date.now() - began} ms`);
});
