/**
 * `npm run fuzz`: replays the regression corpus, then runs every target on
 * generated inputs for its share of FUZZ_SECONDS (default 60). Exits 1 on a
 * finding (stored under test/fuzz/corpus/<target>/finding-*.json) or a
 * corpus input that breaks again.
 *
 *   FUZZ_SECONDS=600 npm run fuzz            # ten minutes over all targets
 *   FUZZ_SECONDS=30 npm run fuzz -- wire     # one target
 *   FUZZ_SEED=123 npm run fuzz               # repeat a run
 */
import { FUZZ_TARGETS } from './targets/index.js';
import { fuzzFor, replayCorpus, saveFinding } from './runner.js';

const seconds = Number(process.env['FUZZ_SECONDS'] ?? 60);
const seed = process.env['FUZZ_SEED'] === undefined ? undefined : Number(process.env['FUZZ_SEED']);
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !FUZZ_TARGETS.some((t) => t.name === w));
if (!(seconds > 0) || unknown.length > 0) {
  console.error(unknown.length > 0 ? `fuzz: no target ${unknown.join(', ')} (targets: ${FUZZ_TARGETS.map((t) => t.name).join(' ')})` : 'fuzz: FUZZ_SECONDS must be a positive number');
  process.exit(2);
}
const targets = FUZZ_TARGETS.filter((t) => wanted.length === 0 || wanted.includes(t.name));
const share = (seconds * 1000) / targets.length;

let failed = false;
for (const target of targets) {
  const regressions = await replayCorpus(target);
  for (const r of regressions) {
    failed = true;
    console.log(`${target.name}: corpus input ${r.file} fails again: ${r.message}`);
  }
  const result = await fuzzFor(target, share, seed);
  const rate = Math.round(result.executions / result.seconds);
  if (result.finding) {
    failed = true;
    const file = await saveFinding(result);
    console.log(`${target.name}: FINDING after ${result.executions} executions: ${result.finding.message}\n  input saved to ${file}\n  repeat: FUZZ_SEED=${result.finding.seed} npm run fuzz -- ${target.name}`);
  } else {
    console.log(`${target.name}: ${result.executions} executions in ${result.seconds.toFixed(1)} s (${rate}/s), no finding — ${target.what}${target.depth ? ` [${target.depth()}]` : ''}`);
  }
}
const mem = process.memoryUsage();
console.log(`fuzz: ${targets.length} targets, ${seconds} s, rss ${Math.round(mem.rss / 2 ** 20)} MiB at the end${failed ? ', FAILED' : ', ok'}`);
process.exit(failed ? 1 : 0);
