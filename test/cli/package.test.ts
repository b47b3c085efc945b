// What `npm pack` ships (package.json "files"): the CLI and its compiled runtime, assets and docs — never tests, CI, keys, data or fleet directories.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('npm pack', () => {
  it('ships bin/, dist/ and docs, and nothing that does not run', async () => {
    // --ignore-scripts: `prepare` (the build) would rewrite dist/ under the other tests' feet; the
    // global setup has just built it. A real `npm pack` runs prepare, so dist/ is always fresh.
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        'npm',
        ['pack', '--dry-run', '--ignore-scripts', '--json'],
        { cwd: ROOT, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => (err ? reject(new Error(`npm pack: ${stderr}`)) : resolve(String(stdout))),
      );
    });
    const [pack] = JSON.parse(out) as { files: { path: string }[] }[];
    const files = pack!.files.map((f) => f.path);
    expect(files).toContain('bin/plushlink.js');
    expect(files).toContain('dist/scripts/cli.js');
    expect(files).toContain('dist/scripts/commands/token.js');
    expect(files).toContain('package.json');
    expect(files).toContain('README.md');
    expect(files).toContain('docs/OPERATIONS.md');
    expect(files).toContain('docs/grafana-dashboard.json');
    const tops = new Set(files.map((f) => f.split('/')[0]!));
    expect(
      [...tops].filter(
        (t) =>
          !['bin', 'dist', 'assets', 'docs', 'README.md', 'SECURITY.md', 'package.json', 'LICENSE'].includes(
            t,
          ),
      ),
    ).toEqual([]);
    expect(files.filter((f) => /(^|\/)(test|\.ci|data|fleet|out|node_modules)\//.test(f))).toEqual([]);
    expect(
      files.filter((f) => /\.keys?$|(^|\/)endpoint\.key$|\.ts$/.test(f) && !f.endsWith('.d.ts')),
    ).toEqual([]);
  }, 90_000);
});
