import { statfs } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';

/**
 * Where the cache lives and how big it may grow: `--cache DIR` and `--cache-size`
 * defaults (sizes like `20G` are parsed by byte-size.ts).
 */

const KiB = 1024;
const GiB = KiB * KiB * KiB;

/** The default budget before the free-space cap: 10 GiB. */
export const DEFAULT_CACHE_BUDGET = 10 * GiB;
/** Share of the cache disk that the default budget always leaves free. */
export const MIN_FREE_FRACTION = 0.05;
/** The default-size rule in words, for `--help`. */
export const DEFAULT_CACHE_BUDGET_RULE =
  'default 10G, lowered when needed so that at least 5 % of the cache disk stays free';

/** `$XDG_CACHE_HOME/btmount`, else `~/.cache/btmount` (a relative XDG_CACHE_HOME is ignored, as the XDG spec says). */
export function defaultCacheRoot(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const xdg = env['XDG_CACHE_HOME'];
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.cache');
  return path.join(base, 'btmount');
}

/** The default budget for a disk: 10 GiB, but never so much that less than 5 % of the disk would stay free. */
export function budgetForDisk(disk: { totalBytes: number; availableBytes: number }): number {
  const keepFree = Math.ceil(disk.totalBytes * MIN_FREE_FRACTION);
  return Math.max(0, Math.min(DEFAULT_CACHE_BUDGET, disk.availableBytes - keepFree));
}

/**
 * The default `--cache-size` for a cache root (which need not exist yet: the disk
 * of its nearest existing ancestor is measured). Bytes this cache already holds
 * count as used space, so the rule is conservative on a remount.
 */
export async function defaultCacheBudget(cacheRoot: string): Promise<number> {
  let dir = path.resolve(cacheRoot);
  for (;;) {
    try {
      const s = await statfs(dir);
      return budgetForDisk({ totalBytes: s.blocks * s.bsize, availableBytes: s.bavail * s.bsize });
    } catch (err) {
      const parent = path.dirname(dir);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === dir) throw err;
      dir = parent;
    }
  }
}
