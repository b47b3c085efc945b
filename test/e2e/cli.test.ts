// The fleet and demo commands as a user runs them: usage errors exit 2 with one line; the demo runs, saves .opus files and stops cleanly.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = resolve(import.meta.dirname, '../../bin/plushlink.js');

function run(args: string[], cwd: string, onStdout?: (chunk: string, kill: () => void) => void) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      onStdout?.(b.toString(), () => child.kill('SIGINT'));
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('plushlink fleet', () => {
  it.each([
    [
      [
        'fleet',
        '--families',
        'x',
        '--dir',
        'f',
        '--gateway',
        'mqtt://127.0.0.1:1',
        '--gateway-identity',
        'i.json',
      ],
    ],
    [['fleet', '--dir', 'f', '--gateway', 'mqtt://127.0.0.1:1']],
  ])('refuses bad arguments with exit 2: %j', async (args) => {
    const r = await run(args, dir);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(/^plushlink: /);
    expect(r.stdout).toBe('');
  });
});

describe('plushlink demo', () => {
  it('runs with no configuration, keeps clips as .opus files in ./out and exits 0 on Ctrl-C', async () => {
    let interrupted = false;
    const r = await run(['demo', '--duration', '60s'], dir, (chunk, kill) => {
      if (!interrupted && /received clip from/.test(chunk)) {
        interrupted = true;
        kill();
      }
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/gateway data: .*data \(created\)/);
    expect(r.stdout).toMatch(/clips sent \d+/);
    expect(interrupted).toBe(true);
    const files = await readdir(join(dir, 'out'));
    expect(files.some((f) => f.endsWith('.opus'))).toBe(true);
  }, 60_000);
});
