import test from 'ava';
import { count, metadataProgressText } from '../src/cli/format.js';
import { commanderErrorLine } from '../src/cli/main.js';
import path from 'node:path';
import { btmount, REPO_ROOT, run } from './helpers/run.js';

// The messages a new user meets first: one line each, `btmount: …`, exit code 1.

const oneLine = (text: string): string[] => text.trim().split('\n');

test('a mistyped command is called an unknown command with the nearest one, not read as a torrent', async (t) => {
  const cases: Array<[string[], string]> = [
    [['stauts', '/data'], "btmount: unknown command 'stauts' (did you mean 'status'?)"],
    [['umonut', '/data'], "btmount: unknown command 'umonut' (did you mean 'umount'?)"],
    [['wram', '/data', 'train/'], "btmount: unknown command 'wram' (did you mean 'warm'?)"],
    [['frobnicate', '/data'], "btmount: unknown command 'frobnicate' (see btmount --help)"],
  ];
  for (const [args, expected] of cases) {
    const res = await btmount(args);
    t.is(res.code, 1, args.join(' '));
    t.deepEqual(oneLine(res.stderr), [expected], args.join(' '));
  }
});

test('a source that looks like one is still mounted by default (and fails on its own terms)', async (t) => {
  const res = await btmount(['./missing.torrent', '/nonexistent-mnt']);
  t.is(res.code, 1);
  t.deepEqual(oneLine(res.stderr), ['btmount: cannot read torrent ./missing.torrent: no such file (expected a .torrent file, magnet URI or infohash)']);
  const hash = await btmount(['0123456789abcdef0123456789abcdef01234567', '/nonexistent-mnt']);
  t.is(hash.code, 1);
  t.regex(hash.stderr, /^btmount: cannot mount: \/nonexistent-mnt does not exist/);
});

test("commander's own errors are one `btmount: …` line too", async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['status', '--bogus', '/x'], /^btmount: unknown option '--bogus' \(see btmount --help\)$/],
    [['status', '--jsn', '/x'], /^btmount: unknown option '--jsn' \(did you mean '--json'\?\)$/],
    [['mount'], /^btmount: missing required argument 'source'/],
    [['umount'], /^btmount: missing required argument 'mountpoint'/],
    [['status', 'a', 'b'], /^btmount: too many arguments for 'status'/],
  ];
  for (const [args, expected] of cases) {
    const res = await btmount(args);
    t.is(res.code, 1, args.join(' '));
    const lines = oneLine(res.stderr);
    t.is(lines.length, 1, res.stderr);
    t.regex(lines[0]!, expected);
  }
});

test('commanderErrorLine: several suggestions are all quoted', (t) => {
  t.is(commanderErrorLine("error: unknown command 'sta'\n(Did you mean one of stat, star?)\n"), "btmount: unknown command 'sta' (did you mean one of 'stat', 'star'?)\n");
  t.is(commanderErrorLine("error: option '--port <n>' argument missing\n"), "btmount: option '--port <n>' argument missing (see btmount --help)\n");
});

test('counts agree with their nouns: "1 peer", "0 peers", "3 peers"', (t) => {
  t.is(metadataProgressText({ connected: 1, known: 1, rejected: 0 }), 'fetching metadata: 1 peer');
  t.is(metadataProgressText({ connected: 0, known: 0, rejected: 0 }), 'fetching metadata: 0 peers');
  t.is(metadataProgressText({ connected: 3, known: 12, rejected: 1 }), 'fetching metadata: 3 peers (12 known), 1 rejected');
  t.is(count(1, 'tracker'), '1 tracker');
  t.is(count(2, 'banned peer'), '2 banned peers');
});

test('the demo prints plain text when its output is not a terminal', async (t) => {
  // The demo's own `say` definition, run with stdout on a pipe as in a log or CI.
  const script = path.join(REPO_ROOT, 'scripts', 'demo');
  const res = await run('bash', ['-c', `eval "$(grep -E '^(if \\[ -t 1 \\]|say\\(\\))' '${script}')"; say hello`]);
  t.is(res.code, 0, res.stderr);
  t.is(res.stdout, 'demo: hello\n');
});
