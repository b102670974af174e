import { spawnSync } from 'node:child_process';
import test from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from '../src/process-alive.js';
import { isMounted } from '../src/fs/mountpoint.js';
import { seedWithBtmount, sha256Via } from './helpers/mount.js';
import { BTMOUNT_BIN, freePort, makeDataset } from './helpers/peers.js';
import { REPO_ROOT, run, tempDir } from './helpers/run.js';

/**
 * contrib/btmount@.service. systemd is not PID 1 on this machine, so the unit
 * cannot be started for real: its commands are run here as systemd would run
 * them for a Type=forking service (ExecStartPre, then ExecStart, which must
 * exit 0 only once the mount is ready and leave one daemon behind; then
 * ExecStop), with %f, ${SOURCE} and $OPTIONS expanded and `btmount` being this
 * checkout. `systemd-analyze verify` checks the file itself.
 */
const UNIT = path.join(REPO_ROOT, 'contrib', 'btmount@.service');

interface UnitCommand {
  key: string;
  /** A '-' prefix: systemd ignores the command's failure. */
  mayFail: boolean;
  argv: string[];
}

function unitCommands(text: string, vars: { mountpoint: string; source: string; options: string[]; cache: string }): UnitCommand[] {
  const out: UnitCommand[] = [];
  for (const line of text.split('\n')) {
    const m = /^(Exec\w+)=(-?)(.*)$/.exec(line.trim());
    if (!m) continue;
    const argv = m[3]!.split(/\s+/).flatMap((word) => {
      if (word === '$OPTIONS') return vars.options;
      if (word === '${SOURCE}') return [vars.source];
      if (word === 'btmount') return [process.execPath, BTMOUNT_BIN];
      if (word === '/var/cache/btmount') return [vars.cache];
      return [word.replaceAll('%f', vars.mountpoint)];
    });
    out.push({ key: m[1]!, mayFail: m[2] === '-', argv });
  }
  return out;
}

test("the unit's commands mount a torrent, ready when ExecStart returns, and ExecStop unmounts and ends the daemon", async (t) => {
  const tmp = await tempDir('btmount-unit-');
  t.teardown(tmp.cleanup);
  const ds = await makeDataset(tmp.path, 'dataset', [
    { path: 'a/0.bin', length: 300_000 },
    { path: 'b.bin', length: 70_000 },
  ], 64 * 1024);
  const seed = await seedWithBtmount(ds, await freePort());
  t.teardown(() => seed.stop().then(() => undefined));
  const mountpoint = path.join(tmp.path, 'data');
  const text = await readFile(UNIT, 'utf8');
  t.regex(text, /^Type=forking$/m);
  const commands = unitCommands(text, {
    mountpoint,
    source: ds.torrentPath,
    options: ['--peer', `127.0.0.1:${/on port (\d+)/.exec(seed.output())![1]}`, '--no-dht', '--port', '0'],
    cache: path.join(tmp.path, 'cache'),
  });
  t.deepEqual(
    commands.map((c) => c.key),
    ['ExecStartPre', 'ExecStartPre', 'ExecStart', 'ExecStop'],
  );
  const env = { ...process.env, XDG_RUNTIME_DIR: path.join(tmp.path, 'run') };
  const exec = (c: UnitCommand) => run(c.argv[0]!, c.argv.slice(1), { env, timeoutMs: 120_000 });
  t.teardown(() => run('fusermount', ['-uz', mountpoint]).then(() => undefined));

  for (const c of commands.filter((x) => x.key === 'ExecStartPre')) {
    const r = await exec(c);
    if (!c.mayFail) t.is(r.code, 0, `${c.argv.join(' ')}: ${r.stderr}`);
  }
  const start = await exec(commands.find((c) => c.key === 'ExecStart')!);
  t.is(start.code, 0, start.stderr);
  const pid = Number(/daemon pid (\d+)/.exec(start.stdout)?.[1]);
  t.teardown(() => {
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  // Type=forking: the command has exited, its daemon serves the mount, and the data is there.
  t.true(isAlive(pid));
  t.true(await isMounted(mountpoint));
  for (const f of ds.files) t.is(await sha256Via(path.join(mountpoint, f.path)), f.sha256, f.path);

  const stop = await exec(commands.find((c) => c.key === 'ExecStop')!);
  t.is(stop.code, 0, stop.stderr);
  t.false(await isMounted(mountpoint));
  for (let i = 0; i < 50 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  t.false(isAlive(pid), 'the daemon ended');
});

// Declared skipped (TAP # SKIP) where systemd's tools are not installed, never passed empty.
const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
(hasSystemdAnalyze ? test : test.skip)('systemd-analyze verify accepts the unit', async (t) => {
  const tmp = await tempDir('btmount-unit-verify-');
  t.teardown(tmp.cleanup);
  // An instance of the template, with btmount at this checkout (verify checks that each command exists).
  const unit = path.join(tmp.path, 'btmount@data.service');
  await writeFile(unit, (await readFile(UNIT, 'utf8')).replace(/=btmount /g, `=${BTMOUNT_BIN} `));
  const r = await run('systemd-analyze', ['verify', unit]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr.trim(), '');
});
