import test from 'ava';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatSize, parseSize } from '../src/byte-size.js';
import { budgetForDisk, defaultCacheBudget, defaultCacheRoot } from '../src/store/cache-location.js';
import { mountTmpfs, tmpfsTest } from './helpers/tmpfs.js';

const KiB = 1024;
const MiB = KiB * KiB;
const GiB = MiB * KiB;

test('parseSize accepts plain bytes and binary K/M/G/T units', (t) => {
  const cases: Array<[string, number]> = [
    ['4096', 4096],
    ['0', 0],
    ['512M', 512 * MiB],
    ['20G', 20 * GiB],
    ['1.5G', 1.5 * GiB],
    ['2T', 2 * 1024 * GiB],
    ['64k', 64 * KiB],
    ['64K', 64 * KiB],
    ['64KiB', 64 * KiB],
    ['64KB', 64 * KiB],
    ['10 G', 10 * GiB],
    [' 3M ', 3 * MiB],
    ['100B', 100],
    ['.5M', 512 * KiB],
    ['1.', 1],
    ['0.001K', 1], // 1.024 bytes: rounds down
  ];
  for (const [text, bytes] of cases) t.is(parseSize(text), bytes, text);
});

test('parseSize rejects junk with a clear message', (t) => {
  for (const text of ['', ' ', 'G', 'abc', '-1G', '+1G', '1X', '1GG', '1.5', '1e9', 'NaN', 'Infinity', '0x10', '1,5G', '1 G B', '5 MB/s', '99999999999T']) {
    const err = t.throws(() => parseSize(text), undefined, JSON.stringify(text));
    t.regex(err!.message, /^invalid size ".*": /, text);
  }
  t.regex(t.throws(() => parseSize('12x'))!.message, /optional K, M, G or T suffix/);
  t.regex(t.throws(() => parseSize('1.5'))!.message, /whole number/);
});

test('formatSize', (t) => {
  t.is(formatSize(300), '300 B');
  t.is(formatSize(64 * KiB), '64 KiB');
  t.is(formatSize(1.5 * GiB), '1.5 GiB');
});

test('defaultCacheRoot follows XDG_CACHE_HOME, else ~/.cache', (t) => {
  t.is(defaultCacheRoot({ XDG_CACHE_HOME: '/var/cache/me' }, '/home/u'), '/var/cache/me/btmount');
  t.is(defaultCacheRoot({}, '/home/u'), '/home/u/.cache/btmount');
  t.is(defaultCacheRoot({ XDG_CACHE_HOME: '' }, '/home/u'), '/home/u/.cache/btmount');
  t.is(defaultCacheRoot({ XDG_CACHE_HOME: 'relative/dir' }, '/home/u'), '/home/u/.cache/btmount');
  t.true(path.isAbsolute(defaultCacheRoot()));
});

test('the default budget is 10 GiB, capped so 5 % of the disk stays free', (t) => {
  t.is(budgetForDisk({ totalBytes: 1000 * GiB, availableBytes: 500 * GiB }), 10 * GiB);
  t.is(budgetForDisk({ totalBytes: 100 * GiB, availableBytes: 12 * GiB }), 7 * GiB);
  t.is(budgetForDisk({ totalBytes: 100 * GiB, availableBytes: 4 * GiB }), 0);
});

test('defaultCacheBudget measures the disk of the nearest existing ancestor', async (t) => {
  const s = await statfs(tmpdir());
  const expected = budgetForDisk({ totalBytes: s.blocks * s.bsize, availableBytes: s.bavail * s.bsize });
  const got = await defaultCacheBudget(path.join(tmpdir(), 'does', 'not', 'exist', 'btmount'));
  t.true(Math.abs(got - expected) < 64 * MiB, `${got} vs ${expected}`); // the disk is shared: allow some drift
});

tmpfsTest('defaultCacheBudget of a small disk is its size less the 5 % kept free (a 20 MiB tmpfs)', async (t) => {
  const small = await mountTmpfs(t, '20m');
  const budget = await defaultCacheBudget(path.join(small, 'btmount'));
  t.is(budget, 20 * MiB - Math.ceil(20 * MiB * 0.05));
});
