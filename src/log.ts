import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/**
 * The one logger factory. Logs are JSON lines (pino) written to a file, or to
 * stderr when that is not a terminal (a service manager, a pipe); a person
 * watching a foreground mount on a terminal gets readable lines instead.
 *
 * A file logger reopens its file on SIGHUP, as logrotate expects (rotate with
 * `postrotate kill -HUP <daemon pid>`): lines then go to a new file at the same
 * path. Without the handler SIGHUP would end the process, and with it the mount.
 */
export function createLogger(opts: { file?: string; level?: string } = {}): Logger {
  const level = opts.level ?? 'info';
  if (opts.file) return reopeningFileLogger(opts.file, level);
  if (process.stderr.isTTY) {
    const readable = pretty({ destination: 2, sync: true, colorize: process.stderr.hasColors(), singleLine: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' });
    return pino({ level }, readable);
  }
  return pino({ level }, pino.destination(2));
}

function reopeningFileLogger(file: string, level: string): Logger {
  const destination = pino.destination({ dest: file, mkdir: true, sync: false });
  const log = pino({ level }, destination);
  process.on('SIGHUP', () => {
    // Lines still buffered go to the old file (its descriptor is still open), then it is closed.
    destination.reopen();
    log.info({ file }, 'log file reopened (SIGHUP)');
  });
  return log;
}

/** A logger that drops everything: for library use and unit tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
