// Generates test/vectors/plushlink-v1.json (golden wire vectors) deterministically from fixed seeds: `npx tsx scripts/gen-vectors.ts [--check]`.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { toHex } from '../shared/bytes.ts';
import { type CryptoSuite, defaultCrypto } from '../shared/crypto.ts';
import { DEFAULT_CODEC, decodeClip, sealClip, verifyClip } from '../shared/envelope.ts';
import { PlushlinkError } from '../shared/errors.ts';
import { generateIdentity, type PrivateIdentity } from '../shared/identity.ts';
import { CONTEXT, LIMITS, PROTOCOL_VERSION } from '../shared/limits.ts';
import { pad, padmeSize } from '../shared/padding.ts';
import { seededRandom } from '../shared/random.ts';
import { createReceipt, verifyReceipt } from '../shared/receipt.ts';
import { signedMessage } from '../shared/signed.ts';
import {
  createConnectToken,
  createGatewayProof,
  verifyConnectToken,
  verifyGatewayProof,
} from '../shared/token.ts';
import type { Role } from '../shared/types.ts';
import { fakeOggOpus } from '../test/protocol/fake-ogg.ts';

export const VECTORS_PATH = fileURLToPath(new URL('../test/vectors/plushlink-v1.json', import.meta.url));

/** 2026-01-01T00:00:00Z: every timestamp in the vectors is relative to it. */
export const VECTOR_EPOCH_MS = 1_767_225_600_000;

export interface IdentityVector {
  name: string;
  role: Role;
  /** seededRandom() seed: the identity is generateIdentity(role, seededRandom(seed)). */
  seed: string;
  signSeed: string;
  boxSecret: string;
  signPublicKey: string;
  boxPublicKey: string;
  id: string;
}

export interface TokenVector {
  seed: string;
  signer: string;
  gateway: string;
  now: number;
  hex: string;
  signedMessage: string;
  decoded: { gatewayId: string; endpointId: string; timestamp: number; nonce: string; signature: string };
}

export interface ProofVector {
  signer: string;
  endpoint: string;
  now: number;
  hex: string;
  signedMessage: string;
  decoded: { gatewayId: string; endpointId: string; nonce: string; timestamp: number; signature: string };
}

export interface EnvelopeVector {
  seed: string;
  sender: string;
  recipients: string[];
  sequence: number;
  createdAt: number;
  durationMs: number;
  codec: typeof DEFAULT_CODEC;
  ogg: string;
  /** The random draws, in order: content key, clip id, body nonce, then one ephemeral X25519 secret per recipient. */
  contentKey: string;
  padded: string;
  hex: string;
  decoded: {
    version: number;
    sender: string;
    clipId: string;
    sequence: number;
    createdAt: number;
    codec: typeof DEFAULT_CODEC;
    durationMs: number;
    recipients: { id: string; sealedKey: string }[];
    bodyNonce: string;
    bodyLength: number;
    signedLength: number;
    signature: string;
    size: number;
  };
}

export interface ReceiptVector {
  signer: string;
  sender: string;
  receivedAt: number;
  hex: string;
  signedMessage: string;
  decoded: { recipient: string; sender: string; clipId: string; receivedAt: number; signature: string };
}

export interface InvalidVector {
  name: string;
  kind: 'token' | 'proof' | 'clip' | 'receipt';
  hex: string;
  /** Expected PlushlinkError code from the full verification of this kind (see the test for the context). */
  error: string;
}

export interface PlushlinkVectors {
  description: string;
  generator: string;
  protocolVersion: number;
  contexts: Record<string, string>;
  identities: IdentityVector[];
  token: TokenVector;
  proof: ProofVector;
  envelope: EnvelopeVector;
  receipt: ReceiptVector;
  padding: {
    sizes: { contentLength: number; paddedLength: number }[];
    example: { content: string; padded: string };
  };
  invalid: InvalidVector[];
}

