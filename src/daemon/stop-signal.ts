/**
 * Resolves with the reason a running process should stop: SIGINT, SIGTERM, or
 * `also` settling first (a mount removed from outside). The handlers are
 * removed once it resolves, so a second Ctrl-C kills as usual.
 */
export function untilStopped(also?: Promise<string>): Promise<string> {
  return new Promise((resolve) => {
    const stop = (why: string): void => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(why);
    };
    const onInt = (): void => stop('SIGINT');
    const onTerm = (): void => stop('SIGTERM');
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
    void also?.then(stop);
  });
}
