import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

/**
 * Debug counters of the peer wire's activity, for finding where a cluster's time and CPU go
 * (issue 11): plain integers bumped on the per-message paths, so they cost an addition each.
 * With BTMOUNT_WIRE_COUNTERS_DIR set, the process appends one JSON line a second to
 * `<dir>/<pid>.jsonl`: the counters since the last line, the CPU used and the event loop's
 * utilisation, a timeline per daemon (`scripts/bench-cluster.ts --counters DIR` sets the variable;
 * `scripts/wire-timeline.ts` prints the timelines side by side).
 * Process-wide (one swarm per daemon); without the variable nothing is written.
 */
export const wireCounters = {
  /** Upload pump passes that found the token bucket short and armed a timer. */
  uploadTimersArmed: 0,
  /** Upload pump passes (each peer, each call). */
  uploadPumps: 0,
  /** Blocks handed to the wire to send, and their bytes. */
  blocksSent: 0,
  bytesSent: 0,
  /** Socket writes (one per corked turn) and what went in them. */
  socketFlushes: 0,
  socketWrites: 0,
  socketBytes: 0,
  /** Block requests received from peers; rejected by the share policy; rejected for another reason. */
  requestsReceived: 0,
  rejectsShare: 0,
  rejectsOther: 0,
  /** Requests, cancels we sent; blocks and rejects we received. */
  requestsSent: 0,
  cancelsSent: 0,
  blocksReceived: 0,
  rejectsReceived: 0,
  /** Choke / unchoke messages we sent and received. */
  chokesSent: 0,
  unchokesSent: 0,
  chokesReceived: 0,
  unchokesReceived: 0,
  /** Connections that finished the handshake, and connections closed. */
  peersReady: 0,
  peersClosed: 0,
  /** Requests cancelled because the peer delivered nothing for the request timeout (it is snubbed). */
  timedOutRequests: 0,
  /** Scheduler runs (schedule()) and pieces verified. */
  scheduleRuns: 0,
  piecesVerified: 0,
};

type Counters = typeof wireCounters;

/** Gauges sampled with each line: the swarm's, the reader's (each sets its own key). */
export const wireGauges: Partial<Record<'swarm' | 'reader', () => Record<string, number>>> = {};

const dir = process.env['BTMOUNT_WIRE_COUNTERS_DIR'];
/** Whether the counters are written (a gauge sampler is only worth setting then). */
export const wireCountersEnabled = Boolean(dir);
if (dir) startWriting(dir);

function startWriting(dir: string): void {
  const file = path.join(dir, `${process.pid}.jsonl`);
  let last: Counters = { ...wireCounters };
  let lastCpu = process.cpuUsage();
  let lastElu = performance.eventLoopUtilization();
  const write = (): void => {
    const now = { ...wireCounters };
    const delta: Record<string, number> = {};
    for (const k of Object.keys(now) as (keyof Counters)[]) delta[k] = now[k] - last[k];
    last = now;
    const cpu = process.cpuUsage(lastCpu);
    lastCpu = process.cpuUsage();
    const elu = performance.eventLoopUtilization(lastElu);
    lastElu = performance.eventLoopUtilization();
    const line = { t: Date.now(), argv: process.argv[2], cpuUserMs: Math.round(cpu.user / 1000), cpuSysMs: Math.round(cpu.system / 1000), elu: Math.round(elu.utilization * 1000) / 1000, ...delta, ...safeSample() };
    try {
      appendFileSync(file, JSON.stringify(line) + '\n');
    } catch {
      // a debug aid: a full or missing directory must not disturb the daemon
    }
  };
  setInterval(write, 1000).unref();
}

function safeSample(): Record<string, number> {
  try {
    return { ...wireGauges.swarm?.(), ...wireGauges.reader?.() };
  } catch {
    return {};
  }
}
