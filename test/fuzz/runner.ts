import fc from 'fast-check';
import { readdir, readFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/run.js';
import { decodeEntry, encodeEntry, type CorpusEntry, type FuzzTarget } from './target.js';

export const CORPUS_DIR = path.join(REPO_ROOT, 'test', 'fuzz', 'corpus');
/** A run that takes longer than this is a hang (every input is small). */
const RUN_TIMEOUT_MS = Number(process.env['FUZZ_RUN_TIMEOUT_MS'] ?? 10_000);

export interface FuzzResult {
  target: string;
  executions: number;
  seconds: number;
  finding?: { message: string; input: Buffer[]; seed: number; path: string[] };
}

/**
 * Errors thrown outside a run's own promise (an 'error' event nobody
 * handles, a throw in a socket callback) would crash btmount; here they fail
 * the run that was going on when they came.
 */
let stray: unknown;
let strayHooked = false;
function hookStrayErrors(): void {
  if (strayHooked) return;
  strayHooked = true;
  process.on('uncaughtException', (err) => {
    stray ??= err;
  });
  process.on('unhandledRejection', (err) => {
    stray ??= err;
  });
}

/** Feeds one input to the target, bounded in time; throws on a finding. */
export async function runOnce(target: FuzzTarget, input: Buffer[]): Promise<void> {
  hookStrayErrors();
  stray = undefined;
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: no answer in ${RUN_TIMEOUT_MS} ms`)), RUN_TIMEOUT_MS);
  });
  try {
    await Promise.race([target.run(input), hang]);
    await new Promise((resolve) => setImmediate(resolve)); // let callbacks the input set off run
  } finally {
    clearTimeout(timer);
  }
  if (stray !== undefined) {
    const err = stray;
    stray = undefined;
    throw err instanceof Error ? err : new Error(`non-error thrown: ${String(err)}`);
  }
}

/** Runs generated inputs against one target for `ms` milliseconds (or until the first finding, shrunk). */
export async function fuzzFor(target: FuzzTarget, ms: number, seed = Date.now() ^ (Math.random() * 2 ** 31)): Promise<FuzzResult> {
  let executions = 0;
  const started = performance.now();
  await target.open?.();
  try {
    const details = await fc.check(
      fc.asyncProperty(target.input, async (input) => {
        executions++;
        await runOnce(target, input);
      }),
      { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: ms, markInterruptAsFailure: false, seed },
    );
    const result: FuzzResult = { target: target.name, executions, seconds: (performance.now() - started) / 1000 };
    if (details.failed && details.counterexample) {
      const err = details.errorInstance;
      result.finding = {
        message: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
        input: details.counterexample[0],
        seed: details.seed,
        path: details.counterexamplePath ? [details.counterexamplePath] : [],
      };
    }
    return result;
  } finally {
    await target.close?.();
  }
}

/** Every stored regression input of a target. */
export async function corpusOf(target: string): Promise<Array<{ file: string; entry: CorpusEntry }>> {
  const dir = path.join(CORPUS_DIR, target);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
  return Promise.all(names.map(async (n) => ({ file: path.join(dir, n), entry: JSON.parse(await readFile(path.join(dir, n), 'utf8')) as CorpusEntry })));
}

/** Replays a target's corpus; returns the files whose input still breaks it. */
export async function replayCorpus(target: FuzzTarget): Promise<Array<{ file: string; message: string }>> {
  const failures: Array<{ file: string; message: string }> = [];
  const entries = await corpusOf(target.name);
  if (entries.length === 0) return failures;
  await target.open?.();
  try {
    for (const { file, entry } of entries) {
      try {
        await runOnce(target, decodeEntry(entry));
      } catch (err) {
        failures.push({ file, message: (err as Error).message });
      }
    }
  } finally {
    await target.close?.();
  }
  return failures;
}

/** Stores a finding as a corpus entry (to become a regression test once fixed); returns its path. */
export async function saveFinding(result: FuzzResult): Promise<string> {
  const f = result.finding!;
  const dir = path.join(CORPUS_DIR, result.target);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `finding-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const entry = encodeEntry(result.target, `UNFIXED: ${f.message} (seed ${f.seed})`, f.input);
  await writeFile(file, JSON.stringify(entry, null, 2) + '\n');
  return file;
}
