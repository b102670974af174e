import bytes from 'bytes';

/** 1073741824 → "1 GiB": binary units, as `--cache-size` takes them. */
export function formatBytes(n: number): string {
  const text = bytes.format(n, { unitSeparator: ' ', decimalPlaces: 2 }) ?? String(n);
  return text.replace(/([KMGTP])B$/, '$1iB');
}
