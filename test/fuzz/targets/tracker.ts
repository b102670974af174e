import fc from 'fast-check';
import http from 'node:http';
import type net from 'node:net';
import { usableAddress } from '../../../src/discovery/peer-address.js';
import { parsePeerAddress } from '../../../src/discovery/peer-address.js';
import { benBytesOf, benDict, benIntOf, benList, benValue, interestingInts, orderedDict } from '../bencode-gen.js';
import { expect, type FuzzTarget } from '../target.js';
import { startFuzzAnnouncer, untilAnnounced } from './fuzz-announcer.js';

/** An HTTP tracker's announce answer: a dictionary with right, odd and wrong fields. */
const peerDict = fc
  .record({ ip: fc.oneof(fc.constantFrom('127.0.0.1', '::1', '[::1]', '0.0.0.0', 'localhost', '', '999.1.1.1', '224.0.0.1'), fc.string({ maxLength: 20 })), port: fc.oneof(fc.nat(70_000), interestingInts), id: fc.option(fc.uint8Array({ maxLength: 20 }), { nil: undefined }) })
  .map(({ ip, port, id }) => {
    const entries: Array<[string, Buffer]> = [['ip', benBytesOf(Buffer.from(ip))], ['port', benIntOf(port)]];
    if (id) entries.push(['peer id', benBytesOf(id)]);
    return orderedDict(entries, 0);
  });
const compactLoopback = (size: number) =>
  fc.array(fc.tuple(fc.nat(255), fc.nat(65535)), { maxLength: 30 }).map((ps) => Buffer.concat(ps.map(([h, p]) => {
    const b = Buffer.alloc(size);
    if (size === 6) b.set([127, 0, 0, h]);
    else b[15] = 1; // ::1 (the host byte of h is not used: keep it loopback)
    b.writeUInt16BE(p, size - 2);
    return b;
  })));
const announceBody = fc.oneof(
  { weight: 8, arbitrary: fc
      .record({
        interval: fc.option(fc.oneof(fc.constantFrom(1800, 60, 1, 0, -1, -1800, 2 ** 31, 2 ** 53, 4294968), interestingInts), { nil: undefined }),
        minInterval: fc.option(fc.oneof(fc.constantFrom(60, 0, -1, 2 ** 31), interestingInts), { nil: undefined }),
        peers: fc.option(fc.oneof(compactLoopback(6).map(benBytesOf), fc.uint8Array({ maxLength: 40 }).map(benBytesOf), fc.array(peerDict, { maxLength: 5 }).map(benList), benValue), { nil: undefined }),
        peers6: fc.option(fc.oneof(compactLoopback(18).map(benBytesOf), fc.uint8Array({ maxLength: 40 }).map(benBytesOf), fc.array(peerDict, { maxLength: 5 }).map(benList), benValue), { nil: undefined }),
        failure: fc.option(fc.oneof(fc.string({ maxLength: 30 }).map((s) => benBytesOf(Buffer.from(s))), benValue), { nil: undefined, freq: 6 }),
        warning: fc.option(fc.oneof(fc.string({ maxLength: 30 }).map((s) => benBytesOf(Buffer.from(s))), benValue), { nil: undefined, freq: 6 }),
        odd: fc.array(fc.tuple(fc.constantFrom('complete', 'incomplete', 'tracker id', 'info_hash', 'external ip', 'interval'), benValue), { maxLength: 2 }),
      })
      .map((r) => {
        const entries: Array<[string, Buffer]> = [...r.odd];
        if (r.interval !== undefined) entries.push(['interval', benIntOf(r.interval)]);
        if (r.minInterval !== undefined) entries.push(['min interval', benIntOf(r.minInterval)]);
        if (r.peers !== undefined) entries.push(['peers', r.peers]);
        if (r.peers6 !== undefined) entries.push(['peers6', r.peers6]);
        if (r.failure !== undefined) entries.push(['failure reason', r.failure]);
        if (r.warning !== undefined) entries.push(['warning message', r.warning]);
        return orderedDict(entries, 0);
      }) },
  { weight: 1, arbitrary: benValue },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.constant(benDict([])) },
);
/** First chunk: the body; second: one byte choosing the status (mostly 200). */
const response = fc.tuple(announceBody, fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(255) })).map(([body, status]) => [body, Buffer.from([status])]);
const STATUSES = [200, 204, 301, 400, 404, 500, 503];

/** How long an announcer lives after its first answer: long enough to see a re-announce loop. */
const WATCH_MS = 30;
/** Announces one announcer may make in that time: `started`, `stopped`, and one more at most. */
const MAX_ANNOUNCES = 3;

let server: http.Server | undefined;
let url = '';
let current: Buffer[] = [Buffer.alloc(0), Buffer.alloc(1)];
let requests = 0;
const sockets = new Set<net.Socket>();

export const trackerTarget: FuzzTarget = {
  name: 'tracker',
  what: 'HTTP tracker announce answers (bittorrent-tracker client + TrackerAnnouncer), from a server on 127.0.0.1',
  input: response,
  async open() {
    server = http.createServer((req, res) => {
      requests++;
      const [body, status] = current;
      const code = status![0] === 0 ? 200 : STATUSES[status![0]! % STATUSES.length]!;
      res.writeHead(code, { 'content-type': 'text/plain' });
      res.end(body);
    });
    server.keepAliveTimeout = 1;
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/announce`;
  },
  async close() {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  },
  async run(input) {
    current = input;
    requests = 0;
    const peers: string[] = [];
    const announcer = startFuzzAnnouncer(url);
    announcer.on('peer', (p: { host: string; port: number }) => peers.push(`${p.host}:${p.port}`));
    await untilAnnounced(announcer);
    await new Promise((resolve) => setTimeout(resolve, WATCH_MS));
    const beforeStop = requests;
    await announcer.stop();
    expect(beforeStop <= MAX_ANNOUNCES - 1, `${beforeStop} announces within ${WATCH_MS} ms of the first: the tracker's interval made a loop`);
    for (const p of peers) {
      const parsed = parsePeerAddress(p.includes(':') && !p.startsWith('[') && p.split(':').length > 2 ? `[${p.slice(0, p.lastIndexOf(':'))}]${p.slice(p.lastIndexOf(':'))}` : p);
      expect(parsed ? usableAddress(parsed.host, parsed.port) : undefined, `announcer handed on an unusable peer ${p}`);
    }
  },
};
