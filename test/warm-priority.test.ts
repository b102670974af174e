import test from 'ava';
import path from 'node:path';
import { mountFixture, waitForStatus } from './control-helpers.js';
import { timedRead } from './helpers/mount.js';

const KiB = 1024;

test('a live read goes ahead of a running warm job (end to end, one limited link)', async (t) => {
  // 4 MiB to warm through a 256 KiB/s link: the job runs for ~16 s whatever the machine does.
  const files = [...Array.from({ length: 8 }, (_, i) => ({ path: `big/${i}.bin`, length: 512 * KiB })), { path: 'live/now.bin', length: 64 * KiB }];
  const f = await mountFixture(t, { files, mount: ['--download-limit', '256K'] });
  const warm = f.spawn(['warm', f.mountpoint, 'big']);
  const running = await waitForStatus(f, (s) => (s.warm[0]?.bytes.done ?? 0) >= 128 * KiB);
  const before = running.warm[0]!.bytes.done;
  const read = await timedRead(path.join(f.mountpoint, 'live/now.bin'));
  const after = (await f.status()).warm[0]!;
  t.is(read.outcome, `read ${64 * KiB}`);
  // The job asks for all its pieces at once (its window covers them), so a read queued behind it
  // would finish with the job. Ahead of it, the read waits only for blocks already on the wire.
  t.is(after.state, 'running', 'the job was still running when the read finished');
  const remaining = after.bytes.total - before;
  t.true(after.bytes.done - before < remaining / 2, `the job fetched ${after.bytes.done - before} of its remaining ${remaining} bytes while the read waited ${read.seconds} s`);
  await warm.stop('SIGINT');
});
