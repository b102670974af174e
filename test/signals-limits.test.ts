import test from 'ava';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from '../src/process-alive.js';
import { waitUntil } from './helpers/discovery.js';
import { mountWithCli } from './helpers/mount.js';
import { python } from './helpers/mount.js';
import { run, tempDir } from './helpers/run.js';
import { startSeederFromBytes } from './helpers/peers.js';
import { buildTorrent } from './helpers/torrent-builder.js';

const KiB = 1024;

async function fixture(t: { teardown(fn: () => Promise<void> | void): void }) {
  const dir = await tempDir('btmount-signals-');
  t.teardown(dir.cleanup);
  const mountpoint = path.join(dir.path, 'mnt');
  await mkdir(mountpoint);
  return { base: dir.path, mountpoint };
}

const openFds = async (pid: number): Promise<number> => (await readdir(`/proc/${pid}/fd`)).length;

test.serial('SIGHUP makes the daemon reopen its log file (logrotate): later lines go to a new file, the mount goes on', async (t) => {
  const { base, mountpoint } = await fixture(t);
  const torrent = path.join(base, 'one.torrent');
  await writeFile(torrent, buildTorrent({ name: 'one.bin', length: 64 * KiB }));
  const logFile = path.join(base, 'logs', 'mount.log');
  const m = await mountWithCli(mountpoint, ['mount', torrent, mountpoint, '--cache', path.join(base, 'cache'), '--port', '0', '--no-dht', '--log-file', logFile]);
  t.teardown(() => m.unmount());
  await waitUntil('the first log lines', async () => (await readFile(logFile, 'utf8').catch(() => '')).length > 0);

  await rename(logFile, `${logFile}.1`); // what logrotate does first
  process.kill(m.pid, 'SIGHUP');
  const fresh = await waitUntil('a new log file at the same path', async () => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    return /log file reopened \(SIGHUP\)/.test(text) ? text : undefined;
  });
  t.true(fresh.split('\n').filter(Boolean).every((line) => JSON.parse(line).msg !== undefined), 'JSON lines');
  t.true(isAlive(m.pid), 'the daemon is still running');
  const ls = await run('ls', [mountpoint]);
  t.is(ls.stdout.trim(), 'one.bin', 'the mount still answers');

  const res = await m.unmount();
  t.is(res.code, 0, res.stderr);
  await waitUntil('the daemon to exit', () => !isAlive(m.pid));
  const after = await readFile(logFile, 'utf8');
  const rotated = await readFile(`${logFile}.1`, 'utf8');
  t.regex(after, /stopping/, 'the lines after the rotation are in the new file');
  t.notRegex(rotated, /stopping/, 'and not in the rotated one');
  t.notRegex(rotated, /log file reopened/);
});

test.serial('a 100,000-file torrent under the default fd limit (1024): the daemon holds a few fds, reading a thousand adds none', async (t) => {
  const { base, mountpoint } = await fixture(t);
  const FILES = 100_000;
  const SIZE = 10;
  const data = Buffer.alloc(FILES * SIZE);
  for (let i = 0; i < FILES; i++) data.write(`${String(i).padStart(9, '0')}\n`, i * SIZE, 'latin1');
  const raw = buildTorrent({ name: 'many', pieceLength: 16 * KiB, data, files: Array.from({ length: FILES }, (_, i) => ({ path: [`d${i % 100}`, `f${i}.txt`], length: SIZE })) });
  const torrent = path.join(base, 'many.torrent');
  await writeFile(torrent, raw);

  // An honest seeder in this process (the mount is another process: no deadlock).
  const { swarm: seeder, port } = await startSeederFromBytes(raw, data);
  t.teardown(() => seeder.close());

  const m = await mountWithCli(mountpoint, ['mount', torrent, mountpoint, '--cache', path.join(base, 'cache'), '--port', '0', '--no-dht', '--peer', `127.0.0.1:${port}`], { timeoutMs: 120_000 });
  t.teardown(() => m.unmount());
  // The default soft limit of a login (1024), set on the running daemon (this machine's is higher).
  const lowered = await run('prlimit', ['--pid', String(m.pid), '--nofile=1024:1024']);
  t.is(lowered.code, 0, lowered.stderr);
  const limits = await readFile(`/proc/${m.pid}/limits`, 'utf8');
  t.regex(limits, /Max open files\s+1024\s/, 'the daemon runs with the 1024 limit');
  const before = await openFds(m.pid);

  // Walk the whole tree, then read 1,031 files spread over every directory, each checked.
  const script = `
import os, sys
root = sys.argv[1]
n = sum(len(files) for _, _, files in os.walk(root))
bad = 0
for i in range(0, 100000, 97):
    with open(os.path.join(root, 'd%d' % (i % 100), 'f%d.txt' % i), 'rb') as f:
        if f.read() != (b'%09d\\n' % i): bad += 1
print(n, bad)
`;
  const res = await python(script, [mountpoint], 240_000);
  t.is(res.code, 0, res.stderr);
  t.is(res.stdout.trim(), `${FILES} 0`, 'every file listed, every byte read right');
  const after = await openFds(m.pid);
  t.log(`daemon fds: ${before} after mounting, ${after} after the walk and 1031 reads (limit 1024)`);
  t.true(after <= before + 8, `fds grew from ${before} to ${after}`);
  t.true(after < 100);
});
