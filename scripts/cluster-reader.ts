/**
 * One cluster node's reader, as a DataLoader's workers read: every file of a list
 * (`<sha1> <length> <path>` a line) to its end, `concurrency` at a time, each file's length
 * and SHA-1 checked, one reused buffer per worker.
 *
 *   node dist/scripts/cluster-reader.js <list> <concurrency>
 *
 * It starts, prints `ready`, and reads only when a line comes on stdin: the benches start
 * every node's reader first and time from the go, so a node process's start (parsing and
 * compiling its code) is not part of what the cluster is timed on: at 4 MiB/s and N = 8 the
 * readers used 6.7 user s when the whole bench script was started inside the timed window,
 * 1.1 with this. It imports nothing
 * but Node for the same reason. Prints `read <bytes> cpu <user µs> <system µs>`, CPU counted
 * from the go.
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { once } from 'node:events';

async function main(listFile: string, concurrency: number): Promise<void> {
  const files = (await readFile(listFile, 'utf8')).split('\n').filter(Boolean).map((line) => {
    const [sha1, length, ...file] = line.split(' ');
    return { sha1: sha1!, length: Number(length), file: file.join(' ') };
  });
  process.stdout.write('ready\n');
  await once(process.stdin, 'data');
  process.stdin.destroy();
  const cpuAtGo = process.cpuUsage();
  let next = 0;
  let bytes = 0;
  const worker = async (): Promise<void> => {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    while (next < files.length) {
      const { sha1, length, file } = files[next++]!;
      const handle = await open(file, 'r');
      const hash = createHash('sha1');
      let got = 0;
      try {
        for (;;) {
          const { bytesRead } = await handle.read(buf, 0, buf.length, got);
          if (bytesRead === 0) break;
          hash.update(buf.subarray(0, bytesRead));
          got += bytesRead;
        }
      } finally {
        await handle.close();
      }
      if (got !== length) throw new Error(`${file}: read ${got} bytes, the dataset's file has ${length}`);
      if (hash.digest('hex') !== sha1) throw new Error(`${file}: the bytes read differ from the dataset's (SHA-1)`);
      bytes += got;
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1); // the other reads would each wait out the read timeout
  }
  const cpu = process.cpuUsage(cpuAtGo);
  process.stdout.write(`read ${bytes} cpu ${cpu.user} ${cpu.system}\n`);
}

const [listFile, concurrency] = process.argv.slice(2);
if (!listFile || !(Number(concurrency) >= 1)) {
  process.stderr.write('usage: cluster-reader <list> <concurrency>\n');
  process.exit(2);
}
await main(listFile, Number(concurrency));
