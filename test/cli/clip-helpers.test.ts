// In-process tests of the `plushlink clip` helpers: Ogg Opus duration, bounded reads, sequence counter (atomic, serialized).
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../../scripts/cli-util.ts';
import {
  inspectBytes,
  readBounded,
  readLastSequence,
  reserveSequence,
  SEQUENCE_FILE,
  summarizeOggOpus,
} from '../../scripts/commands/clip.ts';
import { sealClip } from '../../shared/envelope.ts';
import { PlushlinkError } from '../../shared/errors.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { createReceipt } from '../../shared/receipt.ts';
import { createConnectToken, createGatewayProof } from '../../shared/token.ts';
import { expectCodeAsync } from '../helpers/errors.ts';
import { fakeOggOpus } from '../protocol/fake-ogg.ts';

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'plushlink-clip-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('summarizeOggOpus', () => {
  it('duration = last granule − pre-skip, at 48 kHz', () => {
    for (const ms of [20, 200, 1500, 60_000]) {
      const info = summarizeOggOpus(fakeOggOpus({ durationMs: ms, preSkip: 312 }));
      expect(info?.durationMs).toBe(ms);
      expect(info?.preSkip).toBe(312);
      expect(info?.channels).toBe(1);
      expect(info?.inputSampleRate).toBe(16000);
    }
    expect(
      summarizeOggOpus(fakeOggOpus({ durationMs: 400, channels: 2, inputSampleRate: 48000 })),
    ).toMatchObject({
      channels: 2,
      inputSampleRate: 48000,
      durationMs: 400,
    });
  });

  it('returns undefined for anything that is not a complete Ogg Opus stream', () => {
    const ogg = fakeOggOpus({ durationMs: 1000 });
    expect(summarizeOggOpus(new Uint8Array(0))).toBeUndefined();
    expect(summarizeOggOpus(new Uint8Array(500).fill(0x4f))).toBeUndefined();
    expect(summarizeOggOpus(ogg.subarray(0, ogg.length - 1))).toBeUndefined();
    expect(summarizeOggOpus(Uint8Array.from([...ogg, 0]))).toBeUndefined();
    const notOpus = ogg.slice();
    notOpus.set(new TextEncoder().encode('OpusHeaX'), 28);
    expect(summarizeOggOpus(notOpus)).toBeUndefined();
    for (let n = 0; n < ogg.length; n += 37) summarizeOggOpus(ogg.subarray(0, n)); // never throws
  });
});

describe('readBounded', () => {
  it('refuses a file over the limit before reading it, with PLK_E_LIMIT', async () => {
    const d = tempDir();
    writeFileSync(join(d, 'f'), new Uint8Array(1001));
    await expect(readBounded(join(d, 'f'), 1000, 'clip')).rejects.toMatchObject({ code: 'PLK_E_LIMIT' });
    expect((await readBounded(join(d, 'f'), 1001, 'clip')).length).toBe(1001);
    const notFile = await expectCodeAsync(readBounded(d, 10, 'clip'), 'CLI_FAILED', CliError);
    expect(notFile.message).toMatch(/is not a regular file/);
  });
});

describe('sequence counter', () => {
  it('starts at 1, increases, refuses an explicit number that is not above the last', async () => {
    const d = tempDir();
    expect(await readLastSequence(d)).toBe(0);
    expect(await reserveSequence(d)).toBe(1);
    expect(await reserveSequence(d)).toBe(2);
    expect(await reserveSequence(d, 10)).toBe(10);
    await expect(reserveSequence(d, 10)).rejects.toThrow(/not above/);
    expect(await reserveSequence(d)).toBe(11);
    expect(readFileSync(join(d, SEQUENCE_FILE), 'utf8')).toBe('11\n');
    expect(readdirSync(d).sort()).toEqual([SEQUENCE_FILE]); // no temp or lock files left behind
    writeFileSync(join(d, SEQUENCE_FILE), 'eleven\n');
    await expect(reserveSequence(d)).rejects.toThrow(/malformed/);
  });

  it('concurrent reservations never hand out the same number', async () => {
    const d = tempDir();
    const got = await Promise.all(Array.from({ length: 12 }, () => reserveSequence(d)));
    expect([...got].sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });
});

describe('inspectBytes', () => {
  const random = seededRandom('inspect');
  const toy = generateIdentity('toy', random);
  const mom = generateIdentity('parent', random);
  const gateway = generateIdentity('gateway', random);

  it('describes each wire object by its first byte, without secrets', () => {
    const token = createConnectToken({ identity: toy, gatewayId: gateway.id, now: 1000 });
    const proof = createGatewayProof({ gateway, endpointId: toy.id, nonce: token.nonce, now: 1001 });
    const env = sealClip({
      sender: toy,
      recipients: [mom],
      sequence: 3,
      createdAt: 5,
      durationMs: 9,
      ogg: new Uint8Array(9),
    });
    const receipt = createReceipt({
      recipient: mom,
      sender: toy.id,
      clipId: new Uint8Array(16),
      receivedAt: 7,
    });
    expect(inspectBytes(token.bytes)).toMatchObject({ type: 'connect-token', endpointId: toy.id });
    expect(inspectBytes(proof)).toMatchObject({ type: 'gateway-proof', gatewayId: gateway.id });
    expect(inspectBytes(env, toy)).toMatchObject({ type: 'clip', sequence: 3, signature: 'valid' });
    expect(inspectBytes(receipt, mom)).toMatchObject({
      type: 'receipt',
      recipient: mom.id,
      signature: 'valid',
    });
    const text = JSON.stringify([token.bytes, proof, env, receipt].map((b) => inspectBytes(b)));
    expect(text).not.toMatch(/signSeed|boxSecret|contentKey|sealedKey/);
    expect(() => inspectBytes(env, mom)).toThrow(PlushlinkError);
    expect(() => inspectBytes(Uint8Array.from([0x7f, 1]))).toThrow(/PLK_E_MSG_TYPE|unexpected message type/);
    expect(() => inspectBytes(new Uint8Array(0))).toThrow(PlushlinkError);
  });
});