const IDENTITIES: readonly { name: string; role: Role }[] = [
  { name: 'toy', role: 'toy' },
  { name: 'mom', role: 'parent' },
  { name: 'dad', role: 'parent' },
  { name: 'stranger', role: 'parent' },
  { name: 'gateway', role: 'gateway' },
];

export function identitySeed(name: string): string {
  return `plushlink-v1/vectors/identity/${name}`;
}

/** The identities of the vectors, by name (deterministic). */
export function vectorIdentities(crypto: CryptoSuite = defaultCrypto()): Map<string, PrivateIdentity> {
  const out = new Map<string, PrivateIdentity>();
  for (const { name, role } of IDENTITIES)
    out.set(name, generateIdentity(role, seededRandom(identitySeed(name)), crypto));
  return out;
}

function get(ids: Map<string, PrivateIdentity>, name: string): PrivateIdentity {
  const id = ids.get(name);
  if (!id) throw new Error(`no identity ${name}`);
  return id;
}

/** Hex of `bytes` with byte `index` xored with `mask`. */
function flip(bytes: Uint8Array, index: number, mask: number): string {
  const copy = bytes.slice();
  copy[index]! ^= mask;
  return toHex(copy);
}

/** Hex of `bytes` with byte `index` set to `value`. */
function setByte(bytes: Uint8Array, index: number, value: number): string {
  const copy = bytes.slice();
  copy[index] = value;
  return toHex(copy);
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlushlinkError) return err.code;
    throw err;
  }
  throw new Error('gen-vectors: an invalid vector verified');
}

/** The small fixed Ogg Opus body of the envelope vector (200 ms of fake 20 ms packets). */
export function vectorOgg(): Uint8Array {
  return fakeOggOpus({ durationMs: 200, packetBytes: 40, serial: 0x706c6b31 });
}

