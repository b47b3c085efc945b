// Tamper matrix: every bit flip and every truncation of a token, proof, envelope and receipt fails with a catalogued PlushlinkError.
import { describe, expect, it } from 'vitest';
import { nodeCryptoSuite, tweetnaclSuite } from '../../shared/crypto.ts';
import { decodeClip, openClip, sealClip, verifyClip } from '../../shared/envelope.ts';
import { ERROR_CATALOG, PlushlinkError } from '../../shared/errors.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { CONTEXT, SIGNATURE_BYTES } from '../../shared/limits.ts';
import { seededRandom } from '../../shared/random.ts';
import { createReceipt, verifyReceipt } from '../../shared/receipt.ts';
import { signBody } from '../../shared/signed.ts';
import {
  createConnectToken,
  createGatewayProof,
  verifyConnectToken,
  verifyGatewayProof,
} from '../../shared/token.ts';
import { fakeOggOpus } from './fake-ogg.ts';

const random = seededRandom('tamper-matrix');
const toy = generateIdentity('toy', random);
const mom = generateIdentity('parent', random);
const dad = generateIdentity('parent', random);
const gateway = generateIdentity('gateway', random);
const NOW = 1_767_225_600_000;

const token = createConnectToken({ identity: toy, gatewayId: gateway.id, now: NOW, random });
const proof = createGatewayProof({ gateway, endpointId: toy.id, nonce: token.nonce, now: NOW + 3 });
const ogg = fakeOggOpus({ durationMs: 200, packetBytes: 40 });
const envelope = sealClip({
  sender: toy,
  recipients: [mom, dad],
  sequence: 7,
  createdAt: NOW,
  durationMs: 200,
  ogg,
  random,
});
const clipId = decodeClip(envelope).header.clipId;
const receipt = createReceipt({ recipient: mom, sender: toy.id, clipId, receivedAt: NOW + 9 });

type Check = (bytes: Uint8Array) => unknown;

const OBJECTS: { name: string; bytes: Uint8Array; check: Check }[] = [
  {
    name: 'connect token',
    bytes: token.bytes,
    check: (b) =>
      verifyConnectToken(b, {
        gatewayId: gateway.id,
        endpointId: toy.id,
        signPublicKey: toy.signPublicKey,
        now: NOW,
      }),
  },
  {
    name: 'gateway proof',
    bytes: proof,
    check: (b) =>
      verifyGatewayProof(b, {
        gatewayId: gateway.id,
        gatewaySignPublicKey: gateway.signPublicKey,
        endpointId: toy.id,
        nonce: token.nonce,
      }),
  },
  { name: 'clip envelope', bytes: envelope, check: (b) => openClip(b, { recipient: mom, sender: toy }) },
  { name: 'receipt', bytes: receipt, check: (b) => verifyReceipt(b, mom.signPublicKey) },
];

/** Runs `fn` and returns the PlushlinkError code it threw; fails the test on success or any other exception. */
function failure(fn: () => unknown, what: string): string {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof PlushlinkError)) {
      throw new Error(`${what}: threw ${String(err)} instead of a PlushlinkError`);
    }
    if (!(err.code in ERROR_CATALOG)) throw new Error(`${what}: uncatalogued code ${err.code}`);
    return err.code;
  }
  throw new Error(`${what}: was accepted`);
}

