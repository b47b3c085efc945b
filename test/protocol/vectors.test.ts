// Golden vectors: decode, verify, open and re-encode byte for byte (plushlink-v1, RFC 8032, libsodium-made objects).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  buildVectors,
  type PlushlinkVectors,
  serializeVectors,
  VECTORS_PATH,
  vectorIdentities,
} from '../../scripts/gen-vectors.ts';
import { fromHex, toHex } from '../../shared/bytes.ts';
import {
  boxBeforeNm,
  type CryptoSuite,
  nodeCryptoSuite,
  sealedBoxOpen,
  secretboxOpen,
  tweetnaclSuite,
} from '../../shared/crypto.ts';
import { decodeClip, openClip, sealClip, verifyClip } from '../../shared/envelope.ts';
import { isPlushlinkError, type PlushlinkError } from '../../shared/errors.ts';
import { deriveEndpointId, identityFromSecrets, type PrivateIdentity } from '../../shared/identity.ts';
import { CONTEXT } from '../../shared/limits.ts';
import { pad, padmeSize, unpad } from '../../shared/padding.ts';
import { seededRandom } from '../../shared/random.ts';
import { createReceipt, decodeReceipt, verifyReceipt } from '../../shared/receipt.ts';
import { signedMessage } from '../../shared/signed.ts';
import {
  createConnectToken,
  createGatewayProof,
  decodeConnectToken,
  decodeGatewayProof,
  verifyConnectToken,
  verifyGatewayProof,
} from '../../shared/token.ts';
import type { EndpointId } from '../../shared/types.ts';
import { expectCode } from '../helpers/errors.ts';

const vectorsDir = new URL('../vectors/', import.meta.url);
const readJson = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, vectorsDir), 'utf8')) as T;

const V = readJson<PlushlinkVectors>('plushlink-v1.json');

interface RfcVectors {
  vectors: { name: string; secretKey: string; publicKey: string; message: string; signature: string }[];
}
const RFC = readJson<RfcVectors>('rfc8032-ed25519.json');

interface LibsodiumVectors {
  envelope: {
    sender: string;
    recipients: string[];
    sequence: number;
    clipId: string;
    ogg: string;
    hex: string;
  };
  sealedBox: { recipient: string; message: string; hex: string };
  secretbox: { key: string; nonce: string; message: string; hex: string };
  ed25519: { signer: string; context: string; message: string; signature: string };
  x25519: { a: string; b: string; shared: string; boxBeforenm: string };
}
const SODIUM = readJson<LibsodiumVectors>('libsodium-interop.json');

const SUITES: CryptoSuite[] = [nodeCryptoSuite(), tweetnaclSuite()];
const h = (hex: string): Uint8Array => fromHex(hex);

function identity(name: string, crypto: CryptoSuite = SUITES[0]!): PrivateIdentity {
  const v = V.identities.find((i) => i.name === name);
  if (!v) throw new Error(`no identity ${name} in the vectors`);
  return identityFromSecrets(v.role, h(v.signSeed), h(v.boxSecret), crypto);
}

