import type { Command, Option } from 'commander';
import { UserError } from '../user-error.js';

/**
 * `-o` for mount(8) and /etc/fstab: `mount -t fuse.btmount <source> /data -o
 * cache=/var/cache/btmount,cache_size=20G,no_dht,allow_other` makes Debian's
 * mount.fuse run `btmount <source> /data -o <that list>`. Every long option of
 * `btmount mount` has an `-o` spelling: `--cache-size 20G` is `cache_size=20G`,
 * `--no-dht` is `no_dht`; repeatable ones repeat (`peer=a:1,peer=b:2`). The
 * entries act as if given after the other flags.
 *
 * mount(8) and mount.fuse add options of their own to the list (`rw` when `ro`
 * is not given, `dev,suid`, and whatever the fstab line says for mount(8)
 * itself: `nofail`, `_netdev`, `noauto`, `x-systemd.*`). Those are accepted and
 * change nothing: the mount is read-only, nosuid-safe content, either way.
 */

/** Options meant for mount(8), mount.fuse or the kernel's generic mount flags; btmount has no use for them. */
const MOUNT8_OPTIONS = new Set([
  'defaults', 'ro', 'rw', 'auto', 'noauto', 'nofail', '_netdev', 'user', 'users', 'nouser', 'owner', 'group',
  'dev', 'nodev', 'suid', 'nosuid', 'exec', 'noexec', 'async', 'sync', 'dirsync',
  'atime', 'noatime', 'relatime', 'norelatime', 'strictatime', 'nostrictatime', 'lazytime', 'nolazytime',
  'diratime', 'nodiratime', 'silent', 'loud',
]);

/** Prefixes of options for mount(8) and systemd (`x-systemd.automount`, `comment=…`). */
const MOUNT8_PREFIXES = ['x-', 'comment='];

/** The flags `-o` may not set: itself, and the global --debug (give it before the source). */
const NOT_IN_O = new Set(['--options', '--help', '--version']);

/** Splits `a=1,b,c=x` into entries; empty entries (`a,,b`, a trailing comma) are skipped. */
export function splitMountOptions(lists: readonly string[]): Array<{ key: string; value: string | undefined }> {
  const entries: Array<{ key: string; value: string | undefined }> = [];
  for (const list of lists) {
    for (const item of list.split(',')) {
      const text = item.trim();
      if (!text) continue;
      const eq = text.indexOf('=');
      entries.push(eq < 0 ? { key: text, value: undefined } : { key: text.slice(0, eq), value: text.slice(eq + 1) });
    }
  }
  return entries;
}

/** True for an option mount(8) or mount.fuse passes along that btmount ignores. */
export function isMount8Option(key: string, value: string | undefined): boolean {
  const text = value === undefined ? key : `${key}=`;
  return MOUNT8_OPTIONS.has(key) || MOUNT8_PREFIXES.some((prefix) => text.startsWith(prefix));
}

/**
 * Applies the `-o` lists to `command`'s option values, through each option's
 * own parser, so `cache_size=20x` fails exactly like `--cache-size 20x`.
 * Throws a UserError naming the entry for an unknown option or a missing or
 * unexpected value.
 */
export function applyMountOptions(command: Command, lists: readonly string[], action: string): void {
  for (const { key, value } of splitMountOptions(lists)) {
    if (isMount8Option(key, value)) continue;
    const flag = `--${key.replace(/_/g, '-')}`;
    const option = NOT_IN_O.has(flag) ? undefined : command.options.find((o: Option) => o.long === flag);
    if (!option) {
      throw new UserError(action, `unknown mount option "${key}" in -o (each long option of btmount mount works there: cache_size=20G, no_dht; see btmount mount --help)`);
    }
    const name = option.attributeName();
    const takesValue = option.required || option.optional;
    if (takesValue && value === undefined && option.required) throw new UserError(action, `mount option "${key}" needs a value: ${key}=…`);
    if (!takesValue && value !== undefined) throw new UserError(action, `mount option "${key}" takes no value (give it as just ${key})`);
    if (!takesValue) {
      command.setOptionValueWithSource(name, !option.negate, 'cli');
      continue;
    }
    const previous: unknown = command.getOptionValue(name);
    const parsed: unknown = option.parseArg ? option.parseArg(value ?? '', previous) : value;
    command.setOptionValueWithSource(name, parsed, 'cli');
  }
}
