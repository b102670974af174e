import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * The one logger factory. Logs are JSON lines (pino) written to a file or stderr;
 * the terminal gets only the one-line messages the CLI prints itself.
 *
 * A file logger reopens its file on SIGHUP, as logrotate expects (rotate with
 * `postrotate kill -HUP <daemon pid>`): lines then go to a new file at the same
 * path. Without the handler SIGHUP would end the process, and with it the mount.
 */
export function createLogger(opts: { file?: string; level?: string } = {}): Logger {
  const level = opts.level ?? 'info';
  if (!opts.file) return pino({ level }, pino.destination(2));
  const destination = pino.destination({ dest: opts.file, mkdir: true, sync: false });
  const log = pino({ level }, destination);
  const file = opts.file;
  process.on('SIGHUP', () => {
    // Lines still buffered go to the old file (its descriptor is still open), then it is closed.
    destination.reopen();
    log.info({ file }, 'log file reopened (SIGHUP)');
  });
  return log;
}

/** A logger that drops everything: for library use and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
