/**
 * Metadata at ImageNet scale: time and heap to load and index a synthetic
 * torrent of N files (default 1,000,000), beside parse-torrent on the same
 * bytes. Each loader runs in a fresh process, as the CLI would.
 * Run: node dist/scripts/bench-metainfo.js [--files 1000000]   (prints markdown rows)
 */
import bencode from 'bencode';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Metainfo } from '../src/metainfo/index.js';
import { benchOptions } from './bench-options.js';

type Loader = 'btmount' | 'parse-torrent';

function synthesize(n: number): Buffer {
  const files = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    const length = 100_000 + ((i * 7919) % 50_000); // ImageNet-like JPEG sizes
    total += length;
    const cls = `n${String(i % 1000).padStart(8, '0')}`;
    files.push({ length, path: [Buffer.from('train'), Buffer.from(cls), Buffer.from(`${cls}_${i}.JPEG`)] });
  }
  const pieceLength = 4 * 1024 * 1024;
  const pieces = Buffer.alloc(Math.ceil(total / pieceLength) * 20, 7);
  return Buffer.from(bencode.encode({ info: { name: Buffer.from('imagenet'), 'piece length': pieceLength, pieces, files } }));
}

/** Child mode: load the file with one loader and print {seconds, heap, files}. */
async function measureInThisProcess(loader: Loader, file: string): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  const raw = readFileSync(file);
  gc();
  // Typed arrays' bytes are outside the JS heap (the decoded file list keeps its numbers in them): counted too.
  const retained = (): number => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const heapBefore = retained();
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  let keep: unknown;
  let lookupUs = 0;
  if (loader === 'btmount') {
    const m = Metainfo.fromTorrentFile(raw);
    keep = m;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const paths = [...m.tree.visibleFiles()].slice(0, 100_000).map((f) => f.path);
    const t0 = process.hrtime.bigint();
    for (const p of paths) if (!m.tree.lookup(p)) throw new Error(`lookup failed: ${p}`);
    lookupUs = Number(process.hrtime.bigint() - t0) / 1e3 / paths.length;
    report(seconds);
  } else {
    const { default: parseTorrent } = await import('parse-torrent');
    keep = await parseTorrent(raw);
    report(Number(process.hrtime.bigint() - started) / 1e9);
  }
  function report(seconds: number): void {
    const cpu = process.cpuUsage(cpuBefore);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    gc();
    const heap = retained() - heapBefore;
    process.stdout.write(JSON.stringify({ seconds, cpuSeconds, heap, lookupUs, kept: keep !== undefined }));
  }
}

async function run(): Promise<void> {
  const options = benchOptions('Metadata at ImageNet scale: parse, tree and heap per file of a synthetic torrent.', { files: '1000000' });
  const fileCount = Number(options.files);
  const dir = mkdtempSync(join(tmpdir(), 'btmount-bench-'));
  const file = join(dir, 'synthetic.torrent');
  try {
    const raw = synthesize(fileCount);
    writeFileSync(file, raw);
    console.log(`synthetic torrent: ${fileCount.toLocaleString('en')} files, ${(raw.length / 1024 / 1024).toFixed(1)} MiB`);
    console.log('| loader | files | load + index (wall) | CPU | heap retained (JS heap + typed arrays) | heap per file | lookup by path |');
    console.log('|---|---|---|---|---|---|---|');
    for (const loader of ['btmount', 'parse-torrent'] as const) {
      const out = execFileSync(
        process.execPath,
        ['--expose-gc', '--max-old-space-size=8000', fileURLToPath(import.meta.url), '--child', loader, file],
        { encoding: 'utf8', maxBuffer: 1 << 20 },
      );
      const r = JSON.parse(out) as { seconds: number; cpuSeconds: number; heap: number; lookupUs: number };
      const label = loader === 'btmount' ? 'btmount metainfo (decode, validate, sanitize, tree, byte map)' : 'parse-torrent 11 (decode only, no tree)';
      console.log(
        `| ${label} | ${fileCount.toLocaleString('en')} | ${r.seconds.toFixed(2)} s | ${r.cpuSeconds.toFixed(2)} s | ${(r.heap / 1048576).toFixed(0)} MiB | ${(r.heap / fileCount).toFixed(0)} B | ${loader === 'btmount' ? r.lookupUs.toFixed(2) + ' µs' : 'n/a'} |`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await measureInThisProcess(process.argv[3] as Loader, process.argv[4]!);
else await run();
