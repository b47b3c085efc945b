// Vitest global setup: compiles the runtime to dist/ (as `npm run build` does) before the run and every watch rerun, so tests that spawn bin/plushlink.js never run a stale build.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

const root = join(import.meta.dirname, '..');

function build(): void {
  rmSync(join(root, 'dist'), { recursive: true, force: true }); // no output left over from moved or deleted sources
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
  if (!existsSync(join(root, 'dist', 'scripts', 'cli.js'))) {
    throw new Error(
      `build (tsc -p tsconfig.build.json) produced no dist/scripts/cli.js:\n${r.stdout}${r.stderr}`,
    );
  }
  // tsc emits despite type errors: the build is fresh, and `npm run typecheck` is where they fail.
  if (r.status !== 0)
    process.stderr.write(`global setup: dist/ built with type errors:\n${r.stdout}${r.stderr}`);
}

export default function setup(project: TestProject): void {
  build();
  project.onTestsRerun(build);
}
