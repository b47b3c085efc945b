// Interop: an independent Python/PyNaCl (libsodium) implementation written from docs/PROTOCOL.md verifies and opens our objects, and vice versa.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../../shared/bytes.ts';
import { decodeClip, openClip, sealClip } from '../../shared/envelope.ts';
import { generateIdentity, type PrivateIdentity } from '../../shared/identity.ts';
import { CONTEXT } from '../../shared/limits.ts';
import { seededRandom, systemRandom } from '../../shared/random.ts';
import { createReceipt } from '../../shared/receipt.ts';
import { createConnectToken, createGatewayProof } from '../../shared/token.ts';
import { fakeOggOpus } from '../protocol/fake-ogg.ts';

const SCRIPT = fileURLToPath(new URL('./fixtures/open_envelope.py', import.meta.url));
const PROTOCOL_MD = fileURLToPath(new URL('../../docs/PROTOCOL.md', import.meta.url));

/** The first Python 3 on this machine that can import PyNaCl (Debian's python3-nacl lives in /usr/bin/python3). */
function findPython(): string | undefined {
  for (const candidate of ['/usr/bin/python3', 'python3', 'python']) {
    const r = spawnSync(candidate, ['-c', 'import nacl.public, nacl.signing, nacl.secret'], {
      stdio: 'ignore',
    });
    if (r.status === 0) return candidate;
  }
  return undefined;
}

type Answer = { ok: boolean; error?: string } & Record<string, unknown>;

let python = '';
function py(requests: Record<string, unknown>[]): Answer[] {
  const out = execFileSync(python, [SCRIPT], {
    input: JSON.stringify({ op: 'batch', requests }),
    maxBuffer: 64 * 1024 * 1024,
  });
  const answer = JSON.parse(out.toString('utf8')) as { results: Answer[] };
  return answer.results;
}

const random = seededRandom('interop');
const toy = generateIdentity('toy', random);
const mom = generateIdentity('parent', random);
const dad = generateIdentity('parent', random);
const grandma = generateIdentity('parent', random);
const stranger = generateIdentity('parent', random);
const gateway = generateIdentity('gateway', random);

function openRequest(envelope: Uint8Array, recipient: PrivateIdentity, sender: PrivateIdentity = toy) {
  return {
    op: 'open',
    envelope: toHex(envelope),
    senderSignPk: toHex(sender.signPublicKey),
    recipientId: recipient.id,
    recipientBoxSk: toHex(recipient.boxSecret),
  };
}

beforeAll(() => {
  const found = findPython();
  if (!found) throw new Error('no Python 3 with PyNaCl found: apt-get install python3-nacl');
  python = found;
});