/** Builds every vector; the same crypto-independent seeds always give the same bytes. */
export function buildVectors(crypto: CryptoSuite = defaultCrypto()): PlushlinkVectors {
  const ids = vectorIdentities(crypto);
  const toy = get(ids, 'toy');
  const mom = get(ids, 'mom');
  const dad = get(ids, 'dad');
  const gateway = get(ids, 'gateway');

  const tokenSeed = 'plushlink-v1/vectors/token';
  const tokenNow = VECTOR_EPOCH_MS;
  const token = createConnectToken({
    identity: toy,
    gatewayId: gateway.id,
    now: tokenNow,
    random: seededRandom(tokenSeed),
    crypto,
  });
  const tokenDecoded = verifyConnectToken(token.bytes, {
    gatewayId: gateway.id,
    endpointId: toy.id,
    signPublicKey: toy.signPublicKey,
    now: tokenNow,
    crypto,
  });

  const proofNow = VECTOR_EPOCH_MS + 20;
  const proof = createGatewayProof({
    gateway,
    endpointId: toy.id,
    nonce: token.nonce,
    now: proofNow,
    crypto,
  });
  const proofDecoded = verifyGatewayProof(proof, {
    gatewayId: gateway.id,
    gatewaySignPublicKey: gateway.signPublicKey,
    endpointId: toy.id,
    nonce: token.nonce,
    crypto,
  });

  const envSeed = 'plushlink-v1/vectors/envelope';
  const ogg = vectorOgg();
  const sequence = 42;
  const createdAt = VECTOR_EPOCH_MS + 1000;
  const durationMs = 200;
  const envelope = sealClip({
    sender: toy,
    recipients: [mom, dad],
    sequence,
    createdAt,
    durationMs,
    ogg,
    random: seededRandom(envSeed),
    crypto,
  });
  const contentKey = seededRandom(envSeed)(32);
  const clip = decodeClip(envelope);
  verifyClip(clip, toy.signPublicKey, crypto);

  const receivedAt = VECTOR_EPOCH_MS + 5000;
  const receipt = createReceipt({
    recipient: mom,
    sender: toy.id,
    clipId: clip.header.clipId,
    receivedAt,
    crypto,
  });
  const receiptDecoded = verifyReceipt(receipt, mom.signPublicKey, crypto);

  const verifyToken = (hex: string) => () =>
    verifyConnectToken(Buffer.from(hex, 'hex'), {
      gatewayId: gateway.id,
      endpointId: toy.id,
      signPublicKey: toy.signPublicKey,
      now: tokenNow,
      crypto,
    });
  const verifyProof = (hex: string) => () =>
    verifyGatewayProof(Buffer.from(hex, 'hex'), {
      gatewayId: gateway.id,
      gatewaySignPublicKey: gateway.signPublicKey,
      endpointId: toy.id,
      nonce: token.nonce,
      crypto,
    });
  const verifyEnvelope = (hex: string) => () =>
    verifyClip(decodeClip(Buffer.from(hex, 'hex')), toy.signPublicKey, crypto);
  const verifyRcpt = (hex: string) => () => verifyReceipt(Buffer.from(hex, 'hex'), mom.signPublicKey, crypto);
  const verifiers = { token: verifyToken, proof: verifyProof, clip: verifyEnvelope, receipt: verifyRcpt };

  const raw: Omit<InvalidVector, 'error'>[] = [
    {
      name: 'token truncated by one byte',
      kind: 'token',
      hex: toHex(token.bytes.subarray(0, token.bytes.length - 1)),
    },
    {
      name: 'token with a trailing byte',
      kind: 'token',
      hex: toHex(Uint8Array.from([...token.bytes, 0])),
    },
    {
      name: 'token with the proof type byte',
      kind: 'token',
      hex: setByte(token.bytes, 0, 0x03),
    },
    { name: 'token version 2', kind: 'token', hex: setByte(token.bytes, 1, 2) },
    { name: 'token timestamp + 1 ms', kind: 'token', hex: flip(token.bytes, 49, 1) },
    {
      name: 'token signature bit flipped',
      kind: 'token',
      hex: flip(token.bytes, 129, 0x80),
    },
    { name: 'proof nonce bit flipped', kind: 'proof', hex: flip(proof, 42, 1) },
    { name: 'proof signature bit flipped', kind: 'proof', hex: flip(proof, 100, 1) },
    {
      name: 'envelope body byte flipped',
      kind: 'clip',
      hex: flip(envelope, envelope.length - 200, 1),
    },
    { name: 'envelope sequence changed', kind: 'clip', hex: flip(envelope, 45, 1) },
    {
      name: 'envelope with a trailing byte',
      kind: 'clip',
      hex: toHex(Uint8Array.from([...envelope, 0])),
    },
    {
      name: 'envelope truncated (no signature)',
      kind: 'clip',
      hex: toHex(envelope.subarray(0, envelope.length - 64)),
    },
    { name: 'envelope recipient count 0', kind: 'clip', hex: setByte(envelope, 70, 0) },
    { name: 'receipt received-at changed', kind: 'receipt', hex: flip(receipt, 65, 1) },
    { name: 'receipt truncated to its header', kind: 'receipt', hex: toHex(receipt.subarray(0, 2)) },
  ];
  const invalid = raw.map((v) => ({ ...v, error: errorCode(verifiers[v.kind](v.hex)) }));

  const paddingLengths = [0, 1, 100, 1019, 1020, 1021, 2000, 4096, 10_000, 65_536, 100_000, 1_000_000];
  paddingLengths.push(LIMITS.maxClipPlaintextBytes);
  const example = new TextEncoder().encode('PlushLink');

  return {
    description:
      'PlushLink wire protocol v1 golden vectors (docs/PROTOCOL.md). All byte strings are lowercase hex. ' +
      'Identities are generateIdentity(role, seededRandom(seed)); seededRandom(seed) = SHA-256(seed || u64be(counter)) blocks. ' +
      'Test data only: these keys are public.',
    generator: 'npx tsx scripts/gen-vectors.ts',
    protocolVersion: PROTOCOL_VERSION,
    // The contexts of the objects in this file (later v1 objects have vector files of their own).
    contexts: {
      TOKEN: CONTEXT.TOKEN,
      PROOF: CONTEXT.PROOF,
      CLIP: CONTEXT.CLIP,
      RECEIPT: CONTEXT.RECEIPT,
      ID: CONTEXT.ID,
    },
    identities: IDENTITIES.map(({ name, role }) => {
      const id = get(ids, name);
      return {
        name,
        role,
        seed: identitySeed(name),
        signSeed: toHex(id.signSeed),
        boxSecret: toHex(id.boxSecret),
        signPublicKey: toHex(id.signPublicKey),
        boxPublicKey: toHex(id.boxPublicKey),
        id: id.id,
      };
    }),
    token: {
      seed: tokenSeed,
      signer: 'toy',
      gateway: 'gateway',
      now: tokenNow,
      hex: toHex(token.bytes),
      signedMessage: toHex(signedMessage(CONTEXT.TOKEN, tokenDecoded.body)),
      decoded: {
        gatewayId: tokenDecoded.gatewayId,
        endpointId: tokenDecoded.endpointId,
        timestamp: tokenDecoded.timestamp,
        nonce: toHex(tokenDecoded.nonce),
        signature: toHex(tokenDecoded.signature),
      },
    },
    proof: {
      signer: 'gateway',
      endpoint: 'toy',
      now: proofNow,
      hex: toHex(proof),
      signedMessage: toHex(signedMessage(CONTEXT.PROOF, proofDecoded.body)),
      decoded: {
        gatewayId: proofDecoded.gatewayId,
        endpointId: proofDecoded.endpointId,
        nonce: toHex(proofDecoded.nonce),
        timestamp: proofDecoded.timestamp,
        signature: toHex(proofDecoded.signature),
      },
    },
    envelope: {
      seed: envSeed,
      sender: 'toy',
      recipients: ['mom', 'dad'],
      sequence,
      createdAt,
      durationMs,
      codec: { ...DEFAULT_CODEC },
      ogg: toHex(ogg),
      contentKey: toHex(contentKey),
      padded: toHex(pad(ogg)),
      hex: toHex(envelope),
      decoded: {
        version: clip.header.version,
        sender: clip.header.sender,
        clipId: toHex(clip.header.clipId),
        sequence: clip.header.sequence,
        createdAt: clip.header.createdAt,
        codec: { ...clip.header.codec },
        durationMs: clip.header.durationMs,
        recipients: clip.header.recipients.map((r) => ({ id: r.id, sealedKey: toHex(r.sealedKey) })),
        bodyNonce: toHex(clip.header.bodyNonce),
        bodyLength: clip.body.length,
        signedLength: clip.signed.length,
        signature: toHex(clip.signature),
        size: clip.size,
      },
    },
    receipt: {
      signer: 'mom',
      sender: 'toy',
      receivedAt,
      hex: toHex(receipt),
      signedMessage: toHex(signedMessage(CONTEXT.RECEIPT, receiptDecoded.body)),
      decoded: {
        recipient: receiptDecoded.recipient,
        sender: receiptDecoded.sender,
        clipId: toHex(receiptDecoded.clipId),
        receivedAt: receiptDecoded.receivedAt,
        signature: toHex(receiptDecoded.signature),
      },
    },
    padding: {
      sizes: paddingLengths.map((contentLength) => ({
        contentLength,
        paddedLength: padmeSize(4 + contentLength),
      })),
      example: { content: toHex(example), padded: toHex(pad(example)) },
    },
    invalid,
  };
}

export function serializeVectors(v: PlushlinkVectors): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

function main(): void {
  const text = serializeVectors(buildVectors());
  if (process.argv.includes('--check')) {
    const current = readFileSync(VECTORS_PATH, 'utf8');
    if (current !== text) {
      process.stderr.write(
        `gen-vectors: ${VECTORS_PATH} is out of date; run npx tsx scripts/gen-vectors.ts\n`,
      );
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`gen-vectors: ${VECTORS_PATH} is up to date\n`);
    return;
  }
  writeFileSync(VECTORS_PATH, text);
  process.stdout.write(`gen-vectors: wrote ${VECTORS_PATH}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
