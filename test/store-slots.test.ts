import test from 'ava';
import { SlotMap } from '../src/store/slot-map.js';

test('SlotMap hands out the lowest free slots first and reuses a freed slot before a never-used one', (t) => {
  const slots = new SlotMap(10, 4);
  slots.rebuildFreeList();
  t.deepEqual([slots.take(5), slots.take(6)], [0, 1]);
  slots.release(5);
  t.is(slots.take(7), 0, 'the freed slot (already on disk) is reused first');
  t.is(slots.take(8), 2);
  t.is(slots.take(9), 3);
  t.is(slots.take(1), -1, 'full');
  t.is(slots.inUse, 4);
  t.is(slots.pieceSlot[9], 3);
  t.is(slots.slotPiece[3], 9);
});

test('SlotMap does not reuse a slot while a read of it is in flight', (t) => {
  const slots = new SlotMap(10, 2);
  slots.rebuildFreeList();
  const a = slots.take(1);
  slots.take(2);
  slots.beginRead(a);
  slots.beginRead(a);
  slots.release(1);
  t.is(slots.pieceSlot[1], -1);
  t.is(slots.drainingCount, 1);
  t.is(slots.take(3), -1, 'the draining slot is not free yet');
  t.false(slots.endRead(a));
  t.true(slots.endRead(a), 'the last read frees it');
  t.is(slots.take(3), a);
});

test('SlotMap limit caps the slots in use (after the disk filled up)', (t) => {
  const slots = new SlotMap(10, 4);
  slots.rebuildFreeList();
  slots.take(0);
  slots.take(1);
  slots.lowerLimit(2);
  t.is(slots.take(2), -1);
  slots.release(0);
  t.is(slots.take(2), 0);
  slots.lowerLimit(5);
  t.is(slots.limit, 2, 'a limit is never raised');
});

test('SlotMap rebuilt after loading keeps loaded slots out of the free list', (t) => {
  const slots = new SlotMap(10, 4);
  slots.assign(1, 7);
  slots.assign(3, 8);
  slots.rebuildFreeList();
  t.deepEqual([slots.take(0), slots.take(2), slots.take(4)], [0, 2, -1]);
});
