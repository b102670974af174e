/**
 * Shared by the warm, status and control tests: a dataset seeded by
 * `btmount seed` on 127.0.0.1 and mounted by the real CLI, each test with its
 * own temp dir and its own runtime directory (XDG_RUNTIME_DIR), so its mount
 * records and control socket are its own. Every process started here is ended
 * by its PID in teardown.
 */
import type { ExecutionContext } from 'ava';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { btmount, tempDir, type RunResult } from './helpers/run.js';
import { BTMOUNT_BIN, freePort, makeDataset, startProcess, type Dataset, type Proc } from './helpers/peers.js';
import { mountWithCli } from './helpers/mount.js';
import { ControlConnection } from '../src/control/client.js';
import type { CheckResult, ControlReply, ControlRequest } from '../src/control/protocol.js';
import type { MountStatus } from '../src/control/status-schema.js';

export interface Fixture {
  dir: string;
  ds: Dataset;
  /** Environment for every btmount command of this test (its own runtime dir). */
  env: NodeJS.ProcessEnv;
  mountpoint: string;
  pid: number;
  seeder: Proc | undefined;
  logFile: string;
  /** Runs the CLI with this test's environment. */
  bt(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<RunResult>;
  /** Starts the CLI as a long-running child (ended by PID in teardown). */
  spawn(args: string[]): Proc;
  /** The mount's control socket (in this test's runtime dir). */
  socket(): Promise<string>;
  /** Status straight from the control socket (the CLI's own output is tested apart). */
  status(): Promise<MountStatus>;
}

/** One request on the control socket, from this process (which does not serve the mount), and its first reply. */
export async function ask(f: Fixture, request: ControlRequest): Promise<ControlReply> {
  const conn = await ControlConnection.connect(await f.socket(), f.mountpoint);
  try {
    conn.send(request);
    for await (const reply of conn.replies()) return reply;
    throw new Error('no reply');
  } finally {
    conn.close();
  }
}

export interface FixtureOptions {
  files: Array<{ path: string; length: number }>;
  pieceSize?: number;
  seed?: boolean;
  /** Extra `btmount mount` options. */
  mount?: string[];
  readTimeout?: number;
  /** Called with the fixture dir before mounting (e.g. to prepare the runtime dir); may return more mount options. */
  beforeMount?: (dir: string, env: NodeJS.ProcessEnv, ds: Dataset) => Promise<string[] | void>;
}

export async function mountFixture(t: ExecutionContext, opts: FixtureOptions): Promise<Fixture> {
  const tmp = await tempDir('btmount-ctl-');
  t.teardown(tmp.cleanup);
  const dir = tmp.path;
  const env = { ...process.env, XDG_RUNTIME_DIR: path.join(dir, 'run') };
  const ds = await makeDataset(dir, 'dataset', opts.files, opts.pieceSize ?? 64 * 1024);
  const bt = (args: string[], o: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> =>
    btmount(args, { env, timeoutMs: o.timeoutMs ?? 60_000, ...(o.input !== undefined ? { input: o.input } : {}) });
  const children: Proc[] = [];
  const spawnCli = (args: string[]): Proc => {
    const proc = startProcess(process.execPath, [BTMOUNT_BIN, ...args], { env });
    children.push(proc);
    return proc;
  };
  t.teardown(async () => {
    for (const c of children) await c.stop();
  });

  let seeder: Proc | undefined;
  const peers: string[] = [];
  if (opts.seed !== false) {
    const port = await freePort();
    seeder = spawnCli(['seed', ds.torrentPath, ds.root, '--host', '127.0.0.1', '--port', String(port), '--no-dht']);
    await seeder.waitFor(/seeding .* on port/, 60_000);
    peers.push('--peer', `127.0.0.1:${port}`);
  }
  const more = (await opts.beforeMount?.(dir, env, ds)) ?? [];
  const mountpoint = path.join(dir, 'mnt');
  await mkdir(mountpoint);
  const logFile = path.join(dir, 'mount.log');
  const args = ['mount', ds.torrentPath, mountpoint, '--cache', path.join(dir, 'cache'), '--port', '0', '--no-dht', '--log-file', logFile, ...peers];
  args.push('--read-timeout', String(opts.readTimeout ?? 30), ...(opts.mount ?? []), ...more);
  const mounted = await mountWithCli(mountpoint, args, { env });
  const pid = mounted.pid;
  t.teardown(mounted.unmount);
  const fixture: Fixture = {
    dir,
    ds,
    env,
    mountpoint,
    pid,
    seeder,
    logFile,
    bt,
    spawn: spawnCli,
    async socket() {
      const runDir = path.join(dir, 'run', 'btmount');
      const name = (await readdir(runDir)).find((n) => n.endsWith('.sock'));
      if (!name) throw new Error(`no control socket in ${runDir}`);
      return path.join(runDir, name);
    },
    async status() {
      const reply = await ask(fixture, { op: 'status' });
      if (reply.type !== 'result' || !('status' in reply)) throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
      return reply.status;
    },
  };
  return fixture;
}

/** What the cache holds of some mount-relative paths, in percent, in order (a `check` request). */
export async function cachedPercent(f: Fixture, paths: string[]): Promise<number[]> {
  const reply = await ask(f, { op: 'check', paths });
  if (reply.type !== 'result' || !('check' in reply)) throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
  return (reply.check as CheckResult).paths.map((p) => (p.bytes === 0 ? 100 : Math.floor((p.cachedBytes / p.bytes) * 1000) / 10));
}

/** Polls status until `done` holds, or fails after `timeoutMs` (a deadline, not a timing assertion). */
export async function waitForStatus(f: Fixture, done: (s: MountStatus) => boolean, timeoutMs = 60_000): Promise<MountStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await f.status();
    if (done(s)) return s;
    if (Date.now() > deadline) throw new Error(`status never reached the expected state: ${JSON.stringify(s.warm)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
