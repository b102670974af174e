import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort, waitForPort } from './peers.js';

/** Debian's nginx (nginx-light in CI); tests that need it are declared skipped without it. */
export const NGINX = '/usr/sbin/nginx';
export const haveNginx = (): boolean => existsSync(NGINX);

export interface Nginx {
  /** `http://127.0.0.1:PORT/data/`: the served folder. */
  base: string;
  /** Its config, logs and pid file. */
  dir: string;
  stop(): Promise<void>;
}

/**
 * Debian's nginx serving `root` at /data/ on 127.0.0.1 (a free port), with a temp
 * config of its own under `workDir`: range requests as a real web server answers them.
 */
export async function startNginx(root: string, workDir: string): Promise<Nginx> {
  const dir = path.join(workDir, `nginx-${process.pid}-${Date.now()}`);
  await mkdir(dir, { recursive: true });
  // Started as root, nginx's workers run as nobody: they must be able to read the (0700) temp dirs.
  for (const d of new Set([root, workDir])) await chmod(d, 0o755);
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(
    conf,
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server { listen 127.0.0.1:${port}; location /data/ { alias ${root}/; } }
}
`,
  );
  const nginx: ChildProcess = spawn(NGINX, ['-p', dir, '-e', `${dir}/error.log`, '-c', conf, '-g', 'daemon off;'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => nginx.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (nginx.exitCode === null && nginx.signalCode === null) nginx.kill('SIGTERM');
    await exited;
  };
  try {
    await waitForPort('127.0.0.1', port);
  } catch (err) {
    await stop();
    throw err;
  }
  return { base: `http://127.0.0.1:${port}/data/`, dir, stop };
}
