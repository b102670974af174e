/** Small tmpfs file systems for the tests that need an exact or a full disk (root only). */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tempDir } from './store-fixtures.js';

/**
 * Why a tmpfs cannot be mounted here (not root, no mount namespace), or undefined
 * when it can: probed once, synchronously, when a test file loads, so the tests
 * that need one are declared skipped (TAP `# SKIP`) instead of passing empty.
 */
export const tmpfsUnavailable: string | undefined = (() => {
  const dir = mkdtempSync(path.join(tmpdir(), 'btmount-tmpfs-probe-'));
  try {
    const result = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { encoding: 'utf8' });
    if (result.status !== 0) return (result.stderr || result.error?.message || `mount exited ${result.status}`).trim();
    spawnSync('umount', [dir]);
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
})();

/** `test` where a tmpfs can be mounted, `test.skip` where it cannot (the title says so). */
export const tmpfsTest = tmpfsUnavailable === undefined ? test : test.skip;

/** Mounts a fresh tmpfs of `size` (e.g. '2m') on a temp directory, unmounted at teardown. Use under `tmpfsTest`. */
export async function mountTmpfs(t: { teardown(fn: () => Promise<void> | void): void }, size: string): Promise<string> {
  const dir = await tempDir(t, 'btmount-tmpfs-');
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`cannot mount a tmpfs on ${dir}: ${(result.stderr || result.error?.message || '').trim()}`);
  // Registered after tempDir's removal, so it runs first (ava runs teardowns last-in first-out).
  t.teardown(() => {
    spawnSync('umount', [dir]);
  });
  return dir;
}
