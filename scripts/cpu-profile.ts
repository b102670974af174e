/**
 * CPU profiles of btmount daemons a bench starts, without changing how they are started.
 * `node --cpu-prof` is refused in NODE_OPTIONS, and `btmount mount` spawns its daemon itself;
 * `--import` is allowed there and is inherited by that daemon. So:
 *
 *   NODE_OPTIONS="--import $PWD/dist/scripts/cpu-profile.js" BTMOUNT_CPU_PROFILE_DIR=/tmp/prof <bench>
 *
 * profiles every `btmount mount` daemon (`--foreground`) and `btmount seed` started under it
 * (other node processes are left alone) and writes `<role>-<pid>.cpuprofile` when each exits.
 *
 *   node dist/scripts/cpu-profile.js summarize /tmp/prof/mount-*.cpuprofile
 *
 * prints the functions with the most self time, and for each sample the nearest frame of
 * btmount's own code (which of our functions the time is spent under), over the transfer part of
 * each profile (from the first to the last sample under the swarm's block or request handler).
 */
import { writeFileSync, readFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

function startProfiling(dir: string, role: string): void {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.start');
  // The inspector answers on this thread synchronously, so an 'exit' handler can still write.
  process.on('exit', () => {
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(path.join(dir, `${role}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}

function frameName(n: ProfileNode): string {
  const url = n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^file:\/\//, '');
  return `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
}

const TRANSFER = /^#(onBlock|onRequest)$/;

function summarize(files: readonly string[], top: number): void {
  const self = new Map<string, number>();
  const owner = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, us: number): void => void m.set(k, (m.get(k) ?? 0) + us);
  let busy = 0;
  let idle = 0;
  for (const file of files) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    // Only the transfer: from the first to the last sample under the swarm's block or request handler
    // (start-up, connecting and the idle tail left out).
    const ours = (id: number): boolean => {
      for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) if (TRANSFER.test(byId.get(x)!.callFrame.functionName)) return true;
      return false;
    };
    let first = p.samples.findIndex(ours);
    let last = p.samples.length - 1;
    while (last > first && !ours(p.samples[last]!)) last--;
    if (first < 0) first = last + 1;
    for (let i = first; i <= last; i++) {
      const us = p.timeDeltas[i + 1] ?? 0;
      const n = byId.get(p.samples[i]!)!;
      if (n.callFrame.functionName === '(idle)') {
        idle += us;
        continue;
      }
      busy += us;
      add(self, frameName(n), us);
      let own = '(not under btmount code) ' + frameName(n);
      for (let x: number | undefined = n.id; x !== undefined; x = parent.get(x)) {
        const f = byId.get(x)!;
        if (f.callFrame.url.includes('/dist/src/')) {
          own = frameName(f);
          break;
        }
      }
      add(owner, own, us);
    }
  }
  const show = (title: string, m: Map<string, number>): void => {
    console.log(`\n${title}`);
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${(us / 1e6).toFixed(2).padStart(7)} s ${((100 * us) / busy).toFixed(1).padStart(5)} %  ${k}`);
    }
  };
  console.log(`${files.length} profiles; busy window: ${(busy / 1e6).toFixed(2)} s on the JS thread, ${(idle / 1e6).toFixed(2)} s idle`);
  show('self time', self);
  show('by the nearest btmount frame', owner);
}

const dir = process.env['BTMOUNT_CPU_PROFILE_DIR'];
const argv = process.argv.slice(2);
if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1])) && argv[0] === 'summarize') {
  summarize(argv.slice(1), Number(process.env['TOP'] ?? 30));
} else if (dir) {
  const role = argv.includes('--foreground') ? 'mount' : argv[0] === 'seed' ? 'seed' : undefined;
  if (role) startProfiling(dir, role);
}
