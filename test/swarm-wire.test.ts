import test from 'ava';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { asInfoHash, BLOCK_SIZE } from '../src/metainfo/piece-layout.js';
import type { PeerConnection, PeerMessageHandlers, UploadResponder } from '../src/swarm/peer-connection.js';
import { connectedPeerPair } from './helpers/peer-connection-pair.js';

// Two PeerConnections over a real TCP connection on 127.0.0.1: what one sends (written to the
// socket directly, not through the Wire's stream) arrives whole and in order at the other.

const PIECES = 8;
const infoHash = asInfoHash(randomBytes(20).toString('hex'));

interface Seen {
  events: string[];
  blocks: Array<{ index: number; offset: number; block: Buffer }>;
  requests: Array<{ index: number; offset: number; length: number; respond: UploadResponder }>;
}

function handlers(seen: Seen): PeerMessageHandlers {
  const log = (name: string) => (...args: unknown[]) => void seen.events.push(`${name}${args.length ? ' ' + args.join(',') : ''}`);
  return {
    bitfield: (bits) => void seen.events.push(`bitfield ${Buffer.from(bits).toString('hex')}`),
    have: log('have'),
    haveAll: log('have-all'),
    choke: log('choke'),
    unchoke: log('unchoke'),
    interested: log('interested'),
    uninterested: log('uninterested'),
    piece: (index, offset, block) => {
      seen.events.push(`piece ${index},${offset}`);
      seen.blocks.push({ index, offset, block: Buffer.from(block) });
    },
    reject: log('reject'),
    allowedFast: log('allowed-fast'),
    request: (index, offset, length, respond) => {
      seen.events.push(`request ${index},${offset},${length}`);
      seen.requests.push({ index, offset, length, respond });
    },
    cancel: log('cancel'),
  };
}

async function pair(t: { teardown(fn: () => void): void }): Promise<{ a: PeerConnection; b: PeerConnection; seenA: Seen; seenB: Seen }> {
  const { dialled: a, accepted: b } = await connectedPeerPair(t, { infoHash, pieceCount: PIECES, reqq: 16 });
  const seenA: Seen = { events: [], blocks: [], requests: [] };
  const seenB: Seen = { events: [], blocks: [], requests: [] };
  a.handle(handlers(seenA));
  b.handle(handlers(seenB));
  return { a, b, seenA, seenB };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('messages go out in the order they were made, blocks arrive whole, and a responder says the block went out', async (t) => {
  const { a, b, seenA, seenB } = await pair(t);
  t.true(a.hasFast && b.hasFast);
  b.sendPieceSet([0, 3], PIECES);
  b.unchoke();
  b.have(5);
  await until(() => seenA.events.length >= 3, 'bitfield, unchoke, have');
  t.deepEqual(seenA.events, ['bitfield 90', 'unchoke', 'have 5'], 'the bitfield first, then the rest, in order');

  a.setInterested(true);
  a.request(0, 0, BLOCK_SIZE);
  a.request(3, BLOCK_SIZE, BLOCK_SIZE);
  await until(() => seenB.requests.length === 2, 'two requests');
  t.deepEqual(seenB.events, ['interested', `request 0,0,${BLOCK_SIZE}`, `request 3,${BLOCK_SIZE},${BLOCK_SIZE}`]);
  const blocks = [randomBytes(BLOCK_SIZE), randomBytes(BLOCK_SIZE)];
  t.true(seenB.requests[0]!.respond(null, blocks[0]), 'sent');
  t.true(seenB.requests[1]!.respond(null, blocks[1]), 'sent');
  b.have(6); // after the blocks: must arrive after them
  await until(() => seenA.events.includes('have 6'), 'have 6');
  t.deepEqual(seenA.events.slice(3), ['piece 0,0', `piece 3,${BLOCK_SIZE}`, 'have 6']);
  t.deepEqual(seenA.blocks[0]!.block, blocks[0]);
  t.deepEqual(seenA.blocks[1]!.block, blocks[1]);
  t.is(b.wire.uploaded, 2 * BLOCK_SIZE);
});

test('a cancelled request is not answered (the responder says so), and a reject reaches the handler', async (t) => {
  const { a, b, seenA, seenB } = await pair(t);
  b.sendPieceSet([], PIECES);
  b.unchoke();
  await until(() => seenA.events.includes('unchoke'), 'unchoke');
  a.request(1, 0, BLOCK_SIZE);
  a.request(2, 0, BLOCK_SIZE);
  await until(() => seenB.requests.length === 2, 'two requests');
  a.cancel(1, 0, BLOCK_SIZE);
  await until(() => seenB.events.includes(`cancel 1,0,${BLOCK_SIZE}`), 'the cancel');
  t.false(seenB.requests[0]!.respond(null, randomBytes(BLOCK_SIZE)), 'cancelled meanwhile: not sent');
  t.false(seenB.requests[1]!.respond(new Error('not available')), 'rejected: no block went out');
  await until(() => seenA.events.some((e) => e.startsWith('reject')), 'the reject');
  await sleep(50);
  t.deepEqual(seenA.events.filter((e) => e !== 'have-none'), ['unchoke', `reject 2,0,${BLOCK_SIZE}`], 'no piece for the cancelled request');
  t.is(b.wire.uploaded, 0);
  t.false(a.closed);
});

test('a reject from a peer without the fast extension ends the connection', async (t) => {
  const { a, b } = await pair(t);
  // As if the fast extension had not been agreed on: BEP 6 says close.
  (a.wire as unknown as { hasFast: boolean }).hasFast = false;
  const closed = once(a, 'close') as Promise<[string]>;
  (b.wire as unknown as { reject(i: number, o: number, l: number): void }).reject(0, 0, BLOCK_SIZE);
  const [reason] = await closed;
  t.regex(reason, /reject without the fast extension/);
});
