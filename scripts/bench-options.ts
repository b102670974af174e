/**
 * A bench's command line: `--name value` options, each with its default. `--help` prints them
 * and exits; an unknown option, a stray word or an option without its value is one line on
 * stderr and exit status 2. A bench runs for minutes: a typo (or `--help`) must not start a
 * full run with the defaults.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';

/** Option names (without `--`) → default values; a `string[]` default makes the option repeatable. */
type Defaults = Record<string, string | string[]>;

export function benchOptions<D extends Defaults>(summary: string, defaults: D, argv = process.argv.slice(2)): D {
  const script = path.basename(process.argv[1] ?? 'bench');
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, value] of Object.entries(defaults)) options[name] = { type: 'string', multiple: Array.isArray(value) };
  let values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (err) {
    // parseArgs explains how to pass a positional that starts with '-': not an option a bench has.
    const reason = (err instanceof Error ? err.message : String(err)).split('. ')[0];
    process.stderr.write(`${script}: ${reason}; see --help\n`);
    process.exit(2);
  }
  if (values['help']) {
    const lines = Object.entries(defaults).map(([name, value]) =>
      Array.isArray(value) ? `  --${name} VALUE   (repeatable)` : `  --${name} VALUE   (default: ${value === '' ? 'none' : value})`,
    );
    process.stdout.write(`${summary}\n\nusage: node ${path.relative(process.cwd(), process.argv[1] ?? script)} [options]\n${lines.join('\n')}\n`);
    process.exit(0);
  }
  const out: Defaults = { ...defaults };
  for (const name of Object.keys(defaults)) {
    const given = values[name];
    if (typeof given === 'string') out[name] = given;
    else if (Array.isArray(given)) out[name] = given.map(String);
  }
  return out as D;
}
