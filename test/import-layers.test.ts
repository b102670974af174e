import test from 'ava';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from './helpers/run.js';

// Every import arrow points down the layers (issue 17): cli on top; then daemon;
// then control, fs, discovery, metrics and webseed; then reader and swarm; then scheduler and store;
// metainfo; and at the ground the one-file helpers in src/ (log, sizes, errors, …).
// A folder may import itself and anything in a lower layer; from beside it only
// types (status reports the discovery's own report type), from above nothing.

const LAYER: Record<string, number> = {
  cli: 6,
  daemon: 5,
  control: 4,
  fs: 4,
  discovery: 4,
  metrics: 4,
  // A web seed is a source built on the swarm's pieces (rate limiter, verification); the
  // daemon will hand it to the swarm, so it sits above swarm/ as discovery does.
  webseed: 4,
  reader: 3,
  swarm: 3,
  scheduler: 2,
  store: 2,
  metainfo: 1,
  '.': 0,
};

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(full)));
    else if (entry.name.endsWith('.ts')) out.push(full);
  }
  return out;
}

test('no import runs up or sideways between the layers of src/', async (t) => {
  const src = path.join(REPO_ROOT, 'src');
  const wrong: string[] = [];
  let arrows = 0;
  for (const file of await sources(src)) {
    const from = path.dirname(path.relative(src, file)).split(path.sep)[0]!;
    t.true(from in LAYER, `${from}/ has a layer`);
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(/^(import type|export type|import|export)[^'"]*?from '(\.[^']+)'/gm)) {
      const typeOnly = m[1]!.endsWith('type');
      const target = path.relative(src, path.resolve(path.dirname(file), m[2]!));
      const to = target.includes(path.sep) ? target.split(path.sep)[0]! : '.';
      if (to === from) continue;
      arrows++;
      const below = to in LAYER && LAYER[to]! < LAYER[from]!;
      const besideTypes = to in LAYER && LAYER[to] === LAYER[from] && typeOnly;
      if (!below && !besideTypes) wrong.push(`${path.relative(src, file)} → ${target}`);
    }
  }
  t.true(arrows > 50, `saw ${arrows} arrows between folders`);
  t.deepEqual(wrong, []);
});
