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

test('SlotMap does not reuse a slot another thread has pinned (a spliced reply) until the pin is gone', (t) => {
  const slots = new SlotMap(10, 2);
  slots.rebuildFreeList();
  const a = slots.take(1);
  const b = slots.take(2);
  const generation = slots.slotGeneration[a]!;
  Atomics.add(slots.slotPins, a, 1); // what the native backend does before it checks the slot
  slots.release(1);
  t.not(slots.slotGeneration[a], generation, 'the generation moved first: a reader that checks after pinning sees the change');
  t.is(slots.pieceSlot[1], -1);
  t.is(slots.drainingCount, 1);
  t.is(slots.pinnedDrainingCount, 1);
  t.is(slots.take(3), -1, 'pinned: not free yet');
  // A JS read in flight and a pin together: the slot frees when both are gone, in either order.
  slots.beginRead(b);
  Atomics.add(slots.slotPins, b, 1);
  slots.release(2);
  t.false(slots.endRead(b), 'the JS read ended, the pin holds it');
  Atomics.sub(slots.slotPins, a, 1);
  t.is(slots.take(3), a, 'the pin is gone: take reclaims the slot');
  t.is(slots.take(4), -1);
  Atomics.sub(slots.slotPins, b, 1);
  t.is(slots.take(4), b);
  t.is(slots.drainingCount, 0);
  t.is(slots.pinnedDrainingCount, 0);
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
