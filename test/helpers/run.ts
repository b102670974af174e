import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BTMOUNT_BIN = join(REPO_ROOT, 'bin', 'btmount.js');

export interface RunResult {
  /** The exit code; null when a signal ended the child (then `signal` says which). */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** run() killed the child: still running at `timeoutMs` (a hang, not an answer), or past maxBuffer. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion in a child process; never throws on a non-zero exit or a timeout. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string; uid?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        env: opts.env ?? process.env,
        encoding: 'utf8',
        ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
      },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, signal: null, timedOut: false, stdout, stderr });
        // A spawn failure (ENOENT, …) has a string code: report it as exit 127, as a shell would.
        const code = typeof err.code === 'number' ? err.code : err.signal || err.killed ? null : 127;
        resolve({ code, signal: err.signal ?? null, timedOut: err.killed === true, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Runs the btmount CLI as a user would. */
export const btmount = (args: string[], opts?: Parameters<typeof run>[2]): Promise<RunResult> =>
  run(process.execPath, [BTMOUNT_BIN, ...args], opts);

/** A fresh temporary directory, removed by the returned cleanup. */
export async function tempDir(prefix = 'btmount-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

