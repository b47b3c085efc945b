// The command line of the browser parent: `plushlink gateway --web-port/--ws-port` (listening line, page, clean stop) and `plushlink provision parent --public` (identity file or code, one of --out/--public).
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, identityToJson, publicPart } from '../../shared/identity.ts';
import { identityCode } from '../../shared/identity-code.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'plushlink.js');

function run(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-web-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('plushlink gateway --web-port --ws-port', () => {
  it('prints the page and WebSocket addresses on its listening line, serves the page, and stops cleanly', async () => {
    const child = spawn(
      process.execPath,
      [
        BIN,
        'gateway',
        '--data',
        join(dir, 'gw'),
        '--port',
        '0',
        '--web-port',
        '0',
        '--ws-port',
        '0',
        '--log-level',
        'warn',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      child.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
    });
    const m = / web=(http:\/\/127\.0\.0\.1:\d+\/) ws=(ws:\/\/127\.0\.0\.1:\d+\/mqtt)$/.exec(line);
    expect(m, line).not.toBeNull();
    const res = await fetch(m![1]!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'none'; script-src 'self';/);
    expect(await res.text()).toContain('<script type="module" src="/app.js"></script>');
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 30_000);
});

describe('plushlink provision parent --public', () => {
  it('registers an identity code or an identity.json, public keys only, and adds it to --family', async () => {
    const data = join(dir, 'admin');
    const fam = (await run(['family', 'create', '--data', data, '--create'])).stdout.trim();
    expect(fam).toMatch(/^f[a-z2-7]{26}$/);
    const browser = publicPart(generateIdentity('parent'));
    const r = await run([
      'provision',
      'parent',
      '--public',
      identityCode(browser),
      '--family',
      fam,
      '--data',
      data,
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: browser.id, role: 'parent', family: fam });
    const file = join(dir, 'toy-identity.json');
    const toy = publicPart(generateIdentity('toy'));
    await writeFile(file, identityToJson(toy));
    expect(await run(['provision', 'toy', '--public', file, '--data', data])).toMatchObject({
      code: 0,
      stdout: `${toy.id}\n`,
    });
    const list = await run(['endpoints', 'list', '--data', data, '--json']);
    expect(list.stdout).toContain(browser.id);
    // Once registered, an id is refused a second time (the store says so).
    expect((await run(['provision', 'parent', '--public', identityCode(browser), '--data', data])).code).toBe(
      1,
    );
  }, 30_000);

  it('refuses a code of another role, a mangled code, and anything but exactly one of --out and --public (exit 2)', async () => {
    const data = join(dir, 'admin');
    const toyCode = identityCode(publicPart(generateIdentity('toy')));
    const wrongRole = await run(['provision', 'parent', '--public', toyCode, '--data', data]);
    expect(wrongRole.code).toBe(2);
    expect(wrongRole.stderr).toMatch(/the identity code is a toy's, not a parent's/);
    const good = identityCode(publicPart(generateIdentity('parent')));
    const mangled = `${good.slice(0, 40)}${good[40] === 'x' ? 'y' : 'x'}${good.slice(41)}`;
    expect((await run(['provision', 'parent', '--public', mangled, '--data', data])).stderr).toMatch(
      /changed or mistyped/,
    );
    const both = await run([
      'provision',
      'parent',
      '--public',
      good,
      '--out',
      join(dir, 'k'),
      '--data',
      data,
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/exactly one of --out .* and --public/);
    expect((await run(['provision', 'parent', '--data', data])).code).toBe(2);
  }, 30_000);
});
