// Interop: Mosquitto's own clients (mosquitto_sub / mosquitto_pub) against the PlushLink gateway — anonymous, wildcard and cross-endpoint access refused [PLK-3] [PLK-4].
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex } from '../../shared/bytes.ts';
import type { PrivateIdentity } from '../../shared/identity.ts';
import { createConnectToken, verifyGatewayProof } from '../../shared/token.ts';
import { clipTopic, inboxTopic } from '../../shared/topics.ts';
import { type Family, type Harness, startHarness } from '../gateway/helpers/harness.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}

describe('mosquitto clients against the gateway', () => {
  let h: Harness;
  let fam: Family;
  beforeAll(async () => {
    h = await startHarness();
    fam = await h.family();
  });
  afterAll(async () => {
    await h.close();
  });

  /** Credentials for a UTF-8-only client: the token's base64url text as password [PLK-3.1]. */
  function creds(identity: PrivateIdentity): { args: string[]; nonce: Uint8Array } {
    const t = createConnectToken({ identity, gatewayId: h.gatewayIdentity.id, now: h.clock.now });
    const pw = Buffer.from(t.bytes).toString('base64url');
    return { args: ['-i', identity.id, '-u', identity.id, '-P', pw], nonce: t.nonce };
  }
  const base = () => ['-h', '127.0.0.1', '-p', String(h.port()), '-V', 'mqttv311'];

  it('refuses an anonymous mosquitto_pub', async () => {
    const r = await run('mosquitto_pub', [...base(), '-t', 'hello', '-m', 'hi']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/bad user name or password|not authori[sz]ed|refused/i);
    expect(h.audit.reasons('auth.refused')).toContain('anonymous');
  });

  it('a valid mosquitto_sub receives the gateway proof on its own inbox', async () => {
    const c = creds(fam.mum);
    const r = await run('mosquitto_sub', [
      ...base(),
      ...c.args,
      '-t',
      inboxTopic(fam.mum.id),
      '-q',
      '1',
      '-C',
      '1',
      '-W',
      '5',
      '-F',
      '%x',
    ]);
    expect(r.code).toBe(0);
    const proof = fromHex(r.stdout.trim());
    expect(proof[0]).toBe(0x03);
    verifyGatewayProof(proof, {
      gatewayId: h.gatewayIdentity.id,
      gatewaySignPublicKey: h.gatewayIdentity.signPublicKey,
      endpointId: fam.mum.id,
      nonce: c.nonce,
    });
  });

  for (const topic of ['#', '+/+/+/inbox', '$SYS/#']) {
    it(`refuses the wildcard subscription ${topic}`, async () => {
      const r = await run('mosquitto_sub', [...base(), ...creds(fam.dad).args, '-t', topic, '-E', '-W', '5']);
      // mosquitto_sub 2.0 reports an all-refused SUBACK (0x80) on stderr: "All subscription requests were denied."
      expect(`${r.stdout}${r.stderr}`).toMatch(/denied/i);
    });
  }

  it("refuses another endpoint's inbox", async () => {
    const r = await run('mosquitto_sub', [
      ...base(),
      ...creds(fam.dad).args,
      '-t',
      inboxTopic(fam.mum.id),
      '-E',
      '-W',
      '5',
    ]);
    expect(`${r.stdout}${r.stderr}`).toMatch(/denied/i);
  });

  it("refuses a publish to another endpoint's topic and closes the connection", async () => {
    const before = h.audit.reasons('clip.refused').length;
    const r = await run('mosquitto_pub', [
      ...base(),
      ...creds(fam.toy).args,
      '-t',
      clipTopic(fam.mum.id),
      '-q',
      '1',
      '-m',
      'x',
    ]);
    expect(r.code).not.toBe(0);
    const reasons = h.audit.reasons('clip.refused');
    expect(reasons.length).toBe(before + 1);
    expect(reasons.at(-1)).toBe('topic');
  });
});
