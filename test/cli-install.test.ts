import test from 'ava';
import { cp, mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, run, tempDir } from './helpers/run.js';

// A fresh clone, as a new user has it: the tracked files, no dist/. The
// repository's own node_modules stands in for `npm ci` (no registry here).

async function freshClone(t: import('ava').ExecutionContext): Promise<string> {
  const dir = await tempDir('btmount-clone-');
  t.teardown(dir.cleanup);
  const clone = path.join(dir.path, 'btmount');
  await mkdir(clone);
  const files = (await run('git', ['-C', REPO_ROOT, 'ls-files', '-co', '--exclude-standard'])).stdout.split('\n').filter((f) => f && !f.startsWith('node_modules/') && !f.startsWith('dist/'));
  for (const file of files) await cp(path.join(REPO_ROOT, file), path.join(clone, file), { recursive: true }).catch(() => undefined);
  await symlink(path.join(REPO_ROOT, 'node_modules'), path.join(clone, 'node_modules'));
  return clone;
}

test('node bin/btmount.js before a build says what to run, in one line', async (t) => {
  const clone = await freshClone(t);
  const res = await run(process.execPath, [path.join(clone, 'bin', 'btmount.js'), '--version']);
  t.is(res.code, 1);
  t.deepEqual(res.stderr.trim().split('\n'), [`btmount: not built yet: run npm install (or npm run build) in ${clone}`]);
});

test('npm install -g <clone> builds the clone and puts a working btmount on PATH', async (t) => {
  t.timeout(300_000);
  const clone = await freshClone(t);
  const prefix = await tempDir('btmount-prefix-');
  t.teardown(prefix.cleanup);
  const install = await run('npm', ['install', '-g', '--offline', '--no-audit', '--no-fund', '--prefix', prefix.path, clone], { timeoutMs: 280_000 });
  t.is(install.code, 0, install.stderr);
  const env = { ...process.env, PATH: `${path.join(prefix.path, 'bin')}:${process.env['PATH']}` };
  const version = await run('btmount', ['--version'], { env });
  t.is(version.code, 0, version.stderr);
  t.regex(version.stdout, /^\d+\.\d+\.\d+\n$/);
  const typo = await run('btmount', ['stauts', '/data'], { env });
  t.deepEqual(typo.stderr.trim().split('\n'), ["btmount: unknown command 'stauts' (did you mean 'status'?)"]);
});
