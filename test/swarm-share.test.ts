import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { asInfoHash, PieceLayout, pieceIndex } from '../src/metainfo/piece-layout.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import { MemoryPieceStorage, Swarm } from '../src/swarm/index.js';
import { wireCounters } from '../src/swarm/wire-counters.js';

// The share policy of an origin ('distinct') between real swarms on 127.0.0.1.
const PIECE = 64 * 1024;
const COUNT = 8;
const data = randomBytes(PIECE * COUNT);
const hashes = Buffer.concat(Array.from({ length: COUNT }, (_, i) => createHash('sha1').update(data.subarray(i * PIECE, (i + 1) * PIECE)).digest()));
const layout = new PieceLayout(PIECE, data.length, hashes);
const infoHash = asInfoHash(randomBytes(20).toString('hex'));

async function seed(opts: { shareMode?: 'distinct' | 'all' } = {}): Promise<{ swarm: Swarm; port: number }> {
  const storage = new MemoryPieceStorage(layout);
  for (let i = 0; i < COUNT; i++) await storage.put(VerifiedPiece.check(layout, pieceIndex(i), data.subarray(i * PIECE, (i + 1) * PIECE))!);
  const swarm = new Swarm({ infoHash, layout, storage, port: 0, host: '127.0.0.1', ...opts });
  return { swarm, port: await swarm.listen() };
}

const until = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
};

// In the cluster bench the first node to finish became the only source of the last pieces for
// the other seven (its one upload shared seven ways) while the origin rejected every request,
// because "another peer has it": the peer that had it was a seed, as loaded as the origin.
test('an origin does not reject in favour of another seed: a node gets every piece from it without a reject', async (t) => {
  const origin = await seed({ shareMode: 'distinct' });
  const other = await seed();
  const node = new Swarm({ infoHash, layout, storage: new MemoryPieceStorage(layout), port: 0, host: '127.0.0.1' });
  try {
    // The other seed is connected to the origin (the origin knows it has every piece); the node
    // reaches only the origin, so a reject could only send it back to the origin.
    other.swarm.addPeer('127.0.0.1', origin.port);
    await until(() => origin.swarm.sourcesOf(pieceIndex(0)) === 1, 'the origin to know the other seed has the pieces');
    const rejectsBefore = wireCounters.rejectsShare;
    node.addPeer('127.0.0.1', origin.port);
    await Promise.all(Array.from({ length: COUNT }, (_, i) => node.fetch(pieceIndex(i), 'warm')));
    t.is(wireCounters.rejectsShare - rejectsBefore, 0, 'the origin rejected requests in favour of a seed');
    t.is(origin.swarm.stats().uploaded, data.length);
  } finally {
    await node.close();
    await other.swarm.close();
    await origin.swarm.close();
  }
});
