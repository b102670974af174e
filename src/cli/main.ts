import { Command, CommanderError } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { formatError } from '../user-error.js';
import { registerInspect } from './inspect.js';
import { registerMount } from './mount.js';
import { registerUmount } from './umount.js';
import { registerSeed } from './seed.js';
import { registerCreate } from './create.js';
import { registerWarm } from './warm.js';
import { registerStatus } from './status.js';
import { UserError } from '../user-error.js';

const packageJson = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export function buildProgram(): Command {
  const program = new Command('btmount')
    .description('Mount a BitTorrent dataset by its hash as a read-only directory.')
    .version(packageJson.version)
    .option('--debug', 'print stack traces and verbose logs')
    // Before the commands are added, so they inherit it: commander's own errors in the one-line form.
    .configureOutput({ outputError: (text, write) => write(commanderErrorLine(text)) })
    .exitOverride();
  registerMount(program);
  registerUmount(program);
  registerInspect(program);
  registerSeed(program);
  registerCreate(program);
  registerWarm(program);
  registerStatus(program);
  return program;
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  // `btmount status --json | head`: a reader that stops listening is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(withDefaultCommand(program, argv));
    return 0;
  } catch (err) {
    // commander already printed its own message (usage errors, --help, --version).
    if (err instanceof CommanderError) return err.exitCode;
    process.stderr.write(formatError(err) + '\n');
    if (argv.includes('--debug') && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    return err instanceof UserError ? err.exitCode : 1;
  }
}

/**
 * `btmount <source> <mountpoint>` is `btmount mount <source> <mountpoint>`. A
 * first word that is no command and does not look like a source (an existing
 * path, something path-like, a magnet URI or an infohash) is left to
 * commander, which calls it an unknown command and suggests the nearest one.
 */
function withDefaultCommand(program: Command, argv: string[]): string[] {
  const first = argv[2];
  if (first === undefined || first.startsWith('-') || first === 'help') return argv;
  const known = program.commands.some((c) => c.name() === first || c.aliases().includes(first));
  if (known || !looksLikeSource(first)) return argv;
  return [...argv.slice(0, 2), 'mount', ...argv.slice(2)];
}

function looksLikeSource(text: string): boolean {
  return (
    text.startsWith('magnet:') ||
    /^[0-9a-f]{40}$/i.test(text) ||
    /^[a-z2-7]{32}$/i.test(text) ||
    text.includes('/') ||
    text.includes('.') ||
    existsSync(text)
  );
}

/**
 * commander's `error: unknown command 'stauts'` + `(Did you mean status?)` on
 * the next line, as `btmount: unknown command 'stauts' (did you mean 'status'?)`.
 */
export function commanderErrorLine(text: string): string {
  const [first = '', ...rest] = text.trim().split('\n');
  const message = first.replace(/^error: /, '');
  const similar = /^\(Did you mean (one of )?(.+)\?\)$/.exec(rest.join(' ').trim());
  const names = similar?.[2]!.split(', ').map((name) => `'${name}'`).join(', ');
  const hint = similar ? ` (did you mean ${similar[1] ?? ''}${names}?)` : ' (see btmount --help)';
  return `btmount: ${message}${hint}\n`;
}
