import test from 'ava';
import { execFile } from 'node:child_process';
import { chmod, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, run, tempDir, type RunResult } from './helpers/run.js';

// scripts/ensure-deps decides what is missing and what to install. These runs
// give it a PATH of chosen tools, with an apt-get that only records what it was
// asked, so nothing is installed or removed on this machine.

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'ensure-deps');
const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** A bin directory with the real tools the script runs, plus `extra` stubs; no fusermount unless given. */
async function toolDir(t: import('ava').ExecutionContext, extra: Record<string, string>): Promise<{ bin: string; aptLog: string }> {
  const dir = await tempDir('btmount-deps-');
  t.teardown(dir.cleanup);
  await chmod(dir.path, 0o755); // also run as another user
  for (const tool of ['bash', 'node', 'python3', 'id', 'dirname']) {
    const real = (await run('bash', ['-c', `command -v ${tool}`], { env: { PATH: '/usr/bin:/bin' } })).stdout.trim();
    await symlink(real, path.join(dir.path, tool));
  }
  const aptLog = path.join(dir.path, 'apt-get.log');
  const stubs: Record<string, string> = { 'apt-get': `#!/bin/bash\necho "$*" >> ${aptLog}\n`, ...extra };
  for (const [name, body] of Object.entries(stubs)) {
    await writeFile(path.join(dir.path, name), body);
    await chmod(path.join(dir.path, name), 0o755);
  }
  return { bin: dir.path, aptLog };
}

function runAs(uid: number | undefined, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile('/bin/bash', [SCRIPT, ...args], { ...(uid === undefined ? {} : { uid, gid: uid }), env, timeout: 120_000, encoding: 'utf8' }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

test('a user without /sbin on PATH finds the installed libfuse2 (no ldconfig needed)', async (t) => {
  const res = await runAs(asRoot ? NOBODY : undefined, ['demo'], { PATH: '/usr/bin:/bin', HOME: '/tmp' });
  t.is(res.code, 0, res.stderr);
  t.is(res.stderr, '');
});

(asRoot ? test : test.skip)('with fuse3 (fusermount3, no fusermount) it never asks apt-get for fuse, and installs with --no-remove', async (t) => {
  const { bin, aptLog } = await toolDir(t, { fusermount3: '#!/bin/sh\nexit 0\n' });
  // The addon's build tools, aria2c, mktorrent and transmission-daemon are not on this PATH, so they are "missing".
  const res = await runAs(undefined, ['test'], { PATH: bin, HOME: '/tmp' });
  t.is(res.code, 0, res.stderr);
  t.regex(res.stderr, /using fuse3's fusermount3 \(not installing Debian's fuse, which would remove fuse3\)/);
  t.regex(res.stderr, /^btmount: missing: libfuse3 headers, pkg-config, g\+\+, make, aria2c, mktorrent, transmission-daemon; installing with apt-get: libfuse3-dev pkg-config g\+\+ make aria2 mktorrent transmission-daemon$/m);
  const calls = (await readFile(aptLog, 'utf8')).trim().split('\n');
  t.deepEqual(calls, ['update -qq', 'install -y -qq --no-remove libfuse3-dev pkg-config g++ make aria2 mktorrent transmission-daemon']);
});

test('without any fusermount a user other than root is told what is missing and what to install', async (t) => {
  const { bin, aptLog } = await toolDir(t, {});
  const res = await runAs(asRoot ? NOBODY : undefined, ['demo'], { PATH: bin, HOME: '/tmp' });
  t.is(res.code, 1);
  t.deepEqual(res.stderr.trim().split('\n'), ['btmount: missing: fusermount, libfuse3 headers, pkg-config, g++, make; as root: apt-get install fuse libfuse3-dev pkg-config g++ make']);
  t.false(await readFile(aptLog, 'utf8').then(() => true, () => false), 'apt-get not run');
});

test('a Node older than 20 is named', async (t) => {
  const { bin } = await toolDir(t, {});
  // A `node` that reports an old version.
  await run('rm', [path.join(bin, 'node')]);
  await writeFile(path.join(bin, 'node'), '#!/bin/bash\n[ "$1" = --version ] && { echo v18.19.0; exit 0; }\nexit 1\n');
  await chmod(path.join(bin, 'node'), 0o755);
  const res = await runAs(undefined, ['demo'], { PATH: bin, HOME: '/tmp' });
  t.is(res.code, 1);
  t.deepEqual(res.stderr.trim().split('\n'), ['btmount: node v18.19.0 is too old: btmount needs Node 20 or later']);
});
