import { chmod, lstat, mkdir } from 'node:fs/promises';

/**
 * Who may use a mount's control socket: only the user who mounted. Linux would
 * tell a unix-socket server its peer's uid (SO_PEERCRED), but Node does not
 * expose it, so the check is the file system's: the socket lives in the user's
 * runtime directory, which must be a real directory (not a symlink) owned by
 * the user with no access for anyone else (0700), and the socket itself is
 * 0600. Another user cannot reach it (root can, as root can everything).
 */

const myUid = (): number => process.getuid?.() ?? 0;

/** The directory does not meet the rule above and cannot be made to. */
export class UnsafeRuntimeDirError extends Error {
  constructor(
    readonly dir: string,
    why: string,
  ) {
    super(`the runtime directory ${dir} ${why}; remove it or set XDG_RUNTIME_DIR to a private directory`);
    this.name = 'UnsafeRuntimeDirError';
  }
}

/** Creates `dir` 0700 if missing; checks an existing one is ours and not a symlink; takes away others' access. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await lstat(dir);
  if (info.isSymbolicLink()) throw new UnsafeRuntimeDirError(dir, 'is a symbolic link');
  if (!info.isDirectory()) throw new UnsafeRuntimeDirError(dir, 'is not a directory');
  if (info.uid !== myUid()) throw new UnsafeRuntimeDirError(dir, `belongs to uid ${info.uid}, not to you (uid ${myUid()})`);
  if ((info.mode & 0o077) !== 0) await chmod(dir, 0o700);
}

/** Makes a freshly bound socket owner-only. */
export async function restrictSocket(socket: string): Promise<void> {
  await chmod(socket, 0o600);
}

/**
 * Before a client connects: the socket must be a socket owned by the caller,
 * so a command never talks to a daemon someone else planted. Returns why not,
 * or undefined when it may connect. (The connect itself fails with EACCES for
 * anyone else.)
 */
export async function socketProblem(socket: string): Promise<string | undefined> {
  let info;
  try {
    info = await lstat(socket);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `its control socket ${socket} is missing`;
    if (code === 'EACCES') return `no permission to reach its control socket ${socket} (the mount belongs to another user)`;
    return `cannot reach its control socket ${socket}: ${(err as Error).message}`;
  }
  if (!info.isSocket()) return `${socket} is not a socket`;
  if (info.uid !== myUid()) return `its control socket ${socket} belongs to uid ${info.uid}, not to you`;
  return undefined;
}
