import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The one logger factory. Logs are JSON lines (pino) written to a file or stderr;
 * the terminal gets only the one-line messages the CLI prints itself.
 */
export function createLogger(opts: { file?: string; level?: string } = {}): Logger {
  const level = opts.level ?? 'info';
  if (opts.file) return pino({ level }, pino.destination({ dest: opts.file, mkdir: true, sync: false }));
  return pino({ level }, pino.destination(2));
}

/** A logger that drops everything: for library use and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
