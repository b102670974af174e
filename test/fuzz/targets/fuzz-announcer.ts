import { TrackerAnnouncer } from '../../../src/discovery/tracker-announcer.js';
import { silentLogger } from '../../../src/log.js';
import { expect } from '../target.js';

/** The announcer both tracker targets fuzz: one tracker, fixed torrent and counters, started. */
export function startFuzzAnnouncer(url: string): TrackerAnnouncer {
  const announcer = new TrackerAnnouncer({
    infoHash: '0123456789abcdef0123456789abcdef01234567',
    peerId: Buffer.from('-BM0100-fuzzfuzzfuzz'),
    port: 6881,
    urls: [url],
    counters: () => ({ uploaded: 0, downloaded: 0, left: 1 }),
    log: silentLogger,
  });
  announcer.start();
  return announcer;
}

/** Waits until the first announce has a result (or `over()` says it ended without one); longer than 8 s is a finding. */
export async function untilAnnounced(announcer: TrackerAnnouncer, over: () => boolean = () => false): Promise<void> {
  const started = Date.now();
  while (announcer.status()[0]!.lastResult === null && !over()) {
    expect(Date.now() - started < 8000, 'no announce result in 8 s');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
