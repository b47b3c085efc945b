// `plushlink gateway --postgres/--redis`: malformed engine URLs are usage errors (exit 2, one line naming the flag), unreachable engines a one-line failure (exit 1); neither creates a data directory.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'plk-cluster-flags-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function gateway(...args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'gateway', ...args],
      { cwd: dir, timeout: 60_000 },
      (err, _out, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr: String(stderr) });
      },
    );
  });
}

describe('plushlink gateway --postgres/--redis usage errors', () => {
  const PG = 'postgres://plk@127.0.0.1:5432/plk';
  const REDIS = 'redis://127.0.0.1:6379';
  it.each([
    [['--postgres', PG], '--postgres and --redis go together'],
    [['--postgres', 'http://x', '--redis', REDIS], '--postgres must be a postgres:// URL'],
    [['--postgres', PG, '--redis', 'redis//x'], '--redis must be a redis:// URL'],
    [['--postgres', PG, '--redis', 'redis://127.0.0.1:notaport'], '--redis: not a valid URL'],
    [['--postgres', 'postgres://127.0.0.1:99999999/x', '--redis', REDIS], '--postgres: not a valid URL'],
  ])('%j: exit 2, "%s", nothing created', async (args, message) => {
    const data = join(dir, `data-${Math.random().toString(36).slice(2)}`);
    const r = await gateway('--data', data, ...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(data)).toBe(false);
  });
});

describe('plushlink gateway --postgres/--redis with an engine that is not there', () => {
  // Port 1 on loopback: nothing listens, the connect is refused at once.
  it.each([
    [['--postgres', 'postgres://plk@127.0.0.1:1/plk', '--redis', 'redis://127.0.0.1:1'], 'PostgreSQL'],
  ])('%j: exit 1, one line naming it, no data directory left behind', async (args, engine) => {
    const data = join(dir, `data-${Math.random().toString(36).slice(2)}`);
    const r = await gateway('--data', data, ...args);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(engine);
    expect(r.stderr).toContain('not reachable');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(data)).toBe(false);
  });
});
