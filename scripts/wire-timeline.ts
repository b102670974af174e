/**
 * The wire counters of a cluster run (`bench-cluster.js --counters DIR`, or
 * BTMOUNT_WIRE_COUNTERS_DIR on any daemon: src/swarm/wire-counters.ts), as a timeline: for each
 * counter asked for, a row per process (`seed` or `mount`, by pid) and a column per second since
 * the first block moved. The view that showed one node taking the origin's whole output while
 * the seven others traded nothing (README, Clusters):
 *
 *   node dist/scripts/wire-timeline.js --dir /tmp/ctr --keys blocksSent,blocksReceived,gWanted
 *
 * Processes that never sent or received a block are left out. One run per directory: seconds
 * count from the first block any process in it moved (`--workloads full --nodes 8`, say).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { benchOptions } from './bench-options.js';

type Line = Record<string, number | string> & { t: number; argv: string };

const options = benchOptions('Per-process, per-second wire counters of a cluster run.', {
  dir: '',
  keys: 'blocksSent,blocksReceived,gWanted,gInflight',
  from: '0',
  to: '30',
});
if (!options.dir) {
  process.stderr.write('wire-timeline: --dir DIR is needed (where the daemons wrote <pid>.jsonl)\n');
  process.exit(2);
}

const moved = (l: Line): boolean => Number(l['blocksSent'] ?? 0) + Number(l['blocksReceived'] ?? 0) > 0;
const processes: Array<{ name: string; lines: Line[] }> = [];
let files: string[];
try {
  files = readdirSync(options.dir).filter((f) => f.endsWith('.jsonl')).sort();
} catch (err) {
  process.stderr.write(`wire-timeline: cannot read ${options.dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`);
  process.exit(2);
}
for (const file of files) {
  const lines = readFileSync(path.join(options.dir, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Line);
  if (lines.some(moved)) processes.push({ name: `${lines[0]!.argv} ${path.basename(file, '.jsonl')}`, lines });
}
if (processes.length === 0) {
  process.stderr.write(`wire-timeline: no process in ${options.dir} sent or received a block\n`);
  process.exit(1);
}

const start = Math.min(...processes.flatMap((p) => p.lines.filter(moved).map((l) => l.t)));
const seconds: number[] = [];
for (let s = Number(options.from); s < Number(options.to); s++) seconds.push(s);
const width = Math.max(...processes.map((p) => p.name.length));
for (const key of options.keys.split(',')) {
  console.log(`== ${key}`);
  console.log(`${'s'.padEnd(width)} ${seconds.map((s) => String(s).padStart(6)).join('')}`);
  for (const p of processes) {
    const bySecond = new Map(p.lines.map((l) => [Math.round((l.t - start) / 1000), Number(l[key] ?? 0)]));
    console.log(`${p.name.padEnd(width)} ${seconds.map((s) => String(Math.round(bySecond.get(s) ?? 0)).padStart(6)).join('')}`);
  }
}
