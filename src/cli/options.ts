import { parseSize } from '../byte-size.js';
import { UserError } from '../user-error.js';
import { parseWebSeedUrl } from '../webseed/web-seed-url.js';

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

/** A numeric user or group id, as mount-s3's --uid/--gid take it. */
export function parseId(text: string, flag: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 0xffff_fffe) throw new UserError(`invalid ${flag}`, `not a numeric id: ${text}`);
  return n;
}

/** Permission bits in octal: `0444`, `444`, `0o755`. */
export function parseMode(text: string, flag: string): number {
  const digits = text.replace(/^0o/i, '');
  if (!/^[0-7]{1,4}$/.test(digits) || Number.parseInt(digits, 8) > 0o777) {
    throw new UserError(`invalid ${flag}`, `expected octal permission bits like 0444 (at most 0777), got ${text}`);
  }
  return Number.parseInt(digits, 8);
}

/** `--metrics`: `PORT` (on 127.0.0.1), `HOST:PORT` or `[v6::addr]:PORT`. */
export function parseMetricsAddress(text: string, flag = '--metrics'): HostPort {
  if (/^\d+$/.test(text)) {
    const port = parsePort(text, flag);
    if (port === 0) throw new UserError(`invalid ${flag}`, `expected PORT or HOST:PORT (port 1-65535), got ${text}`);
    return { host: '127.0.0.1', port };
  }
  return parseHostPort(text, flag);
}

/**
 * Collects a repeatable `--web-seed URL`: an http(s) URL, or a one-line error that the
 * command (`cannot mount`, `cannot seed`) cannot start with it.
 */
export const collectWebSeedUrl =
  (action: string) =>
  (text: string, previous: string[] = []): string[] => {
    try {
      return [...previous, parseWebSeedUrl(text).href];
    } catch (err) {
      throw new UserError(action, `--web-seed: ${(err as Error).message}`);
    }
  };
