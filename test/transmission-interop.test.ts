import test, { type ExecutionContext } from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sha256Via, mountTorrent } from './helpers/mount.js';
import { BTMOUNT_BIN, freePort, makeDataset, sha256File, startProcess, type Dataset, type Proc } from './helpers/peers.js';
import { btmount, run, tempDir } from './helpers/run.js';

/**
 * Interop with a third implementation, Transmission 3.00 (Debian's
 * transmission-daemon), both ways on 127.0.0.1: btmount mounts a torrent
 * Transmission seeds, and Transmission downloads from `btmount seed`.
 *
 * Transmission never dials a loopback address it learnt from a tracker, PEX or
 * the DHT: libtransmission's tr_address_is_valid_for_peers() refuses 0/8,
 * 127/8, multicast and ::1 ("martian" addresses, net.c), so on one machine the
 * connection must come from btmount's side (`--peer`). It accepts incoming
 * connections from 127.0.0.1 as from anyone. (Tried: told of a `btmount seed`
 * on 127.0.0.1 by a tracker, it took the peer from 5 announces in 25 s and
 * connected to it 0 times.)
 */

const PIECE = 64 * 1024;
const FILES = [
  { path: 'train/000.jpg', length: 3 * PIECE + 123 },
  { path: 'train/001.jpg', length: 200_000 },
  { path: 'train/sub/002.jpg', length: 5 * PIECE },
  { path: 'val/003.jpg', length: 40_000 },
  { path: 'labels.csv', length: 17 },
];

interface Transmission {
  peerPort: number;
  /** One call of Transmission's JSON RPC (the session-id handshake included). */
  rpc<T = Record<string, unknown>>(method: string, args?: Record<string, unknown>): Promise<T>;
  proc: Proc;
}

interface TorrentState {
  id: number;
  percentDone: number;
  status: number;
  error: number;
  errorString: string;
  uploadedEver: number;
  peers: Array<{ address: string; port: number; clientName: string; isIncoming: boolean }>;
}

const TR_STATUS_SEED = 6;

