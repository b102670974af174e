import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BTMOUNT_BIN, startProcess, type Proc } from './helpers/peers.js';
import { btmount, run, tempDir } from './helpers/run.js';
import { buildTorrent } from './helpers/torrent-builder.js';

/**
 * `btmount mount --foreground` logs readable lines on a terminal and JSON
 * lines on any other stderr. The terminal is a real pseudo-terminal from
 * util-linux `script`. The torrent has no peers: mounting needs none.
 */

async function foregroundMount(t: import('ava').ExecutionContext, onTerminal: boolean): Promise<{ output: string; mountpoint: string }> {
  const tmp = await tempDir('btmount-log-');
  t.teardown(tmp.cleanup);
  const torrent = path.join(tmp.path, 'd.torrent');
  await writeFile(torrent, buildTorrent({ name: 'dataset', files: [{ path: ['a.bin'], length: 40_000 }] }));
  const mountpoint = path.join(tmp.path, 'mnt');
  await mkdir(mountpoint);
  const env = { ...process.env, XDG_RUNTIME_DIR: path.join(tmp.path, 'run') };
  const args = [BTMOUNT_BIN, 'mount', torrent, mountpoint, '--foreground', '--no-dht', '--port', '0', '--cache', path.join(tmp.path, 'cache')];
  const proc: Proc = onTerminal
    ? startProcess('script', ['-qfec', [process.execPath, ...args].join(' '), '/dev/null'], { env })
    : startProcess(process.execPath, args, { env });
  t.teardown(async () => {
    await proc.stop();
    await run('fusermount', ['-uz', mountpoint]);
  });
  await proc.waitFor(/Ctrl-C to unmount/, 30_000);
  const umount = await btmount(['umount', mountpoint], { env });
  t.is(umount.code, 0, umount.stderr);
  t.is(await proc.exited, 0, proc.output());
  return { output: proc.output().replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, ''), mountpoint };
}

test('on a terminal, a foreground mount logs one readable line per entry', async (t) => {
  const { output, mountpoint } = await foregroundMount(t, true);
  const lines = output.split('\n').filter((l) => l.trim() !== '');
  t.false(
    lines.some((l) => l.startsWith('{')),
    output,
  );
  const mounted = lines.find((l) => / INFO: mounted dataset /.test(l));
  t.truthy(mounted, output);
  t.regex(mounted!, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: mounted dataset \{.*"mountpoint":".*mnt"/);
  t.true(mounted!.includes(JSON.stringify(mountpoint)));
  t.true(
    lines.some((l) => / INFO: stopped/.test(l)),
    output,
  );
});

test('on a pipe, a foreground mount logs JSON lines', async (t) => {
  const { output } = await foregroundMount(t, false);
  const logLines = output.split('\n').filter((l) => l.startsWith('{'));
  const entries = logLines.map((l) => JSON.parse(l) as { level: number; msg: string; mountpoint?: string });
  t.true(
    entries.some((e) => e.level === 30 && e.msg === 'mounted dataset' && e.mountpoint !== undefined),
    output,
  );
  t.true(entries.some((e) => e.msg === 'stopped'));
});