describe('tamper matrix', () => {
  it('the untampered objects verify and open', () => {
    for (const o of OBJECTS) o.check(o.bytes);
    expect(openClip(envelope, { recipient: dad, sender: toy }).ogg).toEqual(ogg);
    expect(envelope.length).toBeGreaterThan(1000);
    expect(envelope.length).toBeLessThan(2000);
  });

  for (const o of OBJECTS) {
    it(`${o.name}: every single-bit flip fails typed`, () => {
      const codes = new Map<string, number>();
      const copy = o.bytes.slice();
      // Every bit of headers, recipients and signature; bits 0 and 7 of each byte of a clip body (speed).
      const bodyFrom = o.name === 'clip envelope' ? 71 + 100 * 2 + 28 : copy.length;
      const bodyTo = copy.length - SIGNATURE_BYTES;
      for (let i = 0; i < copy.length; i++) {
        const bits = i >= bodyFrom && i < bodyTo ? [0, 7] : [0, 1, 2, 3, 4, 5, 6, 7];
        for (const bit of bits) {
          copy[i]! ^= 1 << bit;
          const code = failure(() => o.check(copy), `${o.name} byte ${i} bit ${bit}`);
          codes.set(code, (codes.get(code) ?? 0) + 1);
          copy[i]! ^= 1 << bit;
        }
      }
      expect(copy).toEqual(o.bytes);
      expect(codes.get('PLK_E_BAD_SIGNATURE') ?? 0).toBeGreaterThan(0);
    });

    it(`${o.name}: every truncation and a trailing byte fail typed`, () => {
      for (let n = 0; n < o.bytes.length; n++)
        failure(() => o.check(o.bytes.subarray(0, n)), `${o.name} cut to ${n}`);
      failure(() => o.check(Uint8Array.from([...o.bytes, 0])), `${o.name} + 1 byte`);
    });
  }

  it('tweetnacl: xor 0x01 / 0x80 at every 8th byte (and the last) of a token and a receipt fails typed', () => {
    const crypto = tweetnaclSuite();
    const checks: [Uint8Array, Check][] = [
      [
        token.bytes,
        (b) =>
          verifyConnectToken(b, {
            gatewayId: gateway.id,
            endpointId: toy.id,
            signPublicKey: toy.signPublicKey,
            now: NOW,
            crypto,
          }),
      ],
      [receipt, (b) => verifyReceipt(b, mom.signPublicKey, crypto)],
    ];
    for (const [bytes, check] of checks) {
      check(bytes);
      for (
        let i = 0;
        i < bytes.length;
        i = i + 8 >= bytes.length && i !== bytes.length - 1 ? bytes.length - 1 : i + 8
      ) {
        for (const mask of [0x01, 0x80]) {
          const copy = bytes.slice();
          copy[i]! ^= mask;
          failure(() => check(copy), `tweetnacl byte ${i} ^ ${mask}`);
        }
      }
    }
  });

  it('re-signed tampering (a malicious sender or a forged key) still fails to open: sealed keys and body', () => {
    // The signature covers everything, so only the sender could do this; the recipient's AEAD must still refuse it.
    const crypto = nodeCryptoSuite();
    const decoded = decodeClip(envelope);
    const signedLength = decoded.signed.length;
    const momIndex = decoded.header.recipients.findIndex((r) => r.id === mom.id);
    const sealedStart = 71 + 100 * momIndex + 20; // [PLK-5.1]
    const bodyNonceStart = 71 + 100 * decoded.header.recipients.length;
    const bodyStart = bodyNonceStart + 24 + 4;
    const positions: number[] = [];
    for (let i = sealedStart; i < sealedStart + 80; i++) positions.push(i);
    for (let i = bodyNonceStart; i < bodyNonceStart + 24; i++) positions.push(i);
    for (let i = bodyStart; i < signedLength; i += 16) positions.push(i);
    const codes = new Set<string>();
    for (const i of positions) {
      const copy = envelope.slice();
      copy[i]! ^= 0x01;
      const signed = copy.subarray(0, signedLength);
      copy.set(signBody(crypto, toy.signSeed, CONTEXT.CLIP, signed), signedLength);
      verifyClip(decodeClip(copy), toy.signPublicKey); // the signature is valid again
      codes.add(failure(() => openClip(copy, { recipient: mom, sender: toy }), `re-signed byte ${i}`));
    }
    expect([...codes]).toEqual(['PLK_E_DECRYPT']);
    expect(signedLength + SIGNATURE_BYTES).toBe(envelope.length);
  });
});
