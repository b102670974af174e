import fs from 'node:fs';

/**
 * Thin promise wrappers over the callback fs API. The store's hot path (a 4 KiB
 * read) is one `pread` on an open fd; `fs.promises.FileHandle` adds an object and
 * a promise chain per call, and `util.promisify(fs.read)` an object per result.
 */

/** Reads until `length` bytes are in `buf` at `offset` or end of file; resolves to the bytes read. */
export function readAt(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (err: NodeJS.ErrnoException | null, n: number): void => {
      if (err) return reject(err);
      done += n;
      if (n === 0 || done === length) return resolve(done);
      fs.read(fd, buf, offset + done, length - done, position + done, step);
    };
    fs.read(fd, buf, offset, length, position, step);
  });
}

/** Writes all of `data` at `position` (a short write is continued, an error rejects). */
export function writeAt(fd: number, data: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (err: NodeJS.ErrnoException | null, n: number): void => {
      if (err) return reject(err);
      done += n;
      if (done === data.length) return resolve();
      fs.write(fd, data, done, data.length - done, position + done, step);
    };
    if (data.length === 0) return resolve();
    fs.write(fd, data, 0, data.length, position, step);
  });
}

export function openFile(path: string, flags: number, mode = 0o644): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

export function closeFile(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

export function fileSize(fd: number): Promise<number> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st.size))));
}

export function truncateFile(fd: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, length, (err) => (err ? reject(err) : resolve())));
}

export function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Out of space or quota: evicting pieces can help. */
export function isNoSpace(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}
