import fs from 'node:fs';
import { openFile } from './file-io.js';

/** An open, read-only piece file. Give it back with `FdCache.release` once the read is done. */
export interface OpenPieceFile {
  readonly fd: number;
}

interface Entry extends OpenPieceFile {
  readonly key: number;
  fd: number;
  users: number;
  /** Pending while the file is being opened. */
  opening: Promise<void> | undefined;
  /** False once invalidated: closed when its last user releases it. */
  cached: boolean;
}

const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0);

/**
 * A bounded set of open read-only file descriptors, one per piece file, reused
 * across reads and closed least-recently-used first. At most `maxOpen` fds are
 * open at any moment: when all are in use, `acquire` waits for a release rather
 * than opening another (EMFILE is how unbounded torrent stores fail).
 *
 * An fd is closed only when no read is using it, so a closed-and-reused fd
 * number can never be read by a stale caller.
 */
export class FdCache {
  /** Map order is recency of use: the first entry is the least recently used. */
  readonly #entries = new Map<number, Entry>();
  #open = 0;
  readonly #waiters: Array<() => void> = [];

  constructor(
    readonly maxOpen: number,
    readonly pathOf: (key: number) => string,
  ) {
    if (!Number.isInteger(maxOpen) || maxOpen < 1) throw new RangeError(`maxOpen must be ≥ 1, got ${maxOpen}`);
  }

  /** File descriptors currently open (or being opened), including ones in use after invalidation. */
  get openCount(): number {
    return this.#open;
  }

  /** The cached fd for `key` if it is already open: no promise, no allocation. */
  tryAcquire(key: number): OpenPieceFile | undefined {
    const e = this.#entries.get(key);
    if (e === undefined || e.opening !== undefined) return undefined;
    e.users++;
    this.#entries.delete(key);
    this.#entries.set(key, e);
    return e;
  }

  async acquire(key: number): Promise<OpenPieceFile> {
    for (;;) {
      const e = this.#entries.get(key);
      if (e !== undefined) {
        e.users++;
        this.#entries.delete(key);
        this.#entries.set(key, e);
        if (e.opening !== undefined) {
          try {
            await e.opening;
          } catch (err) {
            e.users--;
            throw err;
          }
        }
        return e;
      }
      if (this.#open < this.maxOpen || this.#closeIdle()) break;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    const entry: Entry = { key, fd: -1, users: 1, opening: undefined, cached: true };
    this.#open++;
    this.#entries.set(key, entry);
    entry.opening = openFile(this.pathOf(key), READ_FLAGS).then(
      (fd) => {
        entry.fd = fd;
        entry.opening = undefined;
        if (!entry.cached && entry.users === 0) this.#close(entry);
      },
      (err: unknown) => {
        this.#open--;
        entry.cached = false;
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
        this.#wake();
        throw err;
      },
    );
    try {
      await entry.opening;
    } catch (err) {
      entry.users--;
      throw err;
    }
    return entry;
  }

  release(file: OpenPieceFile): void {
    const e = file as Entry;
    e.users--;
    if (e.users > 0 || e.fd < 0) return;
    if (!e.cached) this.#close(e);
    else if (this.#waiters.length > 0) this.#wake();
  }

  /** Forget `key`'s fd (its file was unlinked or replaced); closed now if idle, else at its last release. */
  invalidate(key: number): void {
    const e = this.#entries.get(key);
    if (e === undefined) return;
    this.#entries.delete(key);
    e.cached = false;
    if (e.users === 0 && e.fd >= 0) this.#close(e);
  }

  /** Invalidates every entry: idle fds close now, busy ones when their reads finish. */
  closeAll(): void {
    for (const key of [...this.#entries.keys()]) this.invalidate(key);
  }

  #closeIdle(): boolean {
    for (const e of this.#entries.values()) {
      if (e.users === 0 && e.fd >= 0) {
        this.#entries.delete(e.key);
        e.cached = false;
        this.#close(e);
        return true;
      }
    }
    return false;
  }

  #close(e: Entry): void {
    const fd = e.fd;
    e.fd = -1;
    // close(2) of a read-only local file does not block; doing it synchronously keeps
    // the open-fd count exact (no fd is open that the count does not show).
    try {
      fs.closeSync(fd);
    } catch {
      // EBADF/EIO on close of a read-only fd: nothing to recover, the fd is gone either way.
    }
    this.#open--;
    this.#wake();
  }

  #wake(): void {
    this.#waiters.shift()?.();
  }
}
