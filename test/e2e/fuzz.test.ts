// Smoke run of `npm run fuzz` (scripts/fuzz.ts): 3 s with a fixed seed over every target, the live gateway included; exit 0, every target reported.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function fuzz(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'scripts/fuzz.ts', ...args],
      { cwd: ROOT, timeout: 90_000, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

describe('npm run fuzz (smoke)', () => {
  it('runs every parser and the gateway for 3 s with seed 1: no untyped error, bounded memory', async () => {
    const [list, run] = await Promise.all([fuzz('--list'), fuzz('--seconds', '3', '--seed', '1')]);
    expect(list.code, list.stderr).toBe(0);
    const names = list.stdout.trim().split('\n');
    expect(names).toEqual(
      expect.arrayContaining([
        'envelope-open',
        'identity-json',
        'outbox-file',
        'ogg-opus',
        'ble-phone',
        'mqtt-session',
      ]),
    );
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/^plushlink fuzz: seed 1 /);
    for (const name of names) expect(run.stdout).toMatch(new RegExp(`^ {2}${name} +\\d+ execs`, 'm'));
    expect(run.stdout).toMatch(/legitimate clip round trips passed/);
    expect(run.stdout).toMatch(/^ok: \d+ inputs over \d+ targets/m);
  }, 120_000);

  it('refuses a bad --seconds or --seed', async () => {
    const [seconds, seed] = await Promise.all([fuzz('--seconds', '0'), fuzz('--seed', 'x')]);
    expect(seconds.code).toBe(2);
    expect(seconds.stderr).toMatch(/--seconds must be a number in 1\.\.3600/);
    expect(seed.code).toBe(2);
    expect(seed.stderr).toMatch(/--seed must be an integer/);
  }, 60_000);
});
