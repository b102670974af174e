import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { btmount, run, type RunResult } from './run.js';
import { BTMOUNT_BIN, startProcess, type Dataset, type Proc } from './peers.js';
import { requestOnce } from '../../src/control/client.js';
import type { MountStatus } from '../../src/control/status-schema.js';

export interface MountedTorrent {
  mountpoint: string;
  /** The daemon's pid, as `btmount mount` reported it. */
  pid: number;
  /** The daemon's JSON log, as `btmount mount` reported it. */
  logFile: string;
  /** What `btmount mount` printed (metadata progress goes to stderr). */
  stdout: string;
  stderr: string;
  /** `btmount umount`, then a lazy fusermount and a SIGKILL of the daemon as fallbacks. */
  unmount(): Promise<RunResult>;
}

/**
 * Runs `btmount mount ...args` (daemon mode, as a user runs it) for an existing
 * `mountpoint`. Throws with the CLI's output when it fails. Pass `t.teardown(m.unmount)`.
 */
export async function mountWithCli(mountpoint: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<MountedTorrent> {
  const res = await btmount(args, { timeoutMs: opts.timeoutMs ?? 60_000, ...(opts.env ? { env: opts.env } : {}) });
  if (res.code !== 0) throw new Error(`btmount mount failed (${res.code}): ${res.stderr}${res.stdout}`);
  const pid = Number(/daemon pid (\d+)/.exec(res.stdout)?.[1]);
  let done = false;
  return {
    mountpoint,
    pid,
    logFile: /, log (.+)\)$/m.exec(res.stdout)?.[1] ?? '',
    stdout: res.stdout,
    stderr: res.stderr,
    async unmount() {
      if (done) return { code: 0, signal: null, timedOut: false, stdout: '', stderr: '' };
      done = true;
      const result = await btmount(['umount', mountpoint], { timeoutMs: 30_000, ...(opts.env ? { env: opts.env } : {}) });
      if (result.code !== 0) {
        await run('fusermount', ['-uz', mountpoint]);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await rm(mountpoint, { recursive: true, force: true }).catch(() => undefined);
      return result;
    },
  };
}

/** Mounts a torrent on a fresh directory under `base`, with no DHT (tests never reach the public routers). */
export async function mountTorrent(
  base: string,
  torrent: string,
  opts: { peers?: string[]; readTimeout?: number; cache?: string; extra?: string[]; name?: string } = {},
): Promise<MountedTorrent> {
  const mountpoint = path.join(base, opts.name ?? 'mnt');
  await mkdir(mountpoint, { recursive: true });
  const args = ['mount', torrent, mountpoint, '--cache', opts.cache ?? path.join(base, 'cache'), '--port', '0', '--no-dht'];
  for (const p of opts.peers ?? []) args.push('--peer', p);
  if (opts.readTimeout !== undefined) args.push('--read-timeout', String(opts.readTimeout));
  args.push(...(opts.extra ?? []));
  return mountWithCli(mountpoint, args);
}

/** sha256 of a file read through the mount by a separate process (never from this one: it would deadlock). */
export async function sha256Via(file: string): Promise<string> {
  const res = await run('sha256sum', [file], { timeoutMs: 120_000 });
  if (res.code !== 0) throw new Error(`sha256sum ${file}: ${res.stderr}`);
  return res.stdout.split(' ')[0]!;
}

/** Runs a Python snippet with Debian's interpreter; argv[1..] are `args`. */
export function python(code: string, args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return run('/usr/bin/python3', ['-c', code, ...args], { timeoutMs });
}

/** `btmount seed` of a dataset on 127.0.0.1:port, resolved once it serves. */
export async function seedWithBtmount(ds: Dataset, port: number): Promise<Proc> {
  const proc = startProcess(process.execPath, [BTMOUNT_BIN, 'seed', ds.torrentPath, ds.root, '--host', '127.0.0.1', '--port', String(port), '--no-dht']);
  await proc.waitFor(/seeding .* on port/, 60_000);
  return proc;
}

const TIMED_READ = `
import errno, mmap, os, sys, time
path, direct = sys.argv[1], sys.argv[2] == 'direct'
start = time.monotonic()
try:
    if direct:
        # O_DIRECT skips the page cache (and the kernel's retry of a failed readahead page).
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, 1 << 20)
        n = total = 0
        while True:
            n = os.preadv(fd, [buf], total)
            if n <= 0: break
            total += n
        os.close(fd)
        outcome = 'read %d' % total
    else:
        with open(path, 'rb') as f:
            outcome = 'read %d' % len(f.read())
except OSError as e:
    outcome = 'error ' + errno.errorcode.get(e.errno, str(e.errno))
print(outcome)
print('%.3f' % (time.monotonic() - start))
`;

/**
 * Reads a whole file through the mount in a Python child and times it there:
 * `outcome` is `read <bytes>` or `error <ERRNO>`. `direct` uses O_DIRECT.
 */
export async function timedRead(file: string, opts: { direct?: boolean; timeoutMs?: number } = {}): Promise<{ outcome: string; seconds: number }> {
  const res = await python(TIMED_READ, [file, opts.direct ? 'direct' : 'buffered'], opts.timeoutMs ?? 120_000);
  const [outcome, seconds] = res.stdout.trim().split('\n');
  if (res.code !== 0 || outcome === undefined || seconds === undefined) throw new Error(`timed read of ${file}: ${res.stdout}${res.stderr}`);
  return { outcome, seconds: Number(seconds) };
}

/** The daemon log's lines (pino JSON) whose `msg` matches `re`; waits up to `timeoutMs` for one (pino writes asynchronously). */
export async function logLines(logFile: string, re: RegExp, timeoutMs = 10_000): Promise<Array<{ msg: string; [key: string]: unknown }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    const lines = text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string })
      .filter((l) => re.test(l.msg));
    if (lines.length > 0 || Date.now() > deadline) return lines;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `btmount status --json` of a mount, parsed (through the CLI, as a user asks). */
export async function statusJson(mountpoint: string, env?: NodeJS.ProcessEnv): Promise<MountStatus> {
  const res = await btmount(['status', mountpoint, '--json'], { timeoutMs: 60_000, ...(env ? { env } : {}) });
  if (res.code !== 0) throw new Error(`btmount status ${mountpoint} (exit ${res.code}, signal ${res.signal}): ${res.stderr}`);
  return JSON.parse(res.stdout) as MountStatus;
}

/**
 * The same status straight from the mount's control socket (this process does not
 * serve the mount, so this cannot deadlock): milliseconds, not a CLI start-up, so
 * polls keep up with a loaded machine.
 */
export async function liveStatus(mountpoint: string): Promise<MountStatus> {
  const reply = await requestOnce(mountpoint, { op: 'status' });
  if (reply.type !== 'result' || !('status' in reply)) throw new Error(`unexpected status reply ${JSON.stringify(reply)}`);
  return reply.status;
}

/** Polls status until `reads.waiting` reaches `count`: the reads are blocked in the daemon, not merely started. */
export async function waitForWaitingReads(mountpoint: string, count: number, timeoutMs = 30_000): Promise<MountStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await liveStatus(mountpoint);
    if (s.reads.waiting >= count) return s;
    if (Date.now() > deadline) throw new Error(`only ${s.reads.waiting} of ${count} reads ever waited: ${JSON.stringify(s.reads)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
