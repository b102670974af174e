import net from 'node:net';
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { checkPaths, evictPaths } from './cache-report.js';
import type { MountView } from './mount-view.js';
import { encodeLine, LineDecoder, requestProblem, type ControlErrorCode, type ControlReply, type ControlRequest } from './protocol.js';
import { missingPaths, orderedFiles } from './selection.js';
import { ensurePrivateDir, restrictSocket } from './socket-access.js';
import type { WarmJobStatus } from './status-schema.js';
import { buildStatus } from './status-report.js';
import { WarmJob } from './warm-job.js';
import { planWarm, warmCapacityPieces, warmWindow } from './warm-plan.js';

/** Finished jobs `status` still shows. */
const KEEP_FINISHED_JOBS = 16;
/** How many unknown paths an error message names. */
const NAMED_PATHS = 5;
/** On stop, how long warm clients get to hear that their job ended. */
const STOP_GRACE_MS = 2000;

interface Responder {
  send(reply: ControlReply): void;
  /** After the final reply. */
  end(): void;
  /** The warm job this connection started (a `cancel` line or closing the connection stops it). */
  attach(job: WarmJob): void;
}

class RequestError extends Error {
  constructor(
    readonly code: ControlErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The control channel of one mount: a unix socket in the user's private
 * runtime directory (see socket-access.ts for who may connect), serving
 * status, warm jobs, cache checks and evictions. Requests go to the mount's
 * parts through the same interfaces FUSE uses; warm goes through the Reader.
 */
export class ControlServer {
  readonly #jobs = new Map<number, WarmJob>();
  readonly #sockets = new Set<net.Socket>();
  #nextJobId = 1;
  #closing: Promise<void> | undefined;

  readonly #view: MountView;
  readonly #server: net.Server;

  private constructor(
    view: MountView,
    server: net.Server,
    readonly socketPath: string,
  ) {
    this.#view = view;
    this.#server = server;
    server.on('connection', (socket) => this.#accept(socket));
  }

  static async start(view: MountView, socketPath: string): Promise<ControlServer> {
    await ensurePrivateDir(path.dirname(socketPath));
    // Left behind by a daemon that died: no live daemon can own it, the mount point was free.
    await rm(socketPath, { force: true });
    const server = net.createServer({ allowHalfOpen: false });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await restrictSocket(socketPath);
    server.on('error', (err) => view.log.error({ err }, 'control socket error'));
    view.log.info({ socket: socketPath }, 'control socket ready');
    return new ControlServer(view, server, socketPath);
  }

  /** Ends running warm jobs (their clients hear so), closes the socket and removes it. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const running = [...this.#jobs.values()].filter((j) => j.state === 'running');
      for (const job of running) job.stop('failed', 'the mount is stopping');
      await Promise.race([Promise.all(running.map((j) => j.finished)), new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref())]);
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      for (const socket of this.#sockets) socket.destroy();
      await closed;
      await rm(this.socketPath, { force: true });
    })();
    return this.#closing;
  }

  jobStatuses(): WarmJobStatus[] {
    return [...this.#jobs.values()].map((j) => j.status());
  }

  // ---------------------------------------------------------------- connections

  #accept(socket: net.Socket): void {
    this.#sockets.add(socket);
    const decoder = new LineDecoder();
    let job: WarmJob | undefined;
    let handled = false;
    const reply: Responder = {
      send: (message) => {
        if (!socket.destroyed && socket.writable) socket.write(encodeLine(message));
      },
      end: () => socket.end(),
      attach: (j) => (job = j),
    };
    const fail = (code: ControlErrorCode, message: string): void => {
      reply.send({ type: 'error', code, message });
      reply.end();
    };
    socket.on('data', (chunk: Buffer) => {
      let lines: string[];
      try {
        lines = decoder.push(chunk);
      } catch (err) {
        return fail('bad-request', (err as Error).message);
      }
      for (const line of lines) {
        let request: ControlRequest;
        try {
          const parsed: unknown = JSON.parse(line);
          const problem = requestProblem(parsed);
          if (problem) throw new RequestError('bad-request', problem);
          request = parsed as ControlRequest;
        } catch (err) {
          return fail('bad-request', err instanceof RequestError ? err.message : 'not JSON');
        }
        if (!handled) {
          handled = true;
          this.#handle(request, reply).catch((err: unknown) => {
            if (!(err instanceof RequestError)) this.#view.log.error({ err }, 'control request failed');
            fail(err instanceof RequestError ? err.code : 'internal', (err as Error).message);
          });
        } else if (request.op === 'cancel' && job) {
          job.stop('cancelled', 'interrupted');
        }
      }
    });
    socket.on('close', () => {
      this.#sockets.delete(socket);
      if (job && !job.background) job.stop('cancelled', 'the warm command went away (interrupted)');
    });
    socket.on('error', () => undefined);
  }

  /** Answers one request; ends the connection after the final reply. */
  async #handle(request: ControlRequest, reply: Responder): Promise<void> {
    if (this.#closing) throw new RequestError('stopping', 'the mount is stopping');
    const { metainfo, cache } = this.#view;
    const { send } = reply;
    switch (request.op) {
      case 'status':
        send({ type: 'result', status: buildStatus(this.#view, this.jobStatuses()) });
        return reply.end();
      case 'check':
        this.#requireKnown(request.paths);
        send({ type: 'result', check: checkPaths(metainfo.tree, metainfo.byteMap, cache, request.paths) });
        return reply.end();
      case 'evict':
        this.#requireKnown(request.paths);
        send({ type: 'result', evict: await evictPaths(metainfo.tree, metainfo.byteMap, cache, request.paths) });
        return reply.end();
      case 'cancel': {
        const cancelled: number[] = [];
        for (const job of this.#jobs.values()) {
          if (job.state !== 'running' || (request.jobs && !request.jobs.includes(job.id))) continue;
          job.stop('cancelled', 'cancelled by btmount warm --cancel');
          cancelled.push(job.id);
        }
        send({ type: 'result', cancelled });
        return reply.end();
      }
      case 'warm':
        return this.#warm(request, reply);
    }
  }

  /** Starts a job; a foreground one streams progress on this connection until it ends. */
  #warm(request: Extract<ControlRequest, { op: 'warm' }>, reply: Responder): void {
    const { metainfo, cache, swarm, reader, log } = this.#view;
    this.#requireKnown(request.paths);
    const { layout, byteMap } = metainfo;
    const files = orderedFiles(metainfo.tree, request.paths);
    const capacity = warmCapacityPieces({
      pieceCount: layout.pieceCount,
      pieceLength: layout.pieceLength,
      effectiveBudgetBytes: cache.effectiveBudgetBytes,
      pinnedBytes: cache.pinnedBytes,
      reserveBytes: this.#view.warmReserveBytes,
    });
    const plan = planWarm(byteMap, files, capacity);
    const job = new WarmJob(
      plan,
      {
        byteMap,
        prefetch: (file, offset, length, priority, signal) => reader.prefetch(file, offset, length, priority, signal),
        has: (index) => cache.has(index),
        waitingReason: () => swarm.waitingReason(),
        log,
      },
      { id: this.#nextJobId++, background: request.background, window: warmWindow(layout.pieceLength), stallTimeoutMs: request.stallTimeoutMs },
    );
    this.#remember(job);
    reply.attach(job);
    job.start();
    reply.send({ type: 'warm-start', job: job.status() });
    if (request.background) return reply.end();
    const ticker = setInterval(() => reply.send({ type: 'warm-progress', job: job.status() }), request.progressIntervalMs);
    void job.finished.then((status) => {
      clearInterval(ticker);
      reply.send({ type: 'warm-end', job: status });
      reply.end();
    });
  }

  #requireKnown(paths: readonly string[]): void {
    const missing = missingPaths(this.#view.metainfo.tree, paths);
    if (missing.length === 0) return;
    const named = missing.slice(0, NAMED_PATHS).map((p) => (p === '' ? '/' : p)).join(', ');
    const more = missing.length > NAMED_PATHS ? ` and ${missing.length - NAMED_PATHS} more` : '';
    throw new RequestError('bad-path', `not in the torrent: ${named}${more}`);
  }

  #remember(job: WarmJob): void {
    this.#jobs.set(job.id, job);
    const finished = [...this.#jobs.values()].filter((j) => j.state !== 'running');
    for (const old of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED_JOBS))) this.#jobs.delete(old.id);
  }
}
