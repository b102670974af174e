/**
 * Which slot of the data file holds which piece, which slots are free, and which
 * are still being read. Typed arrays sized at open; nothing is allocated per piece.
 *
 * A slot whose piece is evicted while a read of it is in flight is "draining": it is
 * not reused until the read ends, so a read never returns bytes of the next piece.
 *
 * `pieceSlot` and `slotGeneration` live in shared memory that the native FUSE backend reads
 * from other threads without locks: a slot's generation changes every time the slot changes
 * hands (before any new bytes can be written to it), so a reader that sees the same generation
 * before and after its read knows the bytes were the piece's it looked up.
 *
 * `slotPins` is the one shared array the other side writes: the native backend pins a slot
 * (adds one) before it checks the slot and holds the pin until the kernel has copied the
 * slot's pages into a reply it spliced. A slot released while pinned drains like one with a
 * read in flight; it is reclaimed by a later `take` once its pins are back to zero. The order
 * (the other side: pin, then check; here: bump the generation, then look at the pins, both
 * with full barriers) means either that side sees the change or this side sees the pin.
 */
export class SlotMap {
  /** piece → slot, -1 when the piece has none. */
  readonly pieceSlot: Int32Array;
  /** slot → how many times it changed hands (wraps at 2^32). */
  readonly slotGeneration: Uint32Array;
  /** slot → piece, -1 when free or draining. */
  readonly slotPiece: Int32Array;
  /** slot → reads another thread has pinned it for (written there, only read here). */
  readonly slotPins: Int32Array;
  readonly #readers: Uint32Array;
  readonly #draining: Uint8Array;
  /** Draining slots whose JS reads are done but that may still be pinned: checked again by `take`. */
  #pinnedDraining: number[] = [];
  /** Stack of free slots; the top is reused first (a just-freed slot already has disk space). */
  readonly #free: Int32Array;
  #freeTop = 0;
  #inUse = 0;
  #limit: number;
  #drainingCount = 0;

  constructor(
    pieceCount: number,
    readonly capacity: number,
  ) {
    this.pieceSlot = new Int32Array(new SharedArrayBuffer(pieceCount * 4)).fill(-1);
    this.slotGeneration = new Uint32Array(new SharedArrayBuffer(capacity * 4));
    this.slotPiece = new Int32Array(capacity).fill(-1);
    this.slotPins = new Int32Array(new SharedArrayBuffer(capacity * 4));
    this.#readers = new Uint32Array(capacity);
    this.#draining = new Uint8Array(capacity);
    this.#free = new Int32Array(capacity);
    this.#limit = capacity;
  }

  /** Rebuilds the free stack after `assign`s made while loading (lowest slots reused first). */
  rebuildFreeList(): void {
    this.#freeTop = 0;
    for (let s = this.capacity - 1; s >= 0; s--) if (this.slotPiece[s] === -1 && !this.#draining[s]) this.#free[this.#freeTop++] = s;
  }

  /** Slots holding a piece, being written, or draining. */
  get inUse(): number {
    return this.#inUse;
  }

  get drainingCount(): number {
    return this.#drainingCount;
  }

  /** Slots that may be in use at once: the capacity, or fewer once the disk ran out of space. */
  get limit(): number {
    return this.#limit;
  }

  lowerLimit(slots: number): void {
    this.#limit = Math.max(0, Math.min(this.#limit, slots));
  }

  /** Draining slots that are only waiting for pins (not for JS reads). */
  get pinnedDrainingCount(): number {
    return this.#pinnedDraining.length;
  }

  /** A free slot for `piece`, or -1 if none may be used now. */
  take(piece: number): number {
    if (this.#pinnedDraining.length > 0) this.#reclaimUnpinned();
    if (this.#inUse >= this.#limit || this.#freeTop === 0) return -1;
    const slot = this.#free[--this.#freeTop]!;
    this.assign(slot, piece);
    return slot;
  }

  /** Records `piece` in `slot` (a free slot; used directly only while loading). */
  assign(slot: number, piece: number): void {
    Atomics.add(this.slotGeneration, slot, 1);
    this.slotPiece[slot] = piece;
    this.pieceSlot[piece] = slot;
    this.#inUse++;
  }

  /** Frees `piece`'s slot, or marks it draining while reads of it are in flight. */
  release(piece: number): void {
    const slot = this.pieceSlot[piece]!;
    if (slot < 0) return;
    Atomics.store(this.pieceSlot, piece, -1);
    this.slotPiece[slot] = -1;
    // A full barrier between the stores above and the look at the pins below (see the class comment).
    Atomics.add(this.slotGeneration, slot, 1);
    if (this.#readers[slot]! > 0 || Atomics.load(this.slotPins, slot) > 0) {
      this.#draining[slot] = 1;
      this.#drainingCount++;
      if (this.#readers[slot] === 0) this.#pinnedDraining.push(slot);
    } else {
      this.#free[this.#freeTop++] = slot;
      this.#inUse--;
    }
  }

  beginRead(slot: number): void {
    this.#readers[slot]!++;
  }

  /** True when this ended the last read of a draining slot, which is now free. */
  endRead(slot: number): boolean {
    if (--this.#readers[slot]! > 0 || !this.#draining[slot]) return false;
    if (Atomics.load(this.slotPins, slot) > 0) {
      this.#pinnedDraining.push(slot);
      return false;
    }
    this.#freeDrained(slot);
    return true;
  }

  #freeDrained(slot: number): void {
    this.#draining[slot] = 0;
    this.#drainingCount--;
    this.#free[this.#freeTop++] = slot;
    this.#inUse--;
  }

  /** Frees the draining slots whose pins are gone (pins last one reply: well under a millisecond). */
  #reclaimUnpinned(): void {
    const still: number[] = [];
    for (const slot of this.#pinnedDraining) {
      if (Atomics.load(this.slotPins, slot) > 0) still.push(slot);
      else this.#freeDrained(slot);
    }
    this.#pinnedDraining = still;
  }
}
