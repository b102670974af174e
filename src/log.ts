import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/**
 * The one logger factory. Logs are JSON lines (pino) written to a file, or to
 * stderr when that is not a terminal (a service manager, a pipe); a person
 * watching a foreground mount on a terminal gets readable lines instead.
 */
export function createLogger(opts: { file?: string; level?: string } = {}): Logger {
  const level = opts.level ?? 'info';
  if (opts.file) return pino({ level }, pino.destination({ dest: opts.file, mkdir: true, sync: false }));
  if (process.stderr.isTTY) {
    const readable = pretty({ destination: 2, sync: true, colorize: process.stderr.hasColors(), singleLine: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' });
    return pino({ level }, readable);
  }
  return pino({ level }, pino.destination(2));
}

/** A logger that drops everything: for library use and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
