import fs from 'node:fs';
import { closeFile, fileSize, openFile, readAt, truncateFile, writeAt } from './file-io.js';

const MAGIC = Buffer.from('BTMSLOT1');
const HEADER = 16; // magic, u32 LE slot size, u32 reserved
const FREE = -1;

/**
 * The two files that hold the pieces: `data` (slot s at byte s × slotSize) and
 * `slots` (after a 16-byte header, one int32 LE per slot: the piece in it, or -1).
 * Positional reads and writes on two fds that stay open; no other fds.
 */
export class SlotFile {
  private constructor(
    readonly dataFd: number,
    readonly tableFd: number,
    readonly slotSize: number,
    readonly capacity: number,
  ) {}

  /**
   * Opens (creating) the files for `capacity` slots and returns the slot table as
   * stored, cut to `capacity`. Slots beyond it (the budget shrank) are cut off both
   * files. A table with a foreign header or slot size is reset: every slot free.
   */
  static async open(
    dataPath: string,
    tablePath: string,
    slotSize: number,
    capacity: number,
  ): Promise<{ file: SlotFile; table: Int32Array; reset: boolean; cutOff: number }> {
    const flags = fs.constants.O_RDWR | fs.constants.O_CREAT | (fs.constants.O_NOFOLLOW ?? 0);
    const dataFd = await openFile(dataPath, flags);
    let tableFd = -1;
    try {
      tableFd = await openFile(tablePath, flags);
      const stored = Buffer.allocUnsafe(await fileSize(tableFd));
      await readAt(tableFd, stored, 0, stored.length, 0);
      const header = Buffer.alloc(HEADER);
      MAGIC.copy(header);
      header.writeUInt32LE(slotSize, 8);
      const table = new Int32Array(capacity).fill(FREE);
      let reset = false;
      let cutOff = 0;
      if (stored.length >= HEADER && stored.subarray(0, HEADER).equals(header)) {
        const entries = Math.floor((stored.length - HEADER) / 4);
        for (let s = 0; s < entries; s++) {
          const piece = stored.readInt32LE(HEADER + s * 4);
          if (s < capacity) table[s] = piece;
          else if (piece !== FREE) cutOff++;
        }
      } else if (stored.length > 0) {
        reset = true;
      }
      // Rewrite the table in full (header + every entry), so no slot is left as zero bytes,
      // which would read as piece 0. One write of 4 bytes per slot, once per open.
      const out = Buffer.allocUnsafe(HEADER + capacity * 4);
      header.copy(out);
      for (let s = 0; s < capacity; s++) out.writeInt32LE(table[s]!, HEADER + s * 4);
      await writeAt(tableFd, out, 0);
      await truncateFile(tableFd, out.length);
      if (reset) await truncateFile(dataFd, 0);
      else if ((await fileSize(dataFd)) > capacity * slotSize) await truncateFile(dataFd, capacity * slotSize);
      return { file: new SlotFile(dataFd, tableFd, slotSize, capacity), table, reset, cutOff };
    } catch (err) {
      await closeFile(dataFd).catch(() => undefined);
      if (tableFd >= 0) await closeFile(tableFd).catch(() => undefined);
      throw err;
    }
  }

  /** Reads up to `length` bytes of slot `slot` from `offset`; resolves to the bytes read. */
  /** Reads `length` bytes at `offset` of the slot into `buf` at `bufOffset`. */
  read(slot: number, buf: Buffer, bufOffset: number, offset: number, length: number): Promise<number> {
    return readAt(this.dataFd, buf, bufOffset, length, slot * this.slotSize + offset);
  }

  writeSlot(slot: number, data: Buffer): Promise<void> {
    return writeAt(this.dataFd, data, slot * this.slotSize);
  }

  /** Records which piece slot `slot` holds (-1: none). */
  writeEntry(slot: number, piece: number): Promise<void> {
    const buf = Buffer.allocUnsafe(4);
    buf.writeInt32LE(piece);
    return writeAt(this.tableFd, buf, HEADER + slot * 4);
  }

  async close(): Promise<void> {
    await closeFile(this.dataFd).catch(() => undefined);
    await closeFile(this.tableFd).catch(() => undefined);
  }
}

export const SLOT_TABLE_HEADER = HEADER;
