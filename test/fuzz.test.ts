import test from 'ava';
import { announceIntervalMs } from '../src/discovery/tracker-announcer.js';
import { FUZZ_TARGETS } from './fuzz/targets/index.js';
import { corpusOf, fuzzFor, replayCorpus } from './fuzz/runner.js';

/**
 * The fuzz targets in the test suite: every regression input under
 * test/fuzz/corpus is replayed, then each target runs on generated input for
 * a short while (FUZZ_TEST_SECONDS in all, default 30; `npm run fuzz` runs
 * longer). A finding fails the test with the input, base64, to put in the corpus.
 */
const TOTAL_SECONDS = Number(process.env['FUZZ_TEST_SECONDS'] ?? 30);

test('a tracker interval is kept within 5 s .. 24 h; junk means the default half hour', (t) => {
  t.is(announceIntervalMs(1800), 1_800_000);
  t.is(announceIntervalMs(2 ** 31 - 1), 86_400_000);
  t.is(announceIntervalMs(1), 5_000);
  t.is(announceIntervalMs(-1800), 1_800_000);
  t.is(announceIntervalMs(undefined), 1_800_000);
  t.is(announceIntervalMs(new Uint8Array(2)), 1_800_000);
});

test('every target has regression inputs or none yet, and the corpus names only real targets', async (t) => {
  const names = new Set(FUZZ_TARGETS.map((x) => x.name));
  let inputs = 0;
  for (const target of FUZZ_TARGETS) {
    for (const { file, entry } of await corpusOf(target.name)) {
      t.is(entry.target, target.name, file);
      t.false(entry.note.startsWith('UNFIXED'), `${file} is a finding not yet fixed`);
      inputs++;
    }
  }
  t.true(names.size === FUZZ_TARGETS.length);
  t.true(inputs >= 6, `${inputs} corpus inputs`);
});

for (const target of FUZZ_TARGETS) {
  test.serial(`${target.name}: the corpus inputs that once broke it pass`, async (t) => {
    const failures = await replayCorpus(target);
    t.deepEqual(failures, []);
  });

  test.serial(`${target.name}: ${(TOTAL_SECONDS / FUZZ_TARGETS.length).toFixed(1)} s of generated input, no finding`, async (t) => {
    const result = await fuzzFor(target, (TOTAL_SECONDS * 1000) / FUZZ_TARGETS.length);
    t.log(`${result.executions} executions${target.depth ? `, ${target.depth()}` : ''}`);
    if (result.finding) {
      const { message, input, seed } = result.finding;
      t.fail(`${message} (seed ${seed}); input: ${JSON.stringify(input.map((c) => c.toString('base64')))}`);
    }
    t.true(result.executions > 0);
  });
}
