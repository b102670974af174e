import { readFileSync } from 'node:fs';

/**
 * Whether a process with this pid is running. Signal 0 probes without
 * signalling (EPERM: it exists but belongs to another user). A zombie — a
 * daemon killed with kill -9 whose parent (often a container's PID 1) never
 * reaps it — still answers signal 0 but is gone: /proc says state Z.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false; // no /proc (not Linux) or gone just now: signal 0 said it exists
  }
  // "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
}
