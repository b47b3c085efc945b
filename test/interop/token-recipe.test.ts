// The README's token recipe, run as written: a real `plushlink gateway`, endpoints provisioned with the CLI, tokens from `plushlink token`, and Debian's mosquitto_sub/mosquitto_pub acting as toy and parent [PLK-3].
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readIdentity } from '../../platform/keyfiles.ts';
import { fromHex } from '../../shared/bytes.ts';
import { MSG } from '../../shared/limits.ts';
import { decodeConnectToken, verifyGatewayProof } from '../../shared/token.ts';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/speech-16k.wav', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir = '';
let gateway: ChildProcessWithoutNullStreams;
let port = 0;
let identityFile = '';

function run(cmd: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function plushlink(...args: string[]): Promise<string> {
  const r = await run(process.execPath, [BIN, ...args]);
  expect(r.code, `plushlink ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

interface TokenJson {
  token: string;
  mosquitto: { sub: { argv: string[] }; pub: { argv: string[] } };
}

/** `plushlink token --mosquitto --json` for a key directory: the two command lines as argv. */
async function tokenFor(key: string, file = 'ENVELOPE'): Promise<TokenJson> {
  const out = await plushlink(
    'token',
    '--key',
    key,
    '--gateway-identity',
    identityFile,
    '--gateway',
    `mqtt://127.0.0.1:${port}`,
    '--mosquitto',
    '--file',
    file,
    '--json',
  );
  return JSON.parse(out) as TokenJson;
}

const mosquitto = ([cmd, ...args]: string[], ...extra: string[]): Promise<Run> =>
  run(cmd!, [...args, ...extra]);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plushlink-recipe-'));
  gateway = spawn(
    process.execPath,
    [BIN, 'gateway', '--data', 'data', '--port', '0', '--log-level', 'warn'],
    {
      cwd: dir,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    gateway.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    gateway.once('exit', (code) => reject(new Error(`gateway exited with ${code}`)));
  });
  port = Number(/ port=(\d+) /.exec(line)?.[1]);
  identityFile = /identity=(\S+)/.exec(line)?.[1] ?? '';
  expect(identityFile).toMatch(/data\/gateway\/identity\.json$/);
}, 60_000);

afterAll(async () => {
  if (gateway && gateway.exitCode === null) {
    const exited = new Promise((resolve) => gateway.once('exit', resolve));
    gateway.kill('SIGINT');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The README's recipe block: every line after the gateway's, for this test's gateway and files. */
function readmeRecipe(): string {
  const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
  const block = /<!-- token-recipe -->\n```sh\n([\s\S]*?)\n```/.exec(readme)?.[1];
  if (!block) throw new Error('README.md has no <!-- token-recipe --> block');
  const [first, ...rest] = block.split('\n');
  expect(first).toMatch(/^npx plushlink gateway --data \.\/data &/); // started by beforeAll instead
  return rest
    .join('\n')
    .replaceAll('npx plushlink', '"$NODE" "$BIN"')
    .replaceAll('-p 1883', '-p "$PORT"')
    .replaceAll('assets/speech/hello-mummy.wav', '"$WAV"')
    .replace(/ -C (\d)/g, ' -C $1 -W 20'); // a failure ends the subscription instead of hanging
}

/** Provisions a toy and a parent into a new family, with the CLI, beside the running gateway. */
async function family(toy: string, mum: string): Promise<void> {
  const [toyId, mumId, fam] = await Promise.all([
    plushlink('provision', 'toy', '--data', 'data', '--out', toy),
    plushlink('provision', 'parent', '--data', 'data', '--out', mum),
    plushlink('family', 'create', '--data', 'data'),
  ]);
  await plushlink('family', 'add', fam.trim(), toyId.trim(), '--data', 'data');
  await plushlink('family', 'add', fam.trim(), mumId.trim(), '--data', 'data');
}

describe('the token recipe with Debian mosquitto clients', () => {
  it("runs as the README writes it: proof on the toy's inbox, a clip by mosquitto_pub, opened by the parent", async () => {
    const r = await new Promise<Run>((resolve) => {
      execFile(
        'bash',
        ['-euo', 'pipefail', '-c', readmeRecipe()],
        {
          cwd: dir,
          timeout: 90_000,
          env: { ...process.env, NODE: process.execPath, BIN, PORT: String(port), WAV: FIXTURE },
        },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
          resolve({ code, stdout: String(stdout), stderr: String(stderr) });
        },
      );
    });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    // The toy's proof (130 bytes as hex) is the first line its mosquitto_sub printed.
    expect(lines.filter((l) => /^03[0-9a-f]{258}$/.test(l))).toHaveLength(1);
    expect(readFileSync(join(dir, 'got.opus'))).toEqual(readFileSync(join(dir, 'hello.opus')));
  }, 120_000);

  it('--mosquitto --json: the proof is bound to the token, each line has its own token, a token works once', async () => {
    await family('toy2', 'mum2');
    await plushlink('encode', FIXTURE, 'two.opus');
    await plushlink(
      'clip',
      'seal',
      '--key',
      'toy2',
      '--to',
      'mum2/identity.json',
      '--in',
      'two.opus',
      '--out',
      'two.env',
    );

    const t = await tokenFor('toy2', 'two.env');
    const proof = await mosquitto(t.mosquitto.sub.argv, '-C', '1', '-W', '20');
    expect(proof.code, proof.stderr).toBe(0);
    const gatewayIdentity = await readIdentity(identityFile); // absolute: the gateway resolves --data
    verifyGatewayProof(fromHex(proof.stdout.trim()), {
      gatewayId: gatewayIdentity.id,
      gatewaySignPublicKey: gatewayIdentity.signPublicKey,
      endpointId: (await readIdentity(join(dir, 'toy2'))).id,
      nonce: decodeConnectToken(Buffer.from(t.token, 'base64url')).nonce,
    });
    // The second token of the same run: mosquitto_pub at QoS 1 exits 0 on the PUBACK.
    const pub = await mosquitto(t.mosquitto.pub.argv);
    expect(pub.code, pub.stderr).toBe(0);
    // Single use: the subscriber's line run again is refused at CONNECT.
    const again = await mosquitto(t.mosquitto.sub.argv, '-C', '1', '-W', '20');
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/bad user name or password/i);

    const m = await tokenFor('mum2');
    const inbox = await mosquitto(m.mosquitto.sub.argv, '-C', '3', '-W', '20');
    expect(inbox.code, inbox.stderr).toBe(0);
    const messages = inbox.stdout
      .trim()
      .split('\n')
      .map((hex) => fromHex(hex));
    expect(messages.map((b) => b[0])).toEqual([MSG.PROOF, MSG.ROSTER, MSG.CLIP]);
    writeFileSync(join(dir, 'two-got.env'), messages[2]!);
    await plushlink(
      'clip',
      'open',
      '--key',
      'mum2',
      '--from',
      'toy2',
      '--in',
      'two-got.env',
      '--out',
      'two-got.opus',
    );
    expect(readFileSync(join(dir, 'two-got.opus'))).toEqual(readFileSync(join(dir, 'two.opus')));
  }, 120_000);
});
