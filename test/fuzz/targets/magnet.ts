import fc from 'fast-check';
import { InvalidTorrentError, loadSource } from '../../../src/metainfo/index.js';
import { expect, FuzzFinding, type FuzzTarget } from '../target.js';

const hex40 = fc.stringMatching(/^[0-9a-fA-F]{40}$/);
const b32 = fc.stringMatching(/^[A-Z2-7]{32}$/);
const junk = fc.string({ unit: 'binary', maxLength: 60 });
const param = fc.oneof(
  fc.tuple(fc.constantFrom('urn:btih:', 'urn:btmh:1220', 'urn:btih:', 'urn:sha1:', ''), fc.oneof(hex40, b32, junk)).map(([p, h]) => `xt=${p}${h}`),
  fc.tuple(fc.constantFrom('dn', 'tr', 'ws', 'x.pe', 'so', 'xs', 'as', 'kt', 'xl', 'ix', '__proto__', 'constructor'), fc.oneof(
    junk,
    fc.constantFrom('127.0.0.1:1', '[::1]:1', ':0', '1.2.3.4:99999', 'http://127.0.0.1:1/a', '%', '%zz', '%00', '0-9999999999', 'a'.repeat(5000)),
  ), fc.boolean()).map(([k, v, escape]) => `${k}=${escape ? encodeURIComponent(v) : v}`),
  junk,
);
const magnet = fc
  .tuple(fc.constantFrom('magnet:?', 'magnet:', 'magnet:?&', 'MAGNET:?'), fc.array(param, { maxLength: 8 }), fc.constantFrom('&', '&&', ';'))
  .map(([prefix, params, sep]) => prefix + params.join(sep));
const spec = fc.oneof({ weight: 6, arbitrary: magnet }, { weight: 1, arbitrary: hex40 }, { weight: 1, arbitrary: b32 }, { weight: 1, arbitrary: junk.map((j) => `magnet:${j}`) });

/** Reads only magnet URIs and bare hashes: anything else would be a file path (and open a file). */
export const magnetTarget: FuzzTarget = {
  name: 'magnet',
  what: 'magnet URIs and bare infohashes',
  input: spec.map((s) => [Buffer.from(s, 'utf8')]),
  async run([raw]) {
    const text = raw!.toString('utf8');
    const looksLikeHash = /^[0-9a-fA-F]{40}$|^[a-zA-Z2-7]{32}$/.test(text);
    if (!text.startsWith('magnet:') && !looksLikeHash) return; // a path: not this target's input
    try {
      const source = await loadSource(text);
      expect(source.kind === 'hash', 'a magnet became a torrent');
      if (source.kind !== 'hash') return;
      expect(/^[0-9a-f]{40}$/.test(source.infoHash), `infohash ${JSON.stringify(source.infoHash)} is not 40 lower-case hex digits`);
      expect(Array.isArray(source.announce) && source.announce.every((u) => typeof u === 'string'), 'announce is not a list of strings');
      expect(Array.isArray(source.peers) && source.peers.every((p) => typeof p === 'string'), 'peers is not a list of strings');
      expect(source.name === undefined || typeof source.name === 'string', 'name is not a string');
      for (const hash of btihHashes(text)) {
        expect(hashText(hash) === source.infoHash, `magnet says urn:btih:${hash}, mount would use ${source.infoHash}`);
      }
    } catch (err) {
      if (err instanceof FuzzFinding) throw err;
      if (err instanceof InvalidTorrentError) {
        expect(!err.message.includes('\n') || text.includes('\n'), 'refusal is not one line');
        return;
      }
      throw new FuzzFinding(`loadSource threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
    }
  },
};

/** The hashes after `xt=urn:btih:`, split the way magnet-uri splits (on '&', then '='). */
function btihHashes(text: string): string[] {
  const data = text.split('magnet:?')[1] ?? '';
  return data
    .split('&')
    .map((param) => param.split('='))
    .filter((kv) => kv.length === 2 && kv[0] === 'xt' && kv[1]!.startsWith('urn:btih:'))
    .map((kv) => kv[1]!.slice('urn:btih:'.length));
}

/** A hash as 40 lower-case hex digits (from hex or RFC 4648 base32), '' if it is neither. */
function hashText(hash: string): string {
  if (/^[0-9a-fA-F]{40}$/.test(hash)) return hash.toLowerCase();
  if (!/^[a-zA-Z2-7]{32}$/.test(hash)) return '';
  let bits = '';
  for (const c of hash.toUpperCase()) bits += 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.indexOf(c).toString(2).padStart(5, '0');
  return Buffer.from(bits.match(/.{8}/g)!.map((b) => parseInt(b, 2))).toString('hex');
}
