import { rename, stat, unlink, writeFile, readFile, open } from 'node:fs/promises';
import net from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { StoreLockedError } from './errors.js';
import { errorCode } from './file-io.js';
import { isAlive } from '../process-alive.js';

const INFO_FILE = 'lock';

/**
 * One process per torrent cache directory: a second mount of the same infohash
 * with the same cache is refused with StoreLockedError, not shared.
 *
 * On Linux the lock is a listening Unix socket in the abstract namespace, named
 * after the directory's device and inode. The kernel releases it the instant the
 * holder dies, kill -9 included, so there are no stale locks to detect, no pid
 * reuse to guess about and no race between two processes clearing one. The
 * `lock` file in the directory only tells a refused process who holds it.
 * Limits: processes in different network namespaces (containers that share a
 * cache volume but not a network) do not see each other's lock, and any local
 * user can bind the name (a denial of service, not a corruption).
 *
 * Elsewhere, the `lock` file itself is the lock (created with O_EXCL; a holder
 * whose pid is gone on this host is treated as stale).
 */
export class StoreLock {
  readonly #server: net.Server | undefined;

  private constructor(
    readonly dir: string,
    server: net.Server | undefined,
  ) {
    this.#server = server;
  }

  static async acquire(dir: string): Promise<StoreLock> {
    const info = `pid ${process.pid} on ${hostname()}, since ${new Date().toISOString()}`;
    if (process.platform !== 'linux') return StoreLock.#acquireFile(dir, info);
    const st = await stat(dir);
    const server = net.createServer((socket) => socket.destroy());
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(`\0btmount-store/${st.dev}/${st.ino}`, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      if (errorCode(err) === 'EADDRINUSE') throw new StoreLockedError(dir, await readHolder(dir));
      throw err;
    }
    server.unref();
    try {
      const tmp = path.join(dir, `${INFO_FILE}.${process.pid}`);
      await writeFile(tmp, info + '\n');
      await rename(tmp, path.join(dir, INFO_FILE));
    } catch (err) {
      server.close();
      throw err;
    }
    return new StoreLock(dir, server);
  }

  async release(): Promise<void> {
    // Remove the description while still holding the lock, so a successor's is never removed.
    await unlink(path.join(this.dir, INFO_FILE)).catch(() => undefined);
    if (this.#server) await new Promise<void>((resolve) => this.#server!.close(() => resolve()));
  }

  static async #acquireFile(dir: string, info: string): Promise<StoreLock> {
    const file = path.join(dir, INFO_FILE);
    for (let attempt = 0; ; attempt++) {
      try {
        const handle = await open(file, 'wx');
        await handle.writeFile(`${process.pid}\n${info}\n`);
        await handle.close();
        return new StoreLock(dir, undefined);
      } catch (err) {
        if (errorCode(err) !== 'EEXIST' || attempt > 0) {
          if (errorCode(err) === 'EEXIST') throw new StoreLockedError(dir, await readHolder(dir));
          throw err;
        }
        const pid = Number.parseInt((await readFile(file, 'utf8').catch(() => '')).split('\n')[0] ?? '', 10);
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
          throw new StoreLockedError(dir, await readHolder(dir));
        }
        await unlink(file).catch(() => undefined);
      }
    }
  }
}

async function readHolder(dir: string): Promise<string | undefined> {
  const text = await readFile(path.join(dir, INFO_FILE), 'utf8').catch(() => '');
  const line = text.split('\n').find((l) => l.startsWith('pid '));
  return line?.trim() || undefined;
}
