import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { btmount, run, type RunResult } from './run.js';
import { BTMOUNT_BIN, startProcess, type Dataset, type Proc } from './peers.js';

export interface MountedTorrent {
  mountpoint: string;
  /** The daemon's pid, as `btmount mount` reported it. */
  pid: number;
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
