import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BLOCK_SIZE, PieceLayout, pieceIndex, type PieceIndex } from '../src/metainfo/piece-layout.js';
import { VerifiedPiece } from '../src/metainfo/verified-piece.js';
import { MemoryPieceStorage, TokenBucket } from '../src/swarm/index.js';
import type { UploadResponder } from '../src/swarm/peer-connection.js';
import { Uploader, type UploadConnection, type UploaderOptions } from '../src/swarm/uploader.js';

// The upload unit against fake connections and a real in-memory storage.
const PIECE = 2 * BLOCK_SIZE;
const COUNT = 6;
const data = randomBytes(PIECE * COUNT);
const hashes = Buffer.concat(Array.from({ length: COUNT }, (_, i) => createHash('sha1').update(data.subarray(i * PIECE, (i + 1) * PIECE)).digest()));
const layout = new PieceLayout(PIECE, data.length, hashes);

class FakeConnection implements UploadConnection {
  closed = false;
  amChoking = true;
  peerInterested = false;
  hasFast = true;
  writableLength = 0;
  speed = 0;
  chokes = 0;
  uploadSpeed(): number {
    return this.speed;
  }
  choke(): void {
    this.amChoking = true;
    this.chokes++;
  }
  unchoke(): void {
    this.amChoking = false;
  }
}

async function storageWith(pieces: number[]): Promise<MemoryPieceStorage> {
  const storage = new MemoryPieceStorage(layout);
  for (const i of pieces) await storage.put(VerifiedPiece.check(layout, pieceIndex(i), data.subarray(i * PIECE, (i + 1) * PIECE))!);
  return storage;
}

/**
 * Collects responses: block bytes or error messages, in the order they came. A block "goes
 * out" (the responder returns true) unless `cancelled` is set: then the peer had cancelled
 * the request while it was read, as the wire reports it.
 */
function responses(): {
  got: Array<Buffer | string>;
  cancelled: boolean;
  respond: UploadResponder;
  settled: (n: number) => Promise<void>;
} {
  const got: Array<Buffer | string> = [];
  const r = {
    got,
    cancelled: false,
    respond: (err: Error | null, block?: Uint8Array): boolean => {
      got.push(err ? err.message : Buffer.from(block!));
      return !err && !r.cancelled;
    },
    settled: async (n: number): Promise<void> => {
      for (let i = 0; i < 200 && got.length < n; i++) await sleep(5);
    },
  };
  return r;
}

function uploader(storage: MemoryPieceStorage, over: Partial<UploaderOptions> = {}): { up: Uploader; uploadedBy: Map<string, number>; early: Set<PieceIndex> } {
  const uploadedBy = new Map<string, number>();
  const early = new Set<PieceIndex>();
  const up = new Uploader({
    layout,
    storage,
    bucket: new TokenBucket(0),
    slots: 2,
    queueLimit: 4,
    announcedEarly: (i) => early.has(i),
    downloadRate: () => 0,
    downloading: () => false,
    anotherPeerHas: () => false,
    uploaded: (key, bytes) => uploadedBy.set(key, (uploadedBy.get(key) ?? 0) + bytes),
    ...over,
  });
  return { up, uploadedBy, early };
}

const blockOf = (i: number, offset: number, length: number): Buffer => data.subarray(i * PIECE + offset, i * PIECE + offset + length);

test('valid requests for held pieces are served from the storage and counted; others are rejected with a reason', async (t) => {
  const { up, uploadedBy } = uploader(await storageWith([0, 1]));
  const conn = new FakeConnection();
  up.addPeer('p', conn);
  up.interested('p');
  t.false(conn.amChoking, 'an interested peer is unchoked while slots are free');
  const r = responses();
  up.request('p', pieceIndex(1), BLOCK_SIZE, BLOCK_SIZE, r.respond);
  up.request('p', pieceIndex(2), 0, BLOCK_SIZE, r.respond); // not held
  up.request('p', pieceIndex(0), PIECE - 10, 20, r.respond); // past the piece's end
  up.request('p', pieceIndex(0), 0, 3 * BLOCK_SIZE, r.respond); // too long
  up.request('p', pieceIndex(COUNT), 0, BLOCK_SIZE, r.respond); // no such piece
  await r.settled(5);
  t.deepEqual(r.got.filter((x) => typeof x === 'string'), ['not available', 'not available', 'not available', 'not available']);
  t.deepEqual(r.got.filter((x) => typeof x !== 'string'), [blockOf(1, BLOCK_SIZE, BLOCK_SIZE)]);
  t.is(up.uploaded, BLOCK_SIZE);
  t.is(uploadedBy.get('p'), BLOCK_SIZE);
});

