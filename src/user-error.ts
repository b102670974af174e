/**
 * An error meant for the person at the terminal: `btmount: <action>: <reason>`.
 * Anything else that reaches the top level is a bug and prints the same one
 * line; the stack trace only with --debug.
 */
export class UserError extends Error {
  constructor(
    readonly action: string,
    readonly reason: string,
    readonly exitCode = 1,
  ) {
    super(`${action}: ${reason}`);
    this.name = 'UserError';
  }
}

export function formatError(err: unknown): string {
  if (err instanceof UserError) return `btmount: ${err.action}: ${err.reason}`;
  if (err instanceof Error) return `btmount: ${err.message}`;
  return `btmount: ${String(err)}`;
}
