// The V8 flags of long-running processes (platform/node-flags.ts): the plushlink command's shebang and the forked gateway of load tests and benchmarks start with them.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { NODE_FLAGS, nodeFlags, ONE_CORE_FLAGS } from '../../platform/node-flags.ts';
import { startForkedGateway } from '../../scripts/loadtest/targets.ts';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'plk-node-flags-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cmdline = (pid: number): string[] =>
  readFileSync(`/proc/${pid}/cmdline`, 'latin1')
    .split('\0')
    .filter((a) => a.length > 0);

describe('node flags', () => {
  it('bin/plushlink.js passes exactly NODE_FLAGS to node in its #! line', () => {
    const first = readFileSync(BIN, 'utf8').split('\n')[0];
    expect(first).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
    expect(NODE_FLAGS).toContain('--max-semi-space-size=32');
  });

  it('PLK_NODE_FLAGS replaces them for a comparison run (empty: none)', () => {
    expect(nodeFlags({})).toEqual([...NODE_FLAGS]);
    expect(nodeFlags({}, { oneCore: true })).toEqual([...NODE_FLAGS, '--single-threaded-gc']);
    expect(nodeFlags({ PLK_NODE_FLAGS: '' }, { oneCore: true })).toEqual([]);
    expect(nodeFlags({ PLK_NODE_FLAGS: '' })).toEqual([]);
    expect(nodeFlags({ PLK_NODE_FLAGS: ' --max-semi-space-size=32  --stack-size=900 ' })).toEqual([
      '--max-semi-space-size=32',
      '--stack-size=900',
    ]);
  });

  it('a gateway started as the executable runs in a node with the flags, and stops cleanly on SIGINT', async () => {
    const child = spawn(BIN, ['gateway', '--data', join(dir, 'data'), '--port', '0'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('\n')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`gateway exited (${code}): ${stderr}`)));
    });
    // env(1) execs node in place: the pid is node's, and its argv holds the flags before the script.
    const argv = cmdline(child.pid ?? 0);
    expect(argv[0]).toMatch(/node$/);
    for (const f of NODE_FLAGS) expect(argv.indexOf(f)).toBeGreaterThan(0);
    expect(argv.indexOf(NODE_FLAGS[0]!)).toBeLessThan(argv.findIndex((a) => a.endsWith('plushlink.js')));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  }, 60_000);

  it('the forked gateway of load tests and benchmarks starts with them too', async () => {
    const f = await startForkedGateway('aedes');
    try {
      const argv = cmdline(f.pid);
      for (const flag of NODE_FLAGS) expect(argv).toContain(flag);
      expect(argv).not.toContain('--single-threaded-gc');
    } finally {
      await f.close();
    }
  }, 60_000);

  it('one to be pinned to a core of its own (the benchmarks) also collects garbage on its own thread', async () => {
    const f = await startForkedGateway('aedes', { oneCore: true });
    try {
      const argv = cmdline(f.pid);
      for (const flag of [...NODE_FLAGS, ...ONE_CORE_FLAGS]) expect(argv).toContain(flag);
      expect(ONE_CORE_FLAGS).toEqual(['--single-threaded-gc']);
    } finally {
      await f.close();
    }
  }, 60_000);

  it('compiled: the forked gateway runs the compiled child from dist/ (what plushlink runs), not tsx', async () => {
    // dist/ is built by `npm ci` (prepare); the benchmark rebuilds it first (buildCompiled).
    const f = await startForkedGateway('gateway', { compiled: true });
    try {
      const argv = cmdline(f.pid);
      expect(argv.some((a) => a.endsWith('/dist/scripts/loadtest/gateway-child.js'))).toBe(true);
      expect(argv).not.toContain('tsx');
      for (const flag of NODE_FLAGS) expect(argv).toContain(flag);
    } finally {
      await f.close();
    }
    const source = await startForkedGateway('aedes');
    try {
      const argv = cmdline(source.pid);
      expect(argv).toContain('tsx');
      expect(argv.some((a) => a.endsWith('/scripts/loadtest/gateway-child.ts'))).toBe(true);
    } finally {
      await source.close();
    }
  }, 60_000);
});