describe('plushlink-v1.json', () => {
  it('is exactly what scripts/gen-vectors.ts generates, with either crypto suite', () => {
    const onDisk = readFileSync(VECTORS_PATH, 'utf8');
    for (const crypto of SUITES) expect(serializeVectors(buildVectors(crypto))).toBe(onDisk);
  });

  it('identities: public keys and ids derive from the secrets (and from the seeds)', () => {
    const seeded = vectorIdentities();
    for (const v of V.identities) {
      for (const crypto of SUITES) {
        const id = identityFromSecrets(v.role, h(v.signSeed), h(v.boxSecret), crypto);
        expect(toHex(id.signPublicKey)).toBe(v.signPublicKey);
        expect(toHex(id.boxPublicKey)).toBe(v.boxPublicKey);
        expect(id.id).toBe(v.id);
      }
      expect(deriveEndpointId(h(v.signPublicKey))).toBe(v.id);
      expect(seeded.get(v.name)?.id).toBe(v.id);
    }
  });

  it('connect token: decode, verify, re-encode byte for byte', () => {
    const toy = identity('toy');
    const gateway = identity('gateway');
    const bytes = h(V.token.hex);
    const t = decodeConnectToken(bytes);
    expect({
      gatewayId: t.gatewayId,
      endpointId: t.endpointId,
      timestamp: t.timestamp,
      nonce: toHex(t.nonce),
      signature: toHex(t.signature),
    }).toEqual(V.token.decoded);
    expect(toHex(signedMessage(CONTEXT.TOKEN, t.body))).toBe(V.token.signedMessage);
    for (const crypto of SUITES) {
      verifyConnectToken(bytes, {
        gatewayId: gateway.id,
        endpointId: toy.id,
        signPublicKey: toy.signPublicKey,
        now: V.token.now,
        crypto,
      });
      const again = createConnectToken({
        identity: identity('toy', crypto),
        gatewayId: gateway.id,
        now: V.token.now,
        random: seededRandom(V.token.seed),
        crypto,
      });
      expect(toHex(again.bytes)).toBe(V.token.hex);
    }
  });

  it('gateway proof: decode, verify, re-encode byte for byte', () => {
    const gateway = identity('gateway');
    const toy = identity('toy');
    const bytes = h(V.proof.hex);
    const p = decodeGatewayProof(bytes);
    expect({
      gatewayId: p.gatewayId,
      endpointId: p.endpointId,
      nonce: toHex(p.nonce),
      timestamp: p.timestamp,
      signature: toHex(p.signature),
    }).toEqual(V.proof.decoded);
    expect(toHex(signedMessage(CONTEXT.PROOF, p.body))).toBe(V.proof.signedMessage);
    for (const crypto of SUITES) {
      verifyGatewayProof(bytes, {
        gatewayId: gateway.id,
        gatewaySignPublicKey: gateway.signPublicKey,
        endpointId: toy.id,
        nonce: h(V.token.decoded.nonce),
        crypto,
      });
      const again = createGatewayProof({
        gateway: identity('gateway', crypto),
        endpointId: toy.id,
        nonce: h(V.token.decoded.nonce),
        now: V.proof.now,
        crypto,
      });
      expect(toHex(again)).toBe(V.proof.hex);
    }
  });

  it('envelope: decode fields, verify, re-seal byte for byte', () => {
    const bytes = h(V.envelope.hex);
    const clip = decodeClip(bytes);
    const d = V.envelope.decoded;
    expect(clip.header.version).toBe(d.version);
    expect(clip.header.sender).toBe(d.sender);
    expect(toHex(clip.header.clipId)).toBe(d.clipId);
    expect(clip.header.sequence).toBe(d.sequence);
    expect(clip.header.createdAt).toBe(d.createdAt);
    expect(clip.header.codec).toEqual(d.codec);
    expect(clip.header.durationMs).toBe(d.durationMs);
    expect(clip.header.recipients.map((r) => ({ id: r.id, sealedKey: toHex(r.sealedKey) }))).toEqual(
      d.recipients,
    );
    expect(toHex(clip.header.bodyNonce)).toBe(d.bodyNonce);
    expect(clip.body.length).toBe(d.bodyLength);
    expect(clip.signed.length).toBe(d.signedLength);
    expect(toHex(clip.signature)).toBe(d.signature);
    expect(clip.size).toBe(d.size);
    expect(bytes.length).toBe(163 + 100 * d.recipients.length + d.bodyLength); // [PLK-5.1] total size
    for (const crypto of SUITES) {
      verifyClip(clip, identity('toy').signPublicKey, crypto);
      const again = sealClip({
        sender: identity('toy', crypto),
        recipients: V.envelope.recipients.map((n) => identity(n, crypto)),
        sequence: V.envelope.sequence,
        createdAt: V.envelope.createdAt,
        durationMs: V.envelope.durationMs,
        codec: V.envelope.codec,
        ogg: h(V.envelope.ogg),
        random: seededRandom(V.envelope.seed),
        crypto,
      });
      expect(toHex(again)).toBe(V.envelope.hex);
    }
  });

  it('envelope: every recipient opens it, with either suite; others cannot', () => {
    const bytes = h(V.envelope.hex);
    for (const crypto of SUITES) {
      for (const name of V.envelope.recipients) {
        const opened = openClip(bytes, {
          recipient: identity(name, crypto),
          sender: identity('toy', crypto),
          crypto,
        });
        expect(toHex(opened.ogg)).toBe(V.envelope.ogg);
      }
      expectCode(
        () => openClip(bytes, { recipient: identity('stranger'), sender: identity('toy'), crypto }),
        'PLK_E_NOT_RECIPIENT',
      );
      expectCode(
        () => openClip(bytes, { recipient: identity('mom'), sender: identity('dad'), crypto }),
        'PLK_E_WRONG_ENDPOINT',
      );
    }
  });

  it('envelope: the content key opens the body to the padded clip', () => {
    const clip = decodeClip(h(V.envelope.hex));
    const padded = secretboxOpen(clip.body, clip.header.bodyNonce, h(V.envelope.contentKey));
    expect(toHex(padded)).toBe(V.envelope.padded);
    expect(toHex(unpad(padded))).toBe(V.envelope.ogg);
    const mom = identity('mom');
    const sealed = clip.header.recipients.find((r) => r.id === mom.id)!.sealedKey;
    for (const crypto of SUITES) {
      expect(toHex(sealedBoxOpen(crypto, sealed, mom.boxPublicKey, mom.boxSecret))).toBe(
        V.envelope.contentKey,
      );
    }
  });

  it('receipt: decode, verify, re-encode byte for byte', () => {
    const bytes = h(V.receipt.hex);
    const r = decodeReceipt(bytes);
    expect({
      recipient: r.recipient,
      sender: r.sender,
      clipId: toHex(r.clipId),
      receivedAt: r.receivedAt,
      signature: toHex(r.signature),
    }).toEqual(V.receipt.decoded);
    expect(r.clipId).toEqual(decodeClip(h(V.envelope.hex)).header.clipId);
    expect(toHex(signedMessage(CONTEXT.RECEIPT, r.body))).toBe(V.receipt.signedMessage);
    for (const crypto of SUITES) {
      verifyReceipt(bytes, identity('mom').signPublicKey, crypto);
      const again = createReceipt({
        recipient: identity('mom', crypto),
        sender: V.receipt.decoded.sender as EndpointId,
        clipId: h(V.receipt.decoded.clipId),
        receivedAt: V.receipt.receivedAt,
        crypto,
      });
      expect(toHex(again)).toBe(V.receipt.hex);
    }
    expectCode(() => verifyReceipt(bytes, identity('dad').signPublicKey), 'PLK_E_BAD_SIGNATURE');
  });

  it('padding: bucket sizes and the pad() example', () => {
    for (const s of V.padding.sizes) {
      expect(padmeSize(4 + s.contentLength)).toBe(s.paddedLength);
      expect(pad(new Uint8Array(s.contentLength)).length).toBe(s.paddedLength);
    }
    expect(toHex(pad(h(V.padding.example.content)))).toBe(V.padding.example.padded);
    expect(toHex(unpad(h(V.padding.example.padded)))).toBe(V.padding.example.content);
    // [PLK-7.1] examples from the document.
    expect([30_000, 65_536, 100_000].map(padmeSize)).toEqual([30_720, 65_536, 100_352]);
  });

  it('invalid vectors fail with their catalogued code', () => {
    const toy = identity('toy');
    const gateway = identity('gateway');
    const mom = identity('mom');
    expect(V.invalid.length).toBeGreaterThan(10);
    for (const v of V.invalid) {
      const bytes = h(v.hex);
      const run = (): unknown => {
        switch (v.kind) {
          case 'token':
            return verifyConnectToken(bytes, {
              gatewayId: gateway.id,
              endpointId: toy.id,
              signPublicKey: toy.signPublicKey,
              now: V.token.now,
            });
          case 'proof':
            return verifyGatewayProof(bytes, {
              gatewayId: gateway.id,
              gatewaySignPublicKey: gateway.signPublicKey,
              endpointId: toy.id,
              nonce: h(V.token.decoded.nonce),
            });
          case 'clip':
            return openClip(bytes, { recipient: mom, sender: toy });
          case 'receipt':
            return verifyReceipt(bytes, mom.signPublicKey);
        }
      };
      try {
        run();
        expect.fail(`${v.name} verified`);
      } catch (err) {
        expect(isPlushlinkError(err), v.name).toBe(true);
        expect((err as PlushlinkError).code, v.name).toBe(v.error);
      }
    }
  });
});

