/** Byte counts as people write and read them: binary units (K = 1024), as `--cache-size` takes them. */

const KiB = 1024;

const UNITS: Record<string, number> = { '': 1, k: KiB, m: KiB ** 2, g: KiB ** 3, t: KiB ** 4 };
// A decimal number, then an optional binary unit: K, M, G, T (optionally KiB/KB/...), or B for bytes.
const SIZE = /^(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(?:i?b)?|b)?$/i;

/**
 * Parses a byte size: `4096`, `512M`, `20G`, `1.5G`, `2T`, `64KiB`. Units are binary
 * (K = 1024); a fraction of a unit rounds down to whole bytes.
 */
export function parseSize(text: string): number {
  const match = SIZE.exec(text.trim());
  if (!match) {
    throw new Error(
      `invalid size "${text}": expected a number with an optional K, M, G or T suffix (binary units), e.g. 4096, 512M, 1.5G, 20G`,
    );
  }
  const value = Number(match[1]);
  const unit = UNITS[(match[2] ?? '').toLowerCase()] ?? 1;
  const bytes = value * unit;
  if (unit === 1 && !Number.isInteger(value)) {
    throw new Error(`invalid size "${text}": a size in bytes must be a whole number`);
  }
  if (!Number.isSafeInteger(Math.floor(bytes))) throw new Error(`invalid size "${text}": too large`);
  return Math.floor(bytes);
}

/** Human form of a byte count for messages: `1.5 GiB`, `512 MiB`, `300 B`. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  const digits = i === 0 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits)} ${units[i]}`;
}