/** transmission-daemon in the foreground, its own config dir, RPC and peer port on 127.0.0.1, no DHT/LPD/PEX/uTP/port mapping. */
async function startTransmission(t: ExecutionContext, dir: string): Promise<Transmission> {
  if ((await run('transmission-daemon', ['--version'])).code !== 0) throw new Error('transmission-daemon is not installed (.ci/run and scripts/ensure-deps install it)');
  const configDir = path.join(dir, 'transmission');
  await mkdir(configDir, { recursive: true });
  const [rpcPort, peerPort] = [await freePort(), await freePort()];
  const settings = {
    'bind-address-ipv4': '127.0.0.1',
    'bind-address-ipv6': '::1',
    'rpc-enabled': true,
    'rpc-bind-address': '127.0.0.1',
    'rpc-port': rpcPort,
    'rpc-authentication-required': false,
    'rpc-whitelist-enabled': true,
    'rpc-whitelist': '127.0.0.1',
    'rpc-host-whitelist-enabled': false,
    'peer-port': peerPort,
    'peer-port-random-on-start': false,
    'port-forwarding-enabled': false,
    'dht-enabled': false,
    'lpd-enabled': false,
    'pex-enabled': false,
    'utp-enabled': false,
    'blocklist-enabled': false,
    // btmount speaks plain BitTorrent (no MSE): "tolerated" takes and makes unencrypted connections.
    encryption: 0,
    'download-dir': path.join(dir, 'transmission-downloads'),
    'incomplete-dir-enabled': false,
    'watch-dir-enabled': false,
    'start-added-torrents': true,
    'ratio-limit-enabled': false,
    'idle-seeding-limit-enabled': false,
    'speed-limit-up-enabled': false,
    'speed-limit-down-enabled': false,
    'alt-speed-enabled': false,
    'download-queue-enabled': false,
    'seed-queue-enabled': false,
    'queue-stalled-enabled': false,
    'message-level': 2,
  };
  await writeFile(path.join(configDir, 'settings.json'), JSON.stringify(settings, null, 2));
  const proc = startProcess('transmission-daemon', ['--foreground', '--config-dir', configDir, '--log-info']);
  t.teardown(() => proc.stop().then(() => undefined));

  let sessionId = '';
  const url = `http://127.0.0.1:${rpcPort}/transmission/rpc`;
  async function rpc<T>(method: string, args: Record<string, unknown> = {}): Promise<T> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-transmission-session-id': sessionId },
        body: JSON.stringify({ method, arguments: args }),
      });
      if (res.status === 409) {
        sessionId = res.headers.get('x-transmission-session-id') ?? '';
        continue;
      }
      const body = (await res.json()) as { result: string; arguments: T };
      if (body.result !== 'success') throw new Error(`transmission ${method}: ${body.result}`);
      return body.arguments;
    }
    throw new Error(`transmission ${method}: no session id`);
  }
  // Ready once the RPC answers.
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      await rpc('session-get');
      break;
    } catch (err) {
      if (Date.now() > until) throw new Error(`transmission-daemon RPC never answered: ${(err as Error).message}\n${proc.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return { peerPort, rpc, proc };
}

async function addTorrent(tr: Transmission, ds: Dataset, downloadDir: string): Promise<number> {
  const added = await tr.rpc<{ 'torrent-added'?: { id: number } }>('torrent-add', { filename: ds.torrentPath, 'download-dir': downloadDir, paused: false });
  if (!added['torrent-added']) throw new Error(`transmission did not add ${ds.torrentPath}: ${JSON.stringify(added)}`);
  return added['torrent-added'].id;
}

async function torrentState(tr: Transmission, id: number): Promise<TorrentState> {
  const got = await tr.rpc<{ torrents: TorrentState[] }>('torrent-get', {
    ids: [id],
    fields: ['id', 'percentDone', 'status', 'error', 'errorString', 'uploadedEver', 'peers'],
  });
  return got.torrents[0]!;
}

/** Polls the torrent until `done` holds; fails after `timeoutMs` (a deadline on an error path, not a speed check). */
async function waitForTorrent(tr: Transmission, id: number, done: (s: TorrentState) => boolean, what: string, timeoutMs = 90_000): Promise<TorrentState> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await torrentState(tr, id);
    if (s.error !== 0) throw new Error(`transmission: ${s.errorString}`);
    if (done(s)) return s;
    if (Date.now() > until) throw new Error(`transmission never got to ${what}: ${JSON.stringify(s)}\n${tr.proc.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('btmount mounts a torrent Transmission seeds on 127.0.0.1 and reads every byte of it', async (t) => {
  const tmp = await tempDir('btmount-tr-seed-');
  t.teardown(tmp.cleanup);
  const ds = await makeDataset(tmp.path, 'dataset', FILES, PIECE);
  const tr = await startTransmission(t, tmp.path);
  const id = await addTorrent(tr, ds, ds.parent);
  await waitForTorrent(tr, id, (s) => s.percentDone === 1 && s.status === TR_STATUS_SEED, 'seeding the verified dataset');

  const m = await mountTorrent(tmp.path, ds.torrentPath, { peers: [`127.0.0.1:${tr.peerPort}`], readTimeout: 30 });
  t.teardown(m.unmount);
  for (const f of ds.files) t.is(await sha256Via(path.join(m.mountpoint, f.path)), f.sha256, `sha256 of ${f.path} through the mount`);

  const status = await btmount(['status', m.mountpoint, '--json']);
  t.is(status.code, 0, status.stderr);
  const peers = (JSON.parse(status.stdout) as { peers: Array<{ address: string; client: string | null }> }).peers;
  t.true(
    peers.some((p) => p.address === `127.0.0.1:${tr.peerPort}` && /^Transmission 3/.test(p.client ?? '')),
    `the mount's peer is Transmission: ${JSON.stringify(peers)}`,
  );
  const seeded = await torrentState(tr, id);
  t.true(seeded.uploadedEver >= ds.metainfo.layout.totalLength, `Transmission uploaded ${seeded.uploadedEver} bytes`);
});

test('Transmission downloads the whole torrent from btmount seed on 127.0.0.1 (btmount dials it: Transmission does not dial loopback peers)', async (t) => {
  const tmp = await tempDir('btmount-tr-leech-');
  t.teardown(tmp.cleanup);
  const ds = await makeDataset(tmp.path, 'dataset', FILES, PIECE);
  const tr = await startTransmission(t, tmp.path);
  const out = path.join(tmp.path, 'out');
  await mkdir(out);
  const id = await addTorrent(tr, ds, out);

  const seedPort = await freePort();
  const seed = startProcess(process.execPath, [
    BTMOUNT_BIN, 'seed', ds.torrentPath, ds.root, '--host', '127.0.0.1', '--port', String(seedPort), '--no-dht', '--peer', `127.0.0.1:${tr.peerPort}`,
  ]);
  t.teardown(() => seed.stop().then(() => undefined));
  await seed.waitFor(/seeding .* on port/, 60_000);

  // No tracker, DHT, LPD or PEX: the btmount seed is Transmission's only source.
  await waitForTorrent(tr, id, (s) => s.percentDone === 1, 'a complete download');
  for (const f of ds.files) t.is(await sha256File(path.join(out, 'dataset', f.path)), f.sha256, `sha256 of ${f.path} as Transmission wrote it`);
  t.is(await seed.stop('SIGINT'), 0, seed.output());
  t.regex(seed.output(), /stopped: uploaded/);
});
