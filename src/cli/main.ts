import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
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
    .showHelpAfterError('(run btmount --help for usage)')
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

/** `btmount <source> <mountpoint>` is `btmount mount <source> <mountpoint>`. */
function withDefaultCommand(program: Command, argv: string[]): string[] {
  const first = argv[2];
  if (first === undefined || first.startsWith('-') || first === 'help') return argv;
  const known = program.commands.some((c) => c.name() === first || c.aliases().includes(first));
  return known ? argv : [...argv.slice(0, 2), 'mount', ...argv.slice(2)];
}
