#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled TypeScript under dist/.
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv);
