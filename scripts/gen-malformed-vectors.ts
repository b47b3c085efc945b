// Generates test/vectors/plushlink-v1-malformed.json: one input per case where several rules are broken at once, with the error code [PLK-10.1] says wins: `npx tsx scripts/gen-malformed-vectors.ts [--check]`.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { toHex } from '../shared/bytes.ts';
import { decodeClip, sealClip } from '../shared/envelope.ts';
import { type ErrorCode, PlushlinkError } from '../shared/errors.ts';
import { generateIdentity, publicPart } from '../shared/identity.ts';
import { seededRandom } from '../shared/random.ts';
import { createReceipt, decodeReceipt } from '../shared/receipt.ts';
import { createRoster, decodeRoster } from '../shared/roster.ts';
import {
  createConnectToken,
  createGatewayProof,
  decodeConnectToken,
  decodeGatewayProof,
} from '../shared/token.ts';

export const MALFORMED_VECTORS_PATH = fileURLToPath(
  new URL('../test/vectors/plushlink-v1-malformed.json', import.meta.url),
);

export type MalformedObject = 'token' | 'proof' | 'receipt' | 'envelope' | 'roster';

export interface MalformedVector {
  readonly name: string;
  readonly object: MalformedObject;
  /** Which rules the input breaks, in the order PLK-10.1 checks them. */
  readonly breaks: readonly string[];
  readonly hex: string;
  readonly code: ErrorCode;
}

export const DECODERS: Readonly<Record<MalformedObject, (b: Uint8Array) => unknown>> = {
  token: decodeConnectToken,
  proof: decodeGatewayProof,
  receipt: decodeReceipt,
  envelope: decodeClip,
  roster: decodeRoster,
};

/** The code the decoder throws for `bytes` (or 'none' if it accepts them). */
export function codeOf(object: MalformedObject, bytes: Uint8Array): ErrorCode | 'none' {
  try {
    DECODERS[object](bytes);
    return 'none';
  } catch (err) {
    if (err instanceof PlushlinkError) return err.code;
    throw err;
  }
}

const cat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const patch = (b: Uint8Array, at: number, ...values: number[]): Uint8Array => {
  const c = Uint8Array.from(b);
  c.set(values, at);
  return c;
};

