import { parseSize } from '../byte-size.js';
import { UserError } from '../user-error.js';

/**
 * Parsers for option values shared by the commands. Each throws a UserError
 * naming the flag, so a typo reads `btmount: invalid --port: not a port number: x`.
 */

export interface HostPort {
  host: string;
  port: number;
}

export function parsePort(text: string, flag = '--port'): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new UserError(`invalid ${flag}`, `not a port number: ${text}`);
  return n;
}

/** `host:port`, `[v6::addr]:port`. */
export function parseHostPort(text: string, flag = '--peer'): HostPort {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new UserError(`invalid ${flag}`, `expected host:port, got ${text}`);
  return { host: m[1]!, port };
}

/** Collects a repeatable `--peer host:port` option. */
export const collectHostPort =
  (flag: string) =>
  (text: string, previous: HostPort[] = []): HostPort[] => [...previous, parseHostPort(text, flag)];

/** A byte size like `20G`, `512M` (binary units). */
export function parseSizeOption(text: string, flag: string): number {
  try {
    return parseSize(text);
  } catch (err) {
    throw new UserError(`invalid ${flag}`, (err as Error).message);
  }
}

/** A rate in bytes per second: `50M`, `50MB/s`, `0` for no limit. */
export function parseRate(text: string, flag: string): number {
  return parseSizeOption(text.replace(/\/s$/i, ''), flag);
}

export function parsePositive(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`invalid ${flag}`, `not a positive integer: ${text}`);
  return n;
}

/** Seconds, fractions allowed: `60`, `0.5`. */
export function parseSeconds(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UserError(`invalid ${flag}`, `not a positive number of seconds: ${text}`);
  return n;
}
