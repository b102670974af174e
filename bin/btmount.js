#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled TypeScript under dist/, which
// `npm install` builds (the prepare script) and `npm run build` rebuilds.
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
let main;
try {
  ({ main } = await import('../dist/src/cli/main.js'));
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  // A fresh clone: one line saying what to run, not a stack trace.
  const message = String(err.message);
  const why = /Cannot find module '[^']*\/dist\/src\/cli\/main\.js'/.test(message) ? 'not built yet' : message.split('\n')[0];
  process.stderr.write(`btmount: ${why}: run npm install (or npm run build) in ${root}\n`);
  process.exit(1);
}
process.exitCode = await main(process.argv);
