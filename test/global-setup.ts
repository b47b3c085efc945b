// Vitest global setup: compiles the runtime and builds the parent page into dist/ (as `npm run build` does) before the run and every watch rerun, so tests that spawn bin/plushlink.js never run a stale build.
import { spawnSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildWeb } from '../scripts/build-web.ts';

const root = join(import.meta.dirname, '..');

/**
 * Builds into a fresh directory beside dist/ and swaps it in with two renames, so that another
 * test run (or a CLI) that uses dist/ meanwhile never finds it missing or half written, and no
 * output of a moved or deleted source is left behind.
 */
async function build(): Promise<void> {
  const next = join(root, `dist.next-${process.pid}`);
  const old = join(root, `dist.old-${process.pid}`);
  rmSync(next, { recursive: true, force: true });
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', next], {
    cwd: root,
    encoding: 'utf8',
  });
  if (!existsSync(join(next, 'scripts', 'cli.js'))) {
    rmSync(next, { recursive: true, force: true });
    throw new Error(`build (tsc -p tsconfig.build.json) produced no scripts/cli.js:\n${r.stdout}${r.stderr}`);
  }
  // tsc emits despite type errors: the build is fresh, and `npm run typecheck` is where they fail.
  if (r.status !== 0)
    process.stderr.write(`global setup: dist/ built with type errors:\n${r.stdout}${r.stderr}`);
  // The parent page (npm run build's second step): dist/web, served by plushlink gateway --web-port.
  await buildWeb(join(next, 'web'));
  const dist = join(root, 'dist');
  if (existsSync(dist)) renameSync(dist, old);
  renameSync(next, dist);
  rmSync(old, { recursive: true, force: true });
}

export default async function setup(project: TestProject): Promise<void> {
  await build();
  project.onTestsRerun(build);
}
