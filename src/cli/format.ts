import { formatSize } from '../byte-size.js';
import type { WarmJobStatus } from '../control/status-schema.js';
import type { MetadataProgress } from '../discovery/index.js';

/** Texts for people that more than one command prints. */

/** `12/40 files, 120 MiB of 400 MiB (30%), 45.2 MiB/s, ETA 6 s`. */
export function jobProgressText(job: WarmJobStatus): string {
  const percent = job.bytes.total > 0 ? Math.floor((job.bytes.done / job.bytes.total) * 1000) / 10 : 100;
  const parts = [`${job.files.done}/${job.files.total} files`, `${formatSize(job.bytes.done)} of ${formatSize(job.bytes.total)} (${percent}%)`];
  if (job.state === 'running') {
    parts.push(`${formatSize(job.rate)}/s`);
    parts.push(`ETA ${job.etaSeconds === null ? '?' : formatDuration(job.etaSeconds)}`);
  }
  return parts.join(', ');
}

export function formatDuration(seconds: number): string {
  if (seconds < 10) return `${Math.round(seconds * 10) / 10} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** `1 peer`, `3 peers`. */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** `fetching metadata: 3 peers (12 known), 1 rejected`, while a magnet waits for its info dictionary. */
export function metadataProgressText(p: MetadataProgress): string {
  return `fetching metadata: ${count(p.connected, 'peer')}${p.known > p.connected ? ` (${p.known} known)` : ''}${p.rejected > 0 ? `, ${p.rejected} rejected` : ''}`;
}
