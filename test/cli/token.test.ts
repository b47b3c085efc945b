// `plushlink token`: a fresh base64url connect token that verifies for the gateway it names, its stated validity, the mosquitto command lines, and one-line refusals [PLK-3.1].
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeKeyDir } from '../../platform/keyfiles.ts';
import { generateIdentity, type PrivateIdentity } from '../../shared/identity.ts';
import { decodeConnectToken, verifyConnectToken } from '../../shared/token.ts';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));
const SLOW = 120_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir = '';
let toy: PrivateIdentity;
let gateway: PrivateIdentity;

function plushlink(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function verifies(text: string, at: number): void {
  const bytes = Buffer.from(text, 'base64url');
  expect(bytes.length).toBe(130);
  verifyConnectToken(bytes, {
    gatewayId: gateway.id,
    endpointId: toy.id,
    signPublicKey: toy.signPublicKey,
    now: at,
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plushlink-token-'));
  toy = generateIdentity('toy');
  gateway = generateIdentity('gateway');
  await writeKeyDir(join(dir, 'toy'), toy);
  await writeKeyDir(join(dir, 'data', 'gateway'), gateway);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('plushlink token', () => {
  it(
    'prints one fresh base64url token that verifies for this endpoint and gateway, and says how long it is good',
    async () => {
      const before = Date.now();
      const [a, b] = await Promise.all([
        plushlink('token', '--key', 'toy', '--gateway-identity', 'data/gateway/identity.json'),
        plushlink('token', '--key', 'toy/endpoint.key', '--gateway-identity', 'data/gateway'),
      ]);
      const after = Date.now();
      for (const r of [a, b]) {
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/^[A-Za-z0-9_-]{174}\n$/);
        const t = decodeConnectToken(Buffer.from(r.stdout.trim(), 'base64url'));
        expect(t.timestamp).toBeGreaterThanOrEqual(before);
        expect(t.timestamp).toBeLessThanOrEqual(after);
        verifies(r.stdout.trim(), t.timestamp);
        expect(r.stderr).toMatch(
          new RegExp(
            `^token for toy ${toy.id} → gateway ${gateway.id}: single use \\(one connection\\); accepted until \\S+Z — within ±60 s of its time \\S+Z on the gateway's clock`,
          ),
        );
      }
      expect(a.stdout).not.toBe(b.stdout); // a fresh nonce every time
    },
    SLOW,
  );

  it(
    '--mosquitto --json: the command lines, each with its own token, and the validity window',
    async () => {
      const [json, text] = await Promise.all([
        plushlink(
          'token',
          '--key',
          'toy',
          '--gateway-identity',
          'data/gateway/identity.json',
          '--gateway',
          'mqtt://10.0.0.5:1884',
          '--token-window',
          '30s',
          '--mosquitto',
          '--file',
          'my clip.env',
          '--json',
        ),
        plushlink('token', '--key', 'toy', '--gateway-identity', 'data/gateway/identity.json', '--mosquitto'),
      ]);
      expect(json.code, json.stderr).toBe(0);
      const j = JSON.parse(json.stdout) as {
        endpoint: string;
        gateway: string;
        token: string;
        timestamp: number;
        issuedAt: string;
        validUntil: string;
        windowMs: number;
        singleUse: boolean;
        mosquitto: { sub: { token: string; argv: string[] }; pub: { token: string; argv: string[] } };
      };
      expect(j).toMatchObject({ endpoint: toy.id, gateway: gateway.id, windowMs: 30_000, singleUse: true });
      expect(Date.parse(j.validUntil) - Date.parse(j.issuedAt)).toBe(30_000);
      const common = (token: string) => [
        '-h',
        '10.0.0.5',
        '-p',
        '1884',
        '-V',
        'mqttv311',
        '-i',
        toy.id,
        '-u',
        toy.id,
        '-P',
        token,
        '-q',
        '1',
      ];
      expect(j.mosquitto.sub.token).toBe(j.token);
      expect(j.mosquitto.pub.token).not.toBe(j.token);
      expect(j.mosquitto.sub.argv).toEqual([
        'mosquitto_sub',
        ...common(j.token),
        '-t',
        `plk/1/${toy.id}/inbox`,
        '-F',
        '%x',
      ]);
      expect(j.mosquitto.pub.argv).toEqual([
        'mosquitto_pub',
        ...common(j.mosquitto.pub.token),
        '-t',
        `plk/1/${toy.id}/clip`,
        '-f',
        'my clip.env',
      ]);
      verifies(j.token, j.timestamp);
      verifies(j.mosquitto.pub.token, j.timestamp);

      expect(text.code, text.stderr).toBe(0);
      const lines = text.stdout.trimEnd().split('\n');
      expect(lines.filter((l) => !l.startsWith('#')).map((l) => l.split(' ')[0])).toEqual([
        'mosquitto_sub',
        'mosquitto_pub',
      ]);
      expect(text.stdout).toMatch(
        /# each token below: single use \(one connection\); accepted until .* ±60 s/,
      );
      expect(lines.at(-1)).toMatch(/ -f ENVELOPE$/);
    },
    SLOW,
  );

  it(
    'refuses, in one line, a gateway identity that is not a gateway, a gateway key, a public identity as --key, a bad URL',
    async () => {
      const runs = await Promise.all([
        plushlink('token', '--key', 'toy', '--gateway-identity', 'toy/identity.json'),
        plushlink('token', '--key', 'data/gateway', '--gateway-identity', 'data/gateway/identity.json'),
        plushlink('token', '--key', 'toy/identity.json', '--gateway-identity', 'data/gateway/identity.json'),
        plushlink('token', '--key', 'toy', '--gateway-identity', 'data/gateway', '--gateway', 'http://x'),
        plushlink('token', '--key', 'toy'),
      ]);
      const expected: [number, RegExp][] = [
        [1, /--gateway-identity toy\/identity\.json is a toy identity, not a gateway's/],
        [1, /--key data\/gateway is a gateway key: a connect token is made with a toy's or parent's key/],
        [1, /--key toy\/identity\.json is a public identity file, not a private key/],
        [2, /--gateway must be an mqtt:\/\/ or mqtts:\/\/ URL, got "http:\/\/x"/],
        [2, /required option '--gateway-identity <file>' not specified/],
      ];
      runs.forEach((r, i) => {
        const [code, pattern] = expected[i]!;
        expect(r.code, r.stderr).toBe(code);
        expect(r.stderr.split('\n')[0]).toMatch(/^plushlink: /);
        expect(r.stderr.split('\n')[0]).toMatch(pattern);
        expect(r.stderr).not.toMatch(/\n\s+at /);
        expect(r.stdout).toBe('');
      });
    },
    SLOW,
  );
});
