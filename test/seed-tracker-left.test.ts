/**
 * `btmount seed` tells trackers it is a seeder (issue 13 item 3): `left=0` from
 * its very first announce, over HTTP and UDP, checked against bittorrent-tracker's
 * real server and its scrape counts.
 */
import test from 'ava';
import bencode from 'bencode';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AnnounceParams } from 'bittorrent-tracker';
import { startTrackerServer, type LocalTracker } from './helpers/discovery.js';
import { BTMOUNT_BIN, makeDataset, startProcess, type Dataset, type Proc } from './helpers/peers.js';

const PIECE = 16 * 1024;

let base: string;
let ds: Dataset;

test.before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'btmount-seed-left-'));
  ds = await makeDataset(base, 'ds', [{ path: 'a.bin', length: 5 * PIECE + 3 }, { path: 'b.bin', length: 2 * PIECE }], PIECE);
});

test.after.always(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

async function seedAnnouncing(t: import('ava').ExecutionContext, folder: string, tracker: LocalTracker): Promise<{ proc: Proc; port: number }> {
  const proc = startProcess(process.execPath, [
    BTMOUNT_BIN, 'seed', ds.torrentPath, folder, '--port', '0', '--host', '127.0.0.1', '--no-dht', '--no-pex',
    '--tracker', tracker.httpUrl, '--tracker', tracker.udpUrl,
  ]);
  t.teardown(() => proc.stop());
  const port = Number((await proc.waitFor(/on port (\d+)/, 30_000))[1]);
  return { proc, port };
}

/** The first announce from `port` over each protocol, once both have arrived. */
async function firstAnnounces(tracker: LocalTracker, port: number): Promise<Map<string, AnnounceParams & { left?: number }>> {
  const until = Date.now() + 20_000;
  for (;;) {
    const ours = tracker.announces.filter((a) => a.port === port);
    const first = new Map<string, AnnounceParams & { left?: number }>();
    for (const a of ours) if (!first.has(a.type)) first.set(a.type, a);
    if (first.size === 2) return first;
    if (Date.now() > until) throw new Error(`announces seen: ${ours.map((a) => `${a.type} ${a.event}`).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** complete/incomplete as the tracker's HTTP scrape reports them for the torrent. */
async function scrape(tracker: LocalTracker): Promise<{ complete: number; incomplete: number }> {
  const infoHash = Buffer.from(ds.metainfo.infoHash, 'hex');
  const query = [...infoHash].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  const res = await fetch(`${tracker.httpUrl.replace(/\/announce$/, '/scrape')}?info_hash=${query}`);
  const body = bencode.decode(Buffer.from(await res.arrayBuffer())) as { files: Record<string, { complete: number; incomplete: number }> };
  const entry = Object.values(body.files)[0]!;
  return { complete: entry.complete, incomplete: entry.incomplete };
}

test('a full seed announces left=0 from its first announce (HTTP and UDP) and the tracker counts it as a seeder', async (t) => {
  const tracker = await startTrackerServer();
  t.teardown(tracker.close);
  const { port } = await seedAnnouncing(t, ds.root, tracker);
  const first = await firstAnnounces(tracker, port);
  for (const type of ['http', 'udp']) {
    const a = first.get(type)!;
    t.is(a.event, 'started', type);
    t.is(a.left, 0, `${type} started announce`);
  }
  t.deepEqual(await scrape(tracker), { complete: 1, incomplete: 0 });
});

test('a seed missing part of the data announces what it lacks, and is counted as a leecher', async (t) => {
  const partial = path.join(base, 'partial');
  await cp(ds.root, partial, { recursive: true });
  await writeFile(path.join(partial, 'b.bin'), Buffer.alloc(2 * PIECE, 7)); // b.bin spans pieces 5 (shared with a.bin), 6 and 7
  const tracker = await startTrackerServer();
  t.teardown(tracker.close);
  const { port } = await seedAnnouncing(t, partial, tracker);
  const first = await firstAnnounces(tracker, port);
  const { layout } = ds.metainfo;
  const missing = [5, 6, 7].reduce((sum, i) => sum + layout.pieceSize(i as never), 0);
  for (const type of ['http', 'udp']) t.is(first.get(type)!.left, missing, type);
  t.deepEqual(await scrape(tracker), { complete: 0, incomplete: 1 });
});