test('a block is counted as uploaded only when it went out, not when its request was cancelled during the read', async (t) => {
  const { up, uploadedBy } = uploader(await storageWith([0, 1]));
  const conn = new FakeConnection();
  up.addPeer('p', conn);
  up.interested('p');
  const sent = responses();
  const cancelledMeanwhile = responses();
  cancelledMeanwhile.cancelled = true;
  up.request('p', pieceIndex(0), 0, BLOCK_SIZE, sent.respond);
  up.request('p', pieceIndex(1), 0, BLOCK_SIZE, cancelledMeanwhile.respond);
  await sent.settled(1);
  await cancelledMeanwhile.settled(1);
  t.is(cancelledMeanwhile.got.length, 1, 'the block was read and handed to the wire');
  t.is(up.uploaded, BLOCK_SIZE, 'only the block that went out');
  t.is(uploadedBy.get('p'), BLOCK_SIZE);
});

test('a full queue rejects; a cancelled request is not served; a choked peer gets nothing read for it', async (t) => {
  const storage = await storageWith([0, 1, 2]);
  const { up } = uploader(storage);
  const conn = new FakeConnection();
  conn.unchoke();
  conn.writableLength = 10 * 1024 * 1024; // the socket is backed up: requests stay queued
  up.addPeer('p', conn);
  const r = responses();
  for (let i = 0; i < 5; i++) up.request('p', pieceIndex(i % 3), 0, BLOCK_SIZE, r.respond);
  t.deepEqual(r.got, ['request queue full']);
  up.cancel('p', 1, 0, BLOCK_SIZE);
  conn.writableLength = 0;
  up.pump('p'); // 'drain'
  await r.settled(4);
  t.deepEqual(r.got.slice(1), [blockOf(0, 0, BLOCK_SIZE), blockOf(2, 0, BLOCK_SIZE), blockOf(0, 0, BLOCK_SIZE)]);
  // Choked while a read is under way: the block is not sent.
  const r2 = responses();
  up.request('p', pieceIndex(2), BLOCK_SIZE, BLOCK_SIZE, r2.respond);
  conn.choke();
  await sleep(30);
  t.deepEqual(r2.got, []);
});

test('a request for a piece verified but not yet stored waits, and is served once it is readable', async (t) => {
  const storage = await storageWith([]);
  const { up, early } = uploader(storage);
  const conn = new FakeConnection();
  conn.unchoke();
  up.addPeer('p', conn);
  early.add(pieceIndex(3));
  const r = responses();
  up.request('p', pieceIndex(3), 0, BLOCK_SIZE, r.respond);
  await sleep(20);
  t.deepEqual(r.got, []);
  await storage.put(VerifiedPiece.check(layout, pieceIndex(3), data.subarray(3 * PIECE, 4 * PIECE))!);
  early.delete(pieceIndex(3));
  up.pumpAll();
  await r.settled(1);
  t.deepEqual(r.got, [blockOf(3, 0, BLOCK_SIZE)]);
  // One that will never be readable (the cache had no room) is rejected when pumped.
  early.add(pieceIndex(4));
  const r2 = responses();
  up.request('p', pieceIndex(4), 0, BLOCK_SIZE, r2.respond);
  early.delete(pieceIndex(4));
  up.pumpAll();
  t.deepEqual(r2.got, ['not available']);
});