describe('rfc8032-ed25519.json', () => {
  for (const crypto of SUITES) {
    it(`${crypto.name}: public keys, signatures and verification match RFC 8032 §7.1`, () => {
      for (const v of RFC.vectors) {
        expect(toHex(crypto.signPublicKey(h(v.secretKey))), v.name).toBe(v.publicKey);
        expect(toHex(crypto.sign(h(v.secretKey), h(v.message))), v.name).toBe(v.signature);
        expect(crypto.verify(h(v.publicKey), h(v.message), h(v.signature)), v.name).toBe(true);
        const bad = h(v.signature);
        bad[0]! ^= 1;
        expect(crypto.verify(h(v.publicKey), h(v.message), bad), v.name).toBe(false);
      }
    });
  }
});

describe('libsodium-interop.json (objects made by libsodium)', () => {
  it('our code verifies and opens an envelope sealed and signed by libsodium', () => {
    const bytes = h(SODIUM.envelope.hex);
    for (const crypto of SUITES) {
      for (const name of SODIUM.envelope.recipients) {
        const opened = openClip(bytes, {
          recipient: identity(name, crypto),
          sender: identity('toy', crypto),
          crypto,
        });
        expect(toHex(opened.ogg)).toBe(SODIUM.envelope.ogg);
        expect(opened.header.sequence).toBe(SODIUM.envelope.sequence);
        expect(toHex(opened.header.clipId)).toBe(SODIUM.envelope.clipId);
      }
    }
  });

  it('crypto_box_seal, crypto_secretbox, Ed25519 and X25519 agree with libsodium', () => {
    const mom = identity('mom');
    const dad = identity('dad');
    for (const crypto of SUITES) {
      const opened = sealedBoxOpen(crypto, h(SODIUM.sealedBox.hex), mom.boxPublicKey, mom.boxSecret);
      expect(toHex(opened)).toBe(SODIUM.sealedBox.message);
      expect(toHex(crypto.x25519(mom.boxSecret, dad.boxPublicKey))).toBe(SODIUM.x25519.shared);
      expect(toHex(boxBeforeNm(crypto, mom.boxSecret, dad.boxPublicKey))).toBe(SODIUM.x25519.boxBeforenm);
      const msg = signedMessage(SODIUM.ed25519.context, h(SODIUM.ed25519.message));
      expect(toHex(crypto.sign(identity('toy').signSeed, msg))).toBe(SODIUM.ed25519.signature);
    }
    const sb = secretboxOpen(h(SODIUM.secretbox.hex), h(SODIUM.secretbox.nonce), h(SODIUM.secretbox.key));
    expect(toHex(sb)).toBe(SODIUM.secretbox.message);
  });
});
