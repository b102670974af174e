import test from 'ava';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { sha256Via, seedWithBtmount, statusJson } from './helpers/mount.js';
import { BTMOUNT_BIN, freePort, makeDataset, startProcess } from './helpers/peers.js';
import { btmount, run, tempDir } from './helpers/run.js';

/** Syscalls that create, change or remove a file system entry (every attempt counts, failed or not). */
const WRITING = /^(\d+ +)?(open|openat|creat|mkdir|mkdirat|rename|renameat|renameat2|unlink|unlinkat|link|linkat|symlink|symlinkat|truncate|chmod|fchmodat|chown|lchown|fchownat|utimensat|mknod|mknodat|bind)\((.*)$/;
const TRACED = 'open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,link,linkat,symlink,symlinkat,truncate,chmod,fchmodat,chown,lchown,fchownat,utimensat,mknod,mknodat,bind';

/** The paths a traced call writes, or [] when it only reads (an open without a write or create flag). */
function writtenPaths(line: string): string[] {
  const m = WRITING.exec(line);
  if (!m) return [];
  const [, , call, rest] = m;
  if ((call === 'open' || call === 'openat') && !/O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(rest!)) return [];
  if (call === 'bind') return [...rest!.matchAll(/sun_path="([^"]*)"/g)].map((x) => x[1]!);
  if (call === 'utimensat' && !/"/.test(rest!)) return []; // futimens on an open fd: covered by its open
  return [...rest!.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1]!);
}

test('a running mount writes nothing outside its cache and runtime directories (strace of mount, reads, warm, status, umount)', async (t) => {
  if ((await run('strace', ['-V'])).code !== 0) return t.fail('strace is not installed (.ci/run installs it)');
  const dir = await tempDir();
  t.teardown(dir.cleanup);
  const ds = await makeDataset(path.join(dir.path, 'src'), 'dataset', [
    { path: 'a/1.bin', length: 300_000 },
    { path: 'b.txt', length: 1234 },
  ], 64 * 1024);
  const port = await freePort();
  const seeder = await seedWithBtmount(ds, port);
  t.teardown(() => seeder.stop());

  // Empty homes for everything a program might write to by default; the cache and log go to their defaults.
  const home = path.join(dir.path, 'home');
  const tmp = path.join(dir.path, 'tmp');
  const cwd = path.join(dir.path, 'cwd');
  const mnt = path.join(dir.path, 'mnt');
  const xdgCache = path.join(dir.path, 'xdg-cache');
  const xdgRuntime = path.join(dir.path, 'run');
  // As on a real system, the XDG directories exist (btmount creates only its own below them).
  for (const d of [home, tmp, cwd, mnt, xdgCache, xdgRuntime]) await mkdir(d);
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, TMPDIR: tmp, XDG_CACHE_HOME: xdgCache, XDG_RUNTIME_DIR: xdgRuntime };
  delete env.XDG_CONFIG_HOME;
  delete env.XDG_DATA_HOME;
  const allowed = [path.join(xdgCache, 'btmount'), path.join(xdgRuntime, 'btmount')];
  const deadDhtPort = await freePort();

  const trace = path.join(dir.path, 'trace.txt');
  const traced = startProcess('strace', ['-f', '-qq', '--seccomp-bpf', '-e', `trace=${TRACED}`, '-o', trace,
    process.execPath, BTMOUNT_BIN, 'mount', ds.torrentPath, mnt, '--port', '0', '--peer', `127.0.0.1:${port}`, '--dht-bootstrap', `127.0.0.1:${deadDhtPort}`,
  ], { cwd, env });
  t.teardown(() => traced.stop('SIGKILL'));
  await traced.waitFor(/mounted dataset at/, 60_000);
  for (const f of ds.files) t.is(await sha256Via(path.join(mnt, f.path)), f.sha256);
  t.is((await btmount(['warm', mnt], { env })).code, 0);
  t.is((await statusJson(mnt, env)).pieces.have, ds.metainfo.layout.pieceCount);
  t.is((await btmount(['umount', mnt], { env })).code, 0);
  // strace ends when the last traced process (the daemon) has.
  t.is(await traced.exited, 0, traced.output());

  const lines = (await readFile(trace, 'utf8')).split('\n');
  const written = [...new Set(lines.flatMap(writtenPaths))];
  t.true(written.some((p) => p.startsWith(allowed[0]! + '/')), 'the trace saw the cache being written (the trace works)');
  const outside = written.filter((p) => !['/dev/null', '/dev/fuse'].includes(p) && !allowed.some((a) => p === a || p.startsWith(a + '/')));
  t.deepEqual(outside, [], 'written outside the cache and runtime directories');
  for (const d of [home, tmp, cwd]) t.deepEqual(await readdir(d), [], `${d} stays empty`);
});