test('a peer that says it is not interested has its queued requests answered (rejected), not dropped silently', async (t) => {
  const storage = await storageWith([0, 1]);
  // No tokens after the first block: the others stay queued.
  const { up } = uploader(storage, { bucket: new TokenBucket(1, BLOCK_SIZE) });
  const conn = new FakeConnection();
  up.addPeer('p', conn);
  up.interested('p');
  const r = responses();
  for (const [i, off] of [[0, 0], [0, BLOCK_SIZE], [1, 0]] as const) up.request('p', pieceIndex(i), off, BLOCK_SIZE, r.respond);
  await r.settled(1);
  t.is(r.got.length, 1, 'one block within the tokens, two queued');
  up.uninterested('p');
  t.deepEqual(r.got.slice(1), ['peer said it is not interested', 'peer said it is not interested']);
  up.close();
});

test('share policy (distinct): an origin rejects a piece another peer has, once, when the requester can be told', async (t) => {
  const all = Array.from({ length: COUNT }, (_, i) => i);
  const { up } = uploader(await storageWith(all), { shareMode: 'distinct', anotherPeerHas: (index, except) => index === 0 && except === 'a' });
  const a = new FakeConnection();
  const plain = new FakeConnection();
  plain.hasFast = false;
  for (const c of [a, plain]) c.unchoke();
  up.addPeer('a', a);
  up.addPeer('plain', plain);
  const r = responses();
  up.request('a', pieceIndex(0), 0, BLOCK_SIZE, r.respond);
  up.request('a', pieceIndex(1), 0, BLOCK_SIZE, r.respond);
  await r.settled(2);
  t.deepEqual(r.got, ['another peer has it', blockOf(1, 0, BLOCK_SIZE)]);
  const rp = responses();
  up.request('plain', pieceIndex(0), 0, BLOCK_SIZE, rp.respond); // no fast extension: cannot be rejected
  await rp.settled(1);
  t.deepEqual(rp.got, [blockOf(0, 0, BLOCK_SIZE)]);
  // Repeated later (its deadline is near), it is served.
  await sleep(300);
  up.request('a', pieceIndex(0), 0, BLOCK_SIZE, r.respond);
  await r.settled(3);
  t.deepEqual(r.got[2], blockOf(0, 0, BLOCK_SIZE));
});

test('a node still downloading serves every request, whatever the share mode', async (t) => {
  const { up } = uploader(await storageWith([0]), { shareMode: 'distinct', anotherPeerHas: () => true });
  const a = new FakeConnection();
  a.unchoke();
  up.addPeer('a', a);
  const r = responses();
  up.request('a', pieceIndex(0), 0, BLOCK_SIZE, r.respond);
  await r.settled(1);
  t.deepEqual(r.got, [blockOf(0, 0, BLOCK_SIZE)]);
});

test('choking: slots + one optimistic are unchoked at once; each round the choker decides, and a choked peer’s queue is dropped', async (t) => {
  const storage = await storageWith([0]);
  let downloading = true;
  const rates = new Map([
    ['fast', 900],
    ['mid', 500],
    ['slow', 100],
    ['idle', 0],
  ]);
  const { up } = uploader(storage, { downloadRate: (k) => rates.get(k) ?? 0, downloading: () => downloading });
  const conns = new Map([...rates.keys()].map((k) => [k, new FakeConnection()]));
  for (const [k, c] of conns) up.addPeer(k, c);
  for (const k of ['slow', 'idle', 'mid', 'fast']) {
    conns.get(k)!.peerInterested = true;
    up.interested(k);
  }
  // Two slots plus the optimistic one: the fourth interested peer waits.
  t.deepEqual([...conns].filter(([, c]) => !c.amChoking).map(([k]) => k).sort(), ['idle', 'mid', 'slow']);
  const now = 1_000_000;
  up.tick(now);
  const unchoked = [...conns].filter(([, c]) => !c.amChoking).map(([k]) => k);
  t.true(unchoked.includes('fast') && unchoked.includes('mid'), `the two that give us most: ${unchoked}`);
  t.is(unchoked.length, 3, 'and one optimistic');
  // No round before RECHOKE_EVERY_MS.
  conns.get('fast')!.peerInterested = false;
  up.tick(now + 5_000);
  t.false(conns.get('fast')!.amChoking);
  // A peer that loses its slot has its queue dropped.
  const r = responses();
  const victim = [...conns.keys()].find((k) => k !== 'mid' && k !== 'fast' && !conns.get(k)!.amChoking)!;
  conns.get(victim)!.writableLength = 10 * 1024 * 1024;
  up.request(victim, pieceIndex(0), 0, BLOCK_SIZE, r.respond);
  conns.get(victim)!.peerInterested = false;
  downloading = false;
  up.tick(now + 10_000);
  t.true(conns.get('fast')!.amChoking, 'not interested any more: choked');
  t.true(conns.get(victim)!.amChoking);
  conns.get(victim)!.writableLength = 0;
  up.pump(victim);
  await sleep(20);
  t.deepEqual(r.got, [], 'its queued request was dropped');
  // A peer that leaves is forgotten.
  up.removePeer('mid');
  up.interested('mid');
});

