import test from 'ava';
import { pieceIndex, type PieceIndex } from '../src/metainfo/piece-layout.js';
import { PieceWaiters } from '../src/swarm/piece-waiters.js';

const settled = async (p: Promise<void>): Promise<string> =>
  p.then(
    () => 'resolved',
    (err: unknown) => `rejected: ${(err as Error).message}`,
  );

test('callers of one piece share it: the highest priority and the soonest urgent deadline win', async (t) => {
  const changes: PieceIndex[] = [];
  const waiters = new PieceWaiters((i) => changes.push(i));
  const p = pieceIndex(3);
  const warm = waiters.wait(p, 'warm', undefined);
  t.deepEqual(waiters.want(p), { priority: 'warm', deadline: undefined });
  const read1 = waiters.wait(p, 'urgent', 5000);
  const read2 = waiters.wait(p, 'urgent', 4000);
  const ahead = waiters.wait(p, 'readahead', undefined);
  t.deepEqual(waiters.want(p), { priority: 'urgent', deadline: 4000 });
  t.is(waiters.urgentCount, 2);
  t.is(waiters.size, 1);
  const other = waiters.wait(pieceIndex(9), 'urgent', 100);
  void waiters.wait(pieceIndex(10), 'warm', undefined);
  t.deepEqual([...waiters.urgentPieces()], [p, pieceIndex(9)], 'each piece a read waits for, once');
  waiters.resolve(pieceIndex(9));
  await other;
  t.deepEqual(changes, [p, p, p, p, pieceIndex(9), pieceIndex(10)]);
  waiters.resolve(p);
  t.deepEqual(await Promise.all([warm, read1, read2, ahead].map(settled)), ['resolved', 'resolved', 'resolved', 'resolved']);
  t.is(waiters.size, 1);
  t.is(waiters.urgentCount, 0);
  t.deepEqual([...waiters.urgentPieces()], []);
  t.is(waiters.want(p), undefined);
});

test('an aborted caller leaves; when the last one leaves the piece is wanted no more', async (t) => {
  const changes: Array<[number, string | undefined]> = [];
  const waiters: PieceWaiters = new PieceWaiters((i) => changes.push([i, waiters.want(i)?.priority]));
  const p = pieceIndex(1);
  const read = new AbortController();
  const readP = waiters.wait(p, 'urgent', 1000, read.signal);
  const warmAc = new AbortController();
  const warmP = waiters.wait(p, 'warm', undefined, warmAc.signal);
  read.abort(new Error('read timed out'));
  t.is(await settled(readP), 'rejected: read timed out');
  t.deepEqual(waiters.want(p), { priority: 'warm', deadline: undefined }, 'the warm caller remains');
  t.is(waiters.urgentCount, 0);
  warmAc.abort(new Error('warm cancelled'));
  t.is(await settled(warmP), 'rejected: warm cancelled');
  t.is(waiters.size, 0);
  t.deepEqual(changes, [
    [1, 'urgent'],
    [1, 'urgent'],
    [1, 'warm'],
    [1, undefined],
  ]);
  t.is(await settled(waiters.wait(p, 'warm', undefined, AbortSignal.abort(new Error('already')))), 'rejected: already');
  t.is(waiters.size, 0);
});

test('reject and rejectAll fail the callers; a settled caller’s signal is no longer listened to', async (t) => {
  const waiters = new PieceWaiters(() => {});
  const ac = new AbortController();
  const a = waiters.wait(pieceIndex(0), 'urgent', 1, ac.signal);
  const b = waiters.wait(pieceIndex(1), 'warm', undefined);
  const c = waiters.wait(pieceIndex(2), 'readahead', undefined);
  waiters.reject(pieceIndex(0), new Error('no room for it'));
  t.is(await settled(a), 'rejected: no room for it');
  ac.abort(new Error('late abort'));
  waiters.rejectAll((i) => new Error(`closed before ${i}`));
  t.deepEqual(await Promise.all([b, c].map(settled)), ['rejected: closed before 1', 'rejected: closed before 2']);
  t.is(waiters.size, 0);
});
