import test from 'ava';
import { chmod, chown, mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { mountFixture } from './control-helpers.js';
import { BTMOUNT_BIN, makeDataset } from './helpers/peers.js';
import { btmount, run, tempDir, type RunResult } from './helpers/run.js';

/** The tests run as root; `nobody` stands for another user. */
const OTHER_UID = 65534;
/** Chosen at load time, so that without root TAP reports these tests as skipped, not passed. */
const asRootTest = process.getuid?.() === 0 ? test : test.skip;

const runAs = (uid: number, cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> => run(cmd, args, { uid, env });

const CONNECT = `
const net = require('node:net');
const s = net.createConnection(process.argv[1]);
s.on('connect', () => { s.write(JSON.stringify({ op: 'status' }) + '\\n'); s.on('data', (d) => { console.log('ANSWERED', String(d).slice(0, 80)); process.exit(0); }); });
s.on('error', (e) => { console.log('refused', e.code); process.exit(3); });
`;

asRootTest('another user cannot use the control socket (needs root)', async (t) => {
  const f = await mountFixture(t, {
    files: [{ path: 'a.bin', length: 100_000 }],
    seed: false,
    // A runtime dir left open to others (0755, reachable through its parents): the mount must close it.
    beforeMount: async (dir) => {
      await chmod(dir, 0o755);
      await mkdir(path.join(dir, 'run', 'btmount'), { recursive: true, mode: 0o755 });
      await chmod(path.join(dir, 'run'), 0o755);
      await chmod(path.join(dir, 'run', 'btmount'), 0o755);
    },
  });
  const runDir = path.join(f.dir, 'run', 'btmount');
  t.is((await stat(runDir)).mode & 0o777, 0o700);
  const socket = await f.socket();
  const info = await stat(socket);
  t.true(info.isSocket());
  t.is(info.mode & 0o777, 0o600);
  t.is(info.uid, process.getuid!());

  // Straight at the socket: refused by the file system.
  const direct = await runAs(OTHER_UID, process.execPath, ['-e', CONNECT, socket], f.env);
  t.is(direct.stdout.trim(), 'refused EACCES', direct.stdout + direct.stderr);
  // Through the CLI, with the owner's runtime dir: a clear error.
  for (const args of [['status', f.mountpoint], ['warm', f.mountpoint, '--check'], ['warm', f.mountpoint, '--evict']]) {
    const res = await runAs(OTHER_UID, process.execPath, [BTMOUNT_BIN, ...args], f.env);
    t.is(res.code, 1, args.join(' '));
    t.regex(res.stderr, new RegExp(`^btmount: cannot [a-z ]+: ${f.mountpoint} is mounted, but not by a btmount of yours`));
  }
  // The owner still can.
  t.is((await f.status()).torrent.name, 'dataset');
  t.deepEqual(
    (await readdir(runDir)).sort(),
    [path.basename(socket), path.basename(socket).replace(/\.sock$/, '.json')].sort(),
  );
});

asRootTest('a runtime directory that belongs to another user is refused, and nothing is mounted (needs root)', async (t) => {
  const tmp = await tempDir('btmount-ctl-');
  t.teardown(tmp.cleanup);
  const ds = await makeDataset(tmp.path, 'dataset', [{ path: 'a.bin', length: 1000 }], 16 * 1024);
  const runDir = path.join(tmp.path, 'run', 'btmount');
  await mkdir(runDir, { recursive: true, mode: 0o700 });
  await chown(runDir, OTHER_UID, OTHER_UID);
  const mountpoint = path.join(tmp.path, 'mnt');
  await mkdir(mountpoint);
  const env = { ...process.env, XDG_RUNTIME_DIR: path.join(tmp.path, 'run') };
  const res = await btmount(['mount', ds.torrentPath, mountpoint, '--cache', path.join(tmp.path, 'cache'), '--port', '0', '--no-dht'], { env });
  t.is(res.code, 1);
  t.regex(res.stderr, new RegExp(`^btmount: cannot mount: the runtime directory ${runDir} belongs to uid ${OTHER_UID}, not to you`));
  t.deepEqual(await readdir(mountpoint), [], 'not mounted');
  t.deepEqual(await readdir(runDir), []);
});
