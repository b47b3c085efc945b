#!/usr/bin/env -S node --max-semi-space-size=32
// plushlink command entry point: runs the compiled CLI (dist/scripts/cli.js, built by `npm install` or `npm run build`).
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/scripts/cli.js', import.meta.url);
if (!existsSync(cli)) {
  const repo = dirname(dirname(fileURLToPath(import.meta.url)));
  process.stderr.write(`plushlink: not built yet — run "npm install" (or "npm run build") in ${repo}\n`);
  process.exit(1);
}
await import(cli.href);
