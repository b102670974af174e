import net from 'node:net';
import path from 'node:path';
import { isAlive } from '../process-alive.js';
import { readRecord, runtimeDir, type MountRecord } from './mount-registry.js';
import { isMounted } from '../fs/mountpoint.js';
import { encodeLine, LineDecoder, type ControlErrorCode, type ControlReply, type ControlRequest } from './protocol.js';
import { socketProblem } from './socket-access.js';

/** The mount cannot be reached: not a btmount mount of this user, daemon gone, socket missing. */
export class ControlUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ControlUnavailableError';
  }
}

/** The daemon answered with an error. */
export class ControlRequestError extends Error {
  constructor(
    readonly code: ControlErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ControlRequestError';
  }
}

/** Finds the daemon of `mountpoint` in the user's registry and checks it may be talked to. */
export async function locateMount(mountpoint: string): Promise<MountRecord> {
  const mp = path.resolve(mountpoint);
  const record = await readRecord(mp);
  if (!record) {
    if (await isMounted(mp)) throw new ControlUnavailableError(`${mp} is mounted, but not by a btmount of yours (nothing about it in ${runtimeDir()})`);
    throw new ControlUnavailableError(`${mp} is not a btmount mount point`);
  }
  if (!isAlive(record.pid)) {
    throw new ControlUnavailableError(`the daemon of ${mp} (pid ${record.pid}) is not running; btmount umount ${mp} cleans up`);
  }
  const problem = await socketProblem(record.socket);
  if (problem) throw new ControlUnavailableError(`cannot reach the daemon of ${mp}: ${problem}`);
  return record;
}

/** One connection to a mount's control socket: send a request, read its replies. */
export class ControlConnection {
  readonly #socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
  }

  /** Connects to the daemon of `mountpoint`, found in the user's registry. */
  static async open(mountpoint: string): Promise<ControlConnection> {
    const record = await locateMount(mountpoint);
    return ControlConnection.connect(record.socket, record.mountpoint);
  }

  /** Connects to a control socket directly (`mountpoint` only names it in messages). */
  static async connect(socketPath: string, mountpoint: string): Promise<ControlConnection> {
    const socket = net.createConnection(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve();
      });
      socket.once('error', reject);
    }).catch((err: NodeJS.ErrnoException) => {
      const why = err.code === 'ECONNREFUSED' ? 'nothing listens on it (the daemon is stopping or hung)' : err.code === 'EACCES' ? 'permission denied' : err.message;
      throw new ControlUnavailableError(`cannot reach the daemon of ${mountpoint} at ${socketPath}: ${why}`);
    });
    return new ControlConnection(socket);
  }

  send(request: ControlRequest): void {
    if (this.#socket.writable) this.#socket.write(encodeLine(request));
  }

  /** Replies until the daemon ends the connection. An `error` reply throws ControlRequestError. */
  async *replies(): AsyncGenerator<ControlReply> {
    const decoder = new LineDecoder();
    try {
      for await (const chunk of this.#socket) {
        for (const line of decoder.push(chunk as Buffer)) {
          const reply = JSON.parse(line) as ControlReply;
          if (reply.type === 'error') throw new ControlRequestError(reply.code, reply.message);
          yield reply;
        }
      }
    } catch (err) {
      if (err instanceof ControlRequestError) throw err;
      throw new ControlUnavailableError(`the connection to the daemon broke: ${(err as Error).message}`);
    }
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** Sends one request and returns its one reply. */
export async function requestOnce(mountpoint: string, request: ControlRequest): Promise<ControlReply> {
  const conn = await ControlConnection.open(mountpoint);
  try {
    conn.send(request);
    for await (const reply of conn.replies()) return reply;
    throw new ControlUnavailableError('the daemon closed the connection without answering');
  } finally {
    conn.close();
  }
}
