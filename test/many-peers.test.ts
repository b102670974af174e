import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { isAlive } from '../src/process-alive.js';
import { waitUntil } from './helpers/discovery.js';
import { mountWithCli, sha256Via } from './helpers/mount.js';
import { freePort, handshakeBytes, startSeederFromBytes } from './helpers/peers.js';
import { btmount, tempDir } from './helpers/run.js';
import { buildTorrent } from './helpers/torrent-builder.js';

const MiB = 1024 * 1024;
const rssMiB = async (pid: number): Promise<number> => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const fds = async (pid: number): Promise<number> => (await readdir(`/proc/${pid}/fd`)).length;

/**
 * 500 strangers connect to a mount at once, from 500 loopback addresses: 400
 * say nothing, 50 handshake and then only send keep-alives, 50 trickle their
 * handshake a byte a second. The mount keeps its connection cap, its memory
 * and its event loop (the control socket answers), and a read served by the
 * one honest peer completes with the right bytes. This is a test of bounds, not
 * of speed: the limits asserted are generous.
 */
test('500 peers at once (idle, keep-alive only, trickling): memory, fds and the event loop stay bounded, a read completes from the honest peer', async (t) => {
  const dir = await tempDir('btmount-500-');
  t.teardown(dir.cleanup);
  const mountpoint = path.join(dir.path, 'mnt');
  await mkdir(mountpoint);
  const data = randomBytes(8 * MiB);
  const raw = buildTorrent({ name: 'data.bin', length: data.length, pieceLength: 256 * 1024, data });
  const torrent = path.join(dir.path, 'data.torrent');
  await writeFile(torrent, raw);
  const { metainfo, swarm: honest, port: honestPort } = await startSeederFromBytes(raw, data);
  t.teardown(() => honest.close());

  const port = await freePort('::'); // the mount listens on every interface
  const m = await mountWithCli(mountpoint, ['mount', torrent, mountpoint, '--cache', path.join(dir.path, 'cache'), '--port', String(port), '--no-dht', '--peer', `127.0.0.1:${honestPort}`]);
  t.teardown(() => m.unmount());
  await waitUntil('the honest peer connected', async () => {
    const s = await btmount(['status', mountpoint, '--json']);
    return s.code === 0 && (JSON.parse(s.stdout).peers as unknown[]).length > 0;
  });
  const rssBefore = await rssMiB(m.pid);
  const fdsBefore = await fds(m.pid);

  const sockets: net.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  t.teardown(() => {
    timers.forEach(clearInterval);
    sockets.forEach((s) => s.destroy());
  });
  for (let i = 0; i < 500; i++) {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.${10 + Math.floor(i / 250)}.${(i % 250) + 1}` });
    socket.on('error', () => {});
    socket.resume();
    sockets.push(socket);
    if (i % 10 === 8) {
      socket.once('connect', () => {
        socket.write(handshakeBytes(metainfo.infoHash));
        timers.push(setInterval(() => socket.writable && socket.write(Buffer.alloc(4)), 5000));
      });
    } else if (i % 10 === 9) {
      const hs = handshakeBytes(metainfo.infoHash);
      let at = 0;
      timers.push(setInterval(() => socket.writable && at < hs.length && socket.write(hs.subarray(at, ++at)), 1000));
    }
  }
  await new Promise((r) => setTimeout(r, 3000));

  // The event loop still serves the control socket.
  const asked = Date.now();
  const status = await btmount(['status', mountpoint, '--json'], { timeoutMs: 30_000 });
  const statusMs = Date.now() - asked;
  t.is(status.code, 0, status.stderr);

  // A whole-file read through the mount (another process), while the strangers stay connected.
  const digest = await sha256Via(path.join(mountpoint, 'data.bin'));
  t.is(digest, createHash('sha256').update(data).digest('hex'), 'the read is right');

  const rssDuring = await rssMiB(m.pid);
  const fdsDuring = await fds(m.pid);
  const stillOpen = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
  t.log(`daemon: RSS ${rssBefore.toFixed(0)} → ${rssDuring.toFixed(0)} MiB, fds ${fdsBefore} → ${fdsDuring}; status answered in ${statusMs} ms; ${stillOpen} of 500 strangers still connected after the read`);
  t.true(isAlive(m.pid));
  t.true(fdsDuring <= fdsBefore + 60, `fds ${fdsBefore} → ${fdsDuring}: the connection cap (50) holds`);
  t.true(rssDuring - rssBefore < 200, `RSS grew ${rssDuring - rssBefore} MiB`);
  t.true(statusMs < 15_000, `status took ${statusMs} ms`);
});