describe('libsodium (PyNaCl) verifies and opens what we produce', () => {
  it('the Python side uses only what docs/PROTOCOL.md states', () => {
    expect(existsSync(PROTOCOL_MD)).toBe(true);
    const doc = readFileSync(PROTOCOL_MD, 'utf8');
    for (const context of Object.values(CONTEXT)) expect(doc).toContain(context);
    for (const phrase of ['crypto_box_seal', 'crypto_secretbox', '163 + 100·n + L', 'bucket(4 + len)']) {
      expect(doc).toContain(phrase);
    }
  });

  it('ids derived by Python match ours', () => {
    const ids = [toy, mom, dad, gateway];
    const answers = py(ids.map((i) => ({ op: 'id', signPk: toHex(i.signPublicKey) })));
    expect(answers.map((a) => a.id)).toEqual(ids.map((i) => i.id));
  });

  it('envelopes of several sizes open for every recipient, byte for byte', () => {
    const cases = [
      { ms: 100, recipients: [mom] },
      { ms: 1000, recipients: [mom, dad] },
      { ms: 6000, recipients: [mom, dad, grandma] },
    ];
    const requests: Record<string, unknown>[] = [];
    const expected: { ogg: string; sequence: number; recipients: string[] }[] = [];
    cases.forEach((c, i) => {
      const ogg = fakeOggOpus({ durationMs: c.ms, packetBytes: 60 + i });
      const envelope = sealClip({
        sender: toy,
        recipients: c.recipients,
        sequence: 100 + i,
        createdAt: Date.now(),
        durationMs: c.ms,
        ogg,
        random: systemRandom,
      });
      for (const r of c.recipients) {
        requests.push(openRequest(envelope, r));
        expected.push({ ogg: toHex(ogg), sequence: 100 + i, recipients: c.recipients.map((x) => x.id) });
      }
    });
    const answers = py(requests);
    answers.forEach((a, i) => {
      expect(a.error).toBeUndefined();
      expect(a.ok).toBe(true);
      expect(a.plaintext).toBe(expected[i]!.ogg);
      const header = a.header as { sequence: number; recipients: string[]; sender: string };
      expect(header.sequence).toBe(expected[i]!.sequence);
      expect(header.recipients).toEqual(expected[i]!.recipients);
      expect(header.sender).toBe(toy.id);
    });
  });

  it('Python refuses a tampered envelope, a stranger and the wrong sender', () => {
    const envelope = sealClip({
      sender: toy,
      recipients: [mom],
      sequence: 1,
      createdAt: Date.now(),
      durationMs: 200,
      ogg: fakeOggOpus({ durationMs: 200 }),
    });
    const tampered = envelope.slice();
    tampered[tampered.length - 100]! ^= 1;
    const answers = py([
      openRequest(tampered, mom),
      openRequest(envelope, stranger),
      openRequest(envelope, mom, dad),
      openRequest(envelope.subarray(0, envelope.length - 1), mom),
    ]);
    expect(answers.map((a) => a.ok)).toEqual([false, false, false, false]);
    expect(answers[0]!.error).toBe('bad signature');
    expect(answers[1]!.error).toBe('not a recipient');
  });

  it('Python verifies our connect token, gateway proof and receipt (and refuses altered ones)', () => {
    const now = Date.now();
    const token = createConnectToken({ identity: toy, gatewayId: gateway.id, now });
    const proof = createGatewayProof({ gateway, endpointId: toy.id, nonce: token.nonce, now: now + 5 });
    const clipId = systemRandom(16);
    const receipt = createReceipt({ recipient: mom, sender: toy.id, clipId, receivedAt: now + 10 });
    const flip = (b: Uint8Array, i: number): Uint8Array => {
      const c = b.slice();
      c[i]! ^= 1;
      return c;
    };
    const answers = py([
      { op: 'verify-token', token: toHex(token.bytes), signPk: toHex(toy.signPublicKey) },
      { op: 'verify-proof', proof: toHex(proof), signPk: toHex(gateway.signPublicKey) },
      { op: 'verify-receipt', receipt: toHex(receipt), signPk: toHex(mom.signPublicKey) },
      { op: 'verify-token', token: toHex(flip(token.bytes, 45)), signPk: toHex(toy.signPublicKey) },
      { op: 'verify-proof', proof: toHex(proof), signPk: toHex(toy.signPublicKey) },
      { op: 'verify-receipt', receipt: toHex(flip(receipt, 129)), signPk: toHex(mom.signPublicKey) },
      // A receipt's signature must not verify as a token's: the context separates the domains.
      {
        op: 'verify-token',
        token: toHex(Uint8Array.from([0x10, ...receipt.subarray(1)])),
        signPk: toHex(mom.signPublicKey),
      },
    ]);
    expect(answers.map((a) => a.ok)).toEqual([true, true, true, false, false, false, false]);
    expect(answers[0]!.fields).toEqual({
      gatewayId: gateway.id,
      endpointId: toy.id,
      timestamp: Math.floor(now),
      nonce: toHex(token.nonce),
    });
    expect(answers[1]!.fields).toEqual({
      gatewayId: gateway.id,
      endpointId: toy.id,
      nonce: toHex(token.nonce),
      timestamp: Math.floor(now + 5),
    });
    expect(answers[2]!.fields).toEqual({
      recipient: mom.id,
      sender: toy.id,
      clipId: toHex(clipId),
      receivedAt: now + 10,
    });
  });
});

describe('we verify and open what libsodium (PyNaCl) produces', () => {
  it('an envelope sealed and signed in Python opens with our code', () => {
    const ogg = fakeOggOpus({ durationMs: 3000 });
    const [answer] = py([
      {
        op: 'seal',
        senderSignSeed: toHex(toy.signSeed),
        recipients: [mom, dad].map((r) => ({ id: r.id, boxPk: toHex(r.boxPublicKey) })),
        ogg: toHex(ogg),
        sequence: 9,
        createdAt: 1_767_225_600_000,
        durationMs: 3000,
      },
    ]);
    expect(answer?.ok).toBe(true);
    const envelope = fromHex(String(answer?.envelope));
    expect(toHex(decodeClip(envelope).header.clipId)).toBe(answer?.clipId);
    for (const r of [mom, dad]) {
      const opened = openClip(envelope, { recipient: r, sender: toy });
      expect(toHex(opened.ogg)).toBe(toHex(ogg));
      expect(opened.header.sequence).toBe(9);
      expect(opened.header.durationMs).toBe(3000);
    }
  });
});