test('a limited upload serves the peers waiting for tokens in turn, several blocks a turn, with one timer however often it is pumped', async (t) => {
  const storage = await storageWith([0, 1, 2, 3, 4, 5]);
  // 1 MiB/s with a 64 KiB burst, on a fake clock the test moves: four blocks go at once, then a
  // turn of four blocks each time the clock moves on by 64 ms (64 KiB of tokens).
  let now = 0;
  const { up } = uploader(storage, { bucket: new TokenBucket(1024 * 1024, 64 * 1024, () => now), queueLimit: 16, slots: 3 });
  const order: string[] = [];
  const peers = ['a', 'b', 'c'];
  for (const key of peers) {
    const conn = new FakeConnection();
    up.addPeer(key, conn);
    up.interested(key);
  }
  const timeoutsBefore = activeTimeouts();
  for (const key of peers) {
    for (let i = 0; i < 8; i++) {
      up.request(key, pieceIndex(i % COUNT), 0, BLOCK_SIZE, (err) => {
        if (!err) order.push(key);
        return !err;
      });
    }
  }
  // Pumping again and again (every block stored, every 'drain') must not add timers.
  for (let i = 0; i < 100; i++) up.pumpAll();
  t.true(activeTimeouts() - timeoutsBefore <= 1, 'one token timer for every waiting peer');
  const sent = async (n: number): Promise<void> => {
    for (let i = 0; i < 400 && order.length < n; i++) await sleep(5);
  };
  await sent(4);
  t.deepEqual(order, ['a', 'a', 'a', 'a'], 'the burst goes to the first peer');
  await sleep(100); // with the clock standing still, a timer that fires sends nothing
  t.is(order.length, 4, 'no tokens, no blocks');
  for (let turn = 1; turn <= 5; turn++) {
    now += 64;
    await sent(4 + 4 * turn);
    t.is(order.length, 4 + 4 * turn, `turn ${turn}: four blocks (64 KiB of tokens) and no more`);
  }
  // In the order they ran short (a first), four blocks a turn, a served peer to the back: a, b, c, b, c.
  t.deepEqual(order.slice(4), ['a', 'a', 'a', 'a', 'b', 'b', 'b', 'b', 'c', 'c', 'c', 'c', 'b', 'b', 'b', 'b', 'c', 'c', 'c', 'c']);
  up.close();
});

/** Pending setTimeout timers of this process (the Uploader's token timer is one). */
function activeTimeouts(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

test('a cancel takes back one request: a block asked twice and cancelled once stays queued once', async (t) => {
  // No tokens for a while (a fixed clock, a bucket smaller than a block): every request queues.
  const { up } = uploader(await storageWith([0]), { bucket: new TokenBucket(1, 1, () => 0), queueLimit: 8 });
  const conn = new FakeConnection();
  up.addPeer('p', conn);
  up.interested('p');
  const r = responses();
  up.request('p', pieceIndex(0), 0, BLOCK_SIZE, r.respond);
  up.request('p', pieceIndex(0), 0, BLOCK_SIZE, r.respond); // asked again: the wire holds it twice too
  up.request('p', pieceIndex(0), BLOCK_SIZE, BLOCK_SIZE, r.respond);
  t.is(up.queued, 3);
  up.cancel('p', 0, 0, BLOCK_SIZE);
  t.is(up.queued, 2, 'one of the two copies is left: the requester still counts it in flight');
  up.close();
});
