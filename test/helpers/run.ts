import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BTMOUNT_BIN = join(REPO_ROOT, 'bin', 'btmount.js');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion in a child process; never throws on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, env: opts.env ?? process.env, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
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

