/**
 * A separate process using a PieceStore, driven by the store tests:
 *   write: stores pieces (several in flight), printing `added <index>` and `evicted <index>`
 *          as the store emits them (synchronously, so the lines are in the order the store's
 *          state changed), until killed or done;
 *   hold:  opens the store, prints `ready <pid>`, and keeps it open until killed.
 * A failure to open prints `error <name> <message>` and exits 3.
 */
import fs from 'node:fs';
import { PieceStore } from '../../src/store/piece-store.js';
import { makeTorrent } from './store-fixtures.js';

interface Config {
  mode: 'write' | 'hold';
  cacheRoot: string;
  pieceLength: number;
  pieceCount: number;
  seed: number;
  budgetBytes: number;
  /** Order of pieces to write (write mode). */
  order?: number[];
  concurrency?: number;
}

const config = JSON.parse(process.argv[2]!) as Config;
const torrent = makeTorrent(config);
let store: PieceStore;
try {
  store = await PieceStore.open({
    cacheRoot: config.cacheRoot,
    infoHash: torrent.infoHash,
    layout: torrent.layout,
    budgetBytes: config.budgetBytes,
  });
} catch (err) {
  const e = err as Error;
  process.stdout.write(`error ${e.name} ${e.message}\n`);
  process.exit(3);
}

// Synchronous writes: a line printed is in the pipe before the next state change.
const say = (line: string): void => {
  fs.writeSync(1, line + '\n');
};

if (config.mode === 'hold') {
  process.stdout.write(`ready ${process.pid}\n`);
  setInterval(() => undefined, 1 << 30);
} else {
  const order = config.order ?? [...Array(config.pieceCount).keys()];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < order.length) {
      const i = order[next++]!;
      const piece = torrent.piece(i);
      say(`put ${i}`);
      await store.put(piece);
    }
  };
  store.on('added', (i) => say(`added ${i}`));
  store.on('evicted', (i) => say(`evicted ${i}`));
  say('open');
  await Promise.all(Array.from({ length: config.concurrency ?? 4 }, worker));
  await store.close();
  process.stdout.write('done\n');
}