/** Builds every vector from seeded keys (the same bytes on every run). */
export function generateMalformedVectors(): {
  description: string;
  generator: string;
  vectors: MalformedVector[];
} {
  const rnd = seededRandom('plushlink/malformed-vectors');
  const gateway = generateIdentity('gateway', rnd);
  const toy = generateIdentity('toy', rnd);
  const mum = generateIdentity('parent', rnd);
  const now = 1_767_225_600_000;
  const token = createConnectToken({ identity: toy, gatewayId: gateway.id, now, random: rnd });
  const proof = createGatewayProof({ gateway, endpointId: toy.id, nonce: token.nonce, now });
  const receipt = createReceipt({ recipient: mum, sender: toy.id, clipId: rnd(16), receivedAt: now });
  const envelope = sealClip({
    sender: toy,
    recipients: [publicPart(mum)],
    sequence: 1,
    createdAt: now,
    durationMs: 1000,
    ogg: rnd(200),
    random: rnd,
  });
  const roster = createRoster({
    gateway,
    version: 1,
    issuedAt: now,
    members: [publicPart(toy), publicPart(mum)],
  });
  const v = (
    name: string,
    object: MalformedObject,
    breaks: string[],
    bytes: Uint8Array,
    code: ErrorCode,
  ) => ({
    name,
    object,
    breaks,
    hex: toHex(bytes),
    code,
  });
  const vectors: MalformedVector[] = [
    v('token of 131 bytes', 'token', ['length'], cat(token.bytes, Uint8Array.of(0)), 'PLK_E_LIMIT'),
    v('token of 129 bytes', 'token', ['length'], token.bytes.subarray(0, 129), 'PLK_E_TRUNCATED'),
    v(
      'token of 131 bytes with a wrong type byte',
      'token',
      ['length', 'type'],
      patch(cat(token.bytes, Uint8Array.of(0)), 0, 0x11),
      'PLK_E_LIMIT',
    ),
    v(
      'token of 129 bytes with a wrong type byte',
      'token',
      ['length', 'type'],
      patch(token.bytes.subarray(0, 129), 0, 0x11),
      'PLK_E_TRUNCATED',
    ),
    v(
      'token with a wrong type and version byte',
      'token',
      ['type', 'version'],
      patch(token.bytes, 0, 0x11, 0x02),
      'PLK_E_MSG_TYPE',
    ),
    v('token with version 2', 'token', ['version'], patch(token.bytes, 1, 0x02), 'PLK_E_VERSION'),
    v('empty token', 'token', ['length'], new Uint8Array(0), 'PLK_E_TRUNCATED'),
    v('proof of 131 bytes', 'proof', ['length'], cat(proof, Uint8Array.of(0)), 'PLK_E_LIMIT'),
    v(
      'proof of 129 bytes with a wrong type byte',
      'proof',
      ['length', 'type'],
      patch(proof.subarray(0, 129), 0, 0x01),
      'PLK_E_TRUNCATED',
    ),
    v('proof of a token', 'proof', ['type'], token.bytes, 'PLK_E_MSG_TYPE'),
    v('receipt of 131 bytes', 'receipt', ['length'], cat(receipt, Uint8Array.of(0)), 'PLK_E_LIMIT'),
    v('receipt of 129 bytes', 'receipt', ['length'], receipt.subarray(0, 129), 'PLK_E_TRUNCATED'),
    v('receipt with a proof type byte', 'receipt', ['type'], patch(receipt, 0, 0x03), 'PLK_E_MSG_TYPE'),
    v('receipt with version 2', 'receipt', ['version'], patch(receipt, 1, 0x02), 'PLK_E_VERSION'),
    v(
      'envelope with one byte after the end',
      'envelope',
      ['trailing'],
      cat(envelope, Uint8Array.of(0)),
      'PLK_E_TRAILING',
    ),
    v(
      'envelope one byte short',
      'envelope',
      ['truncated'],
      envelope.subarray(0, envelope.length - 1),
      'PLK_E_TRUNCATED',
    ),
    v(
      'envelope with a wrong type and a trailing byte',
      'envelope',
      ['type', 'trailing'],
      patch(cat(envelope, Uint8Array.of(0)), 0, 0x02),
      'PLK_E_MSG_TYPE',
    ),
    v(
      'envelope with version 2 and a trailing byte',
      'envelope',
      ['version', 'trailing'],
      patch(cat(envelope, Uint8Array.of(0)), 1, 0x02),
      'PLK_E_VERSION',
    ),
    v('envelope with zero recipients', 'envelope', ['field'], patch(envelope, 70, 0), 'PLK_E_LIMIT'),
    v(
      'roster with one byte after the end',
      'roster',
      ['trailing'],
      cat(roster, Uint8Array.of(0)),
      'PLK_E_TRAILING',
    ),
    v(
      'roster one byte short',
      'roster',
      ['truncated'],
      roster.subarray(0, roster.length - 1),
      'PLK_E_TRUNCATED',
    ),
    v('roster with no member', 'roster', ['field'], patch(roster, 38, 0), 'PLK_E_LIMIT'),
    v(
      'roster with a wrong type and a trailing byte',
      'roster',
      ['type', 'trailing'],
      patch(cat(roster, Uint8Array.of(0)), 0, 0x03),
      'PLK_E_MSG_TYPE',
    ),
    v(
      'roster whose first member id does not derive from its key',
      'roster',
      ['field'],
      patch(roster, 40, roster[40]! ^ 0x01),
      'PLK_E_ID_MISMATCH',
    ),
  ];
  for (const vec of vectors) {
    const got = codeOf(vec.object, new Uint8Array(Buffer.from(vec.hex, 'hex')));
    if (got !== vec.code)
      throw new Error(`gen-malformed-vectors: "${vec.name}" gives ${got}, not ${vec.code}`);
  }
  return {
    description:
      'PlushLink v1 malformed inputs that break several rules at once, with the error code docs/PROTOCOL.md [PLK-10.1] says wins. Hex; test data only.',
    generator: 'npx tsx scripts/gen-malformed-vectors.ts',
    vectors,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const text = `${JSON.stringify(generateMalformedVectors(), null, 2)}\n`;
  if (process.argv.includes('--check')) {
    if (readFileSync(MALFORMED_VECTORS_PATH, 'utf8') !== text) {
      process.stderr.write(
        `${MALFORMED_VECTORS_PATH} is out of date: run npx tsx scripts/gen-malformed-vectors.ts\n`,
      );
      process.exit(1);
    }
  } else writeFileSync(MALFORMED_VECTORS_PATH, text);
}
