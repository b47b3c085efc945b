// Property tests (fast-check): encode/decode roundtrips, decoders that only ever throw PlushlinkError, and a bad-input matrix over every export.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromBase32, fromHex, toBase32, toHex } from '../../shared/bytes.ts';
import {
  type CodecParams,
  decodeClip,
  describeClip,
  openClip,
  sealClip,
  verifyClip,
} from '../../shared/envelope.ts';
import { ERROR_CATALOG, PlushlinkError } from '../../shared/errors.ts';
import {
  deriveEndpointId,
  generateIdentity,
  identityToJson,
  idFromBytes,
  idToBytes,
  parseEndpointId,
  parseIdentityJson,
  parsePrivateKeyJson,
  privateKeyToJson,
} from '../../shared/identity.ts';
import { LIMITS, MSG, PROTOCOL_VERSION } from '../../shared/limits.ts';
import { isBucketSize, pad, padmeSize, unpad } from '../../shared/padding.ts';
import { seededRandom } from '../../shared/random.ts';
import { createReceipt, decodeReceipt, describeReceipt, verifyReceipt } from '../../shared/receipt.ts';
import {
  createConnectToken,
  createGatewayProof,
  decodeConnectToken,
  decodeGatewayProof,
  verifyConnectToken,
  verifyGatewayProof,
} from '../../shared/token.ts';
import { parseTopic } from '../../shared/topics.ts';
import type { EndpointId } from '../../shared/types.ts';
import { fcParams } from '../helpers/fc.ts';

const rnd = seededRandom('properties');
const toy = generateIdentity('toy', rnd);
const mom = generateIdentity('parent', rnd);
const dad = generateIdentity('parent', rnd);
const grandpa = generateIdentity('parent', rnd);
const gateway = generateIdentity('gateway', rnd);
const FAMILY = [mom, dad, grandpa, toy];

const bytesOf = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const timestamp = fc.integer({ min: 0, max: LIMITS.maxTimestampMs });

/** A RandomSource that replays fast-check-chosen bytes, then continues with a seeded stream. */
function replay(prefix: Uint8Array): (n: number) => Uint8Array {
  let used = 0;
  const rest = seededRandom(prefix);
  return (n) => {
    if (used + n <= prefix.length) {
      const out = prefix.slice(used, used + n);
      used += n;
      return out;
    }
    return rest(n);
  };
}

/** Runs `fn`; passes when it returns or throws a catalogued PlushlinkError, fails on anything else. */
function onlyPlushlinkErrors(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!(err instanceof PlushlinkError)) throw new Error(`non-PlushlinkError: ${String(err)}`);
    expect(err.code in ERROR_CATALOG).toBe(true);
    return err.code;
  }
}

function thrownCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlushlinkError) return err.code;
    return `${(err as Error)?.name ?? 'thrown'}: ${String((err as Error)?.message ?? err)}`;
  }
  return 'no error';
}

describe('roundtrips', () => {
  it('connect token: decode(encode(x)) = x', () => {
    fc.assert(
      fc.property(timestamp, bytesOf(16), (now, nonce) => {
        const t = createConnectToken({ identity: toy, gatewayId: gateway.id, now, random: replay(nonce) });
        const d = decodeConnectToken(t.bytes);
        expect(d.gatewayId).toBe(gateway.id);
        expect(d.endpointId).toBe(toy.id);
        expect(d.timestamp).toBe(now);
        expect(d.nonce).toEqual(nonce);
        expect(t.bytes.length).toBe(130);
        verifyConnectToken(t.bytes, {
          gatewayId: gateway.id,
          endpointId: toy.id,
          signPublicKey: toy.signPublicKey,
          now,
        });
      }),
      fcParams({ numRuns: 60 }),
    );
  });

  it('gateway proof: decode(encode(x)) = x', () => {
    fc.assert(
      fc.property(timestamp, bytesOf(16), fc.constantFrom(toy, mom), (now, nonce, endpoint) => {
        const p = createGatewayProof({ gateway, endpointId: endpoint.id, nonce, now });
        const d = decodeGatewayProof(p);
        expect([d.gatewayId, d.endpointId, d.timestamp]).toEqual([gateway.id, endpoint.id, now]);
        expect(d.nonce).toEqual(nonce);
      }),
      fcParams({ numRuns: 60 }),
    );
  });

  it('receipt: decode(encode(x)) = x', () => {
    fc.assert(
      fc.property(timestamp, bytesOf(16), fc.constantFrom(mom, dad), (receivedAt, clipId, recipient) => {
        const bytes = createReceipt({ recipient, sender: toy.id, clipId, receivedAt });
        const r = verifyReceipt(bytes, recipient.signPublicKey);
        expect([r.recipient, r.sender, r.receivedAt]).toEqual([recipient.id, toy.id, receivedAt]);
        expect(r.clipId).toEqual(clipId);
        expect(describeReceipt(r).clipId).toBe(toHex(clipId));
      }),
      fcParams({ numRuns: 60 }),
    );
  });

  const codec: fc.Arbitrary<CodecParams> = fc.record({
    codec: fc.constant('opus-ogg' as const),
    channels: fc.constantFrom(1 as const, 2 as const),
    sampleRate: fc.constantFrom(8000, 12000, 16000, 24000, 48000),
    bitrate: fc.integer({ min: 500, max: 512_000 }),
    frameMs: fc.constantFrom(2.5, 5, 10, 20, 40, 60),
  });

  it('envelope: header fields survive decode, and every recipient opens the exact clip', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        timestamp,
        fc.integer({ min: 0, max: LIMITS.maxDurationMs }),
        codec,
        fc.subarray(FAMILY, { minLength: 1 }),
        fc.uint8Array({ maxLength: 3000 }),
        (sequence, createdAt, durationMs, c, recipients, ogg) => {
          const env = sealClip({ sender: toy, recipients, sequence, createdAt, durationMs, codec: c, ogg });
          const d = decodeClip(env);
          expect(d.header.sender).toBe(toy.id);
          expect(d.header.sequence).toBe(sequence);
          expect(d.header.createdAt).toBe(createdAt);
          expect(d.header.durationMs).toBe(durationMs);
          expect(d.header.codec).toEqual(c);
          expect(d.header.recipients.map((r) => r.id)).toEqual(recipients.map((r) => r.id));
          expect(describeClip(d).sequence).toBe(sequence);
          verifyClip(d, toy.signPublicKey);
          const r = recipients[sequence % recipients.length]!;
          expect(openClip(env, { recipient: r, sender: toy }).ogg).toEqual(ogg);
        },
      ),
      fcParams({ numRuns: 25 }),
    );
  });

  it('padding: unpad(pad(x)) = x, the size is the Padmé bucket of 4 + |x|', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70_000 }), (content) => {
        const padded = pad(content);
        expect(padded.length).toBe(padmeSize(4 + content.length));
        expect(isBucketSize(padded.length)).toBe(true);
        expect(unpad(padded)).toEqual(content);
      }),
      fcParams({ numRuns: 80 }),
    );
  });

  it('padmeSize: a bucket, never smaller, at most 12 % larger, idempotent', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: LIMITS.maxClipPlaintextBytes + 4 }), (n) => {
        const s = padmeSize(n);
        expect(s).toBeGreaterThanOrEqual(Math.max(n, LIMITS.minPaddedBytes));
        expect(s).toBeLessThanOrEqual(Math.max(n, LIMITS.minPaddedBytes) * 1.12);
        expect(padmeSize(s)).toBe(s);
      }),
      fcParams({ numRuns: 500 }),
    );
  });

  it('hex and base32 roundtrip; ids roundtrip through their 20 raw bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), bytesOf(20), (b, id) => {
        expect(fromHex(toHex(b))).toEqual(b);
        expect(fromHex(toHex(b).toUpperCase())).toEqual(b);
        expect(fromBase32(toBase32(b))).toEqual(b);
        const text = idFromBytes(id);
        expect(parseEndpointId(text)).toBe(text);
        expect(idToBytes(text)).toEqual(id);
      }),
      fcParams({ numRuns: 300 }),
    );
  });

  it('identity and key files roundtrip', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }),
        fc.constantFrom('toy' as const, 'parent' as const),
        (seed, role) => {
          const id = generateIdentity(role, seededRandom(seed));
          const pub = parseIdentityJson(identityToJson(id));
          expect([pub.id, pub.role]).toEqual([id.id, role]);
          expect(pub.signPublicKey).toEqual(id.signPublicKey);
          const priv = parsePrivateKeyJson(privateKeyToJson(id));
          expect(priv.boxSecret).toEqual(id.boxSecret);
          expect(priv.id).toBe(id.id);
        },
      ),
      fcParams({ numRuns: 30 }),
    );
  });
});

const validToken = createConnectToken({ identity: toy, gatewayId: gateway.id, now: 1_767_225_600_000 });
const validProof = createGatewayProof({
  gateway,
  endpointId: toy.id,
  nonce: validToken.nonce,
  now: 1_767_225_600_001,
});
const validEnvelope = sealClip({
  sender: toy,
  recipients: [mom, dad],
  sequence: 1,
  createdAt: 1_767_225_600_000,
  durationMs: 100,
  ogg: new Uint8Array(300).fill(9),
});
const validReceipt = createReceipt({
  recipient: mom,
  sender: toy.id,
  clipId: decodeClip(validEnvelope).header.clipId,
  receivedAt: 1_767_225_600_002,
});

const DECODERS: { name: string; type: number; run: (b: Uint8Array) => unknown }[] = [
  { name: 'decodeConnectToken', type: MSG.TOKEN, run: decodeConnectToken },
  {
    name: 'verifyConnectToken',
    type: MSG.TOKEN,
    run: (b) =>
      verifyConnectToken(b, {
        gatewayId: gateway.id,
        endpointId: toy.id,
        signPublicKey: toy.signPublicKey,
        now: 1_767_225_600_000,
      }),
  },
  { name: 'decodeGatewayProof', type: MSG.PROOF, run: decodeGatewayProof },
  {
    name: 'verifyGatewayProof',
    type: MSG.PROOF,
    run: (b) =>
      verifyGatewayProof(b, {
        gatewayId: gateway.id,
        gatewaySignPublicKey: gateway.signPublicKey,
        endpointId: toy.id,
        nonce: validToken.nonce,
      }),
  },
  { name: 'decodeReceipt', type: MSG.RECEIPT, run: decodeReceipt },
  { name: 'verifyReceipt', type: MSG.RECEIPT, run: (b) => verifyReceipt(b, mom.signPublicKey) },
  { name: 'decodeClip', type: MSG.CLIP, run: decodeClip },
  { name: 'openClip', type: MSG.CLIP, run: (b) => openClip(b, { recipient: mom, sender: toy }) },
  { name: 'unpad', type: 0, run: unpad },
];

describe('decoders throw only PlushlinkError', () => {
  it('on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
        for (const d of DECODERS) onlyPlushlinkErrors(() => d.run(b));
      }),
      fcParams({ numRuns: 400 }),
    );
  });

  it('on random bytes behind a valid type and version prefix (and exact sizes)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (tail, exact) => {
        for (const d of DECODERS) {
          const body =
            exact && d.type !== MSG.CLIP ? Uint8Array.from({ length: 128 }, (_, i) => tail[i] ?? i) : tail;
          onlyPlushlinkErrors(() => d.run(Uint8Array.from([d.type, PROTOCOL_VERSION, ...body])));
        }
      }),
      fcParams({ numRuns: 400 }),
    );
  });

  it('on valid objects with a random stretch overwritten', () => {
    const valids: [Uint8Array, (b: Uint8Array) => unknown][] = [
      [validToken.bytes, DECODERS[1]!.run],
      [validProof, DECODERS[3]!.run],
      [validReceipt, DECODERS[5]!.run],
      [validEnvelope, DECODERS[7]!.run],
    ];
    fc.assert(
      fc.property(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat(3), (at, junk, which) => {
        const [bytes, run] = valids[which]!;
        const copy = bytes.slice();
        copy.set(junk.subarray(0, Math.max(0, copy.length - (at % copy.length))), at % copy.length);
        const code = onlyPlushlinkErrors(() => run(copy));
        if (code === undefined) expect(copy).toEqual(bytes);
      }),
      fcParams({ numRuns: 400 }),
    );
  });

  it('envelope with a valid header and random recipient count, lengths and codec fields', () => {
    fc.assert(
      fc.property(
        fc.nat(255),
        fc.nat(0xffffffff),
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        (n, len, codecBytes) => {
          const copy = validEnvelope.slice();
          copy.set(codecBytes, 54);
          copy[70] = n;
          new DataView(copy.buffer).setUint32(71 + 200 + 24, len);
          onlyPlushlinkErrors(() => decodeClip(copy));
          onlyPlushlinkErrors(() => openClip(copy, { recipient: mom, sender: toy }));
        },
      ),
      fcParams({ numRuns: 300 }),
    );
  });

  it('text parsers: identity and key files, ids, topics, hex, base32', () => {
    const hexish = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'.split('')), maxLength: 70 });
    const identityish = fc.record(
      {
        plushlink: fc.constantFrom('identity', 'private-key', 'x'),
        v: fc.oneof(fc.constant(1), fc.jsonValue()),
        role: fc.oneof(fc.constantFrom('toy', 'parent', 'gateway'), fc.jsonValue()),
        id: fc.oneof(fc.constant(toy.id), fc.jsonValue()),
        signPublicKey: fc.oneof(fc.constant(toHex(toy.signPublicKey)), hexish, fc.jsonValue()),
        boxPublicKey: fc.oneof(fc.constant(toHex(toy.boxPublicKey)), hexish, fc.jsonValue()),
        signSeed: fc.oneof(fc.constant(toHex(toy.signSeed)), hexish, fc.jsonValue()),
        boxSecret: fc.oneof(fc.constant(toHex(toy.boxSecret)), hexish, fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const text = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.json(),
      identityish.map((o) => JSON.stringify(o)),
      fc.string({ maxLength: 5000, unit: 'binary' }),
    );
    fc.assert(
      fc.property(text, (s) => {
        onlyPlushlinkErrors(() => parseIdentityJson(s));
        onlyPlushlinkErrors(() => parsePrivateKeyJson(s));
        onlyPlushlinkErrors(() => parseEndpointId(s));
        onlyPlushlinkErrors(() => parseTopic(s));
        onlyPlushlinkErrors(() => fromHex(s));
        onlyPlushlinkErrors(() => fromBase32(s));
      }),
      fcParams({ numRuns: 400 }),
    );
  });
});

describe('bad input matrix: wrong types give PLK_E_TYPE or PLK_E_FIELD, never a TypeError', () => {
  const WRONG: [string, unknown][] = [
    ['null', null],
    ['undefined', undefined],
    ['string', 'plushlink'],
    ['number', 42],
    ['array', [1, 2, 3]],
    ['object', { length: 130 }],
    ['ArrayBuffer', new ArrayBuffer(130)],
  ];
  const asAny = <T>(v: unknown): T => v as T;
  const bytesArg: [string, (v: unknown) => unknown][] = [
    ...DECODERS.map((d): [string, (v: unknown) => unknown] => [d.name, (v) => d.run(asAny<Uint8Array>(v))]),
    ['pad', (v) => pad(asAny<Uint8Array>(v))],
    ['deriveEndpointId', (v) => deriveEndpointId(asAny<Uint8Array>(v))],
    ['idFromBytes', (v) => idFromBytes(asAny<Uint8Array>(v))],
    ['verifyReceipt(public key)', (v) => verifyReceipt(validReceipt, asAny<Uint8Array>(v))],
    ['verifyClip(public key)', (v) => verifyClip(decodeClip(validEnvelope), asAny<Uint8Array>(v))],
    [
      'verifyConnectToken(public key)',
      (v) =>
        verifyConnectToken(validToken.bytes, {
          gatewayId: gateway.id,
          endpointId: toy.id,
          signPublicKey: asAny<Uint8Array>(v),
          now: 1_767_225_600_000,
        }),
    ],
    [
      'verifyGatewayProof(public key)',
      (v) =>
        verifyGatewayProof(validProof, {
          gatewayId: gateway.id,
          gatewaySignPublicKey: asAny<Uint8Array>(v),
          endpointId: toy.id,
          nonce: validToken.nonce,
        }),
    ],
    [
      'verifyGatewayProof(nonce)',
      (v) =>
        verifyGatewayProof(validProof, {
          gatewayId: gateway.id,
          gatewaySignPublicKey: gateway.signPublicKey,
          endpointId: toy.id,
          nonce: asAny<Uint8Array>(v),
        }),
    ],
  ];
  const textArg: [string, (v: unknown) => unknown][] = [
    ['parseIdentityJson', (v) => parseIdentityJson(asAny<string>(v))],
    ['parsePrivateKeyJson', (v) => parsePrivateKeyJson(asAny<string>(v))],
    ['parseEndpointId', (v) => parseEndpointId(v)],
    ['fromHex', (v) => fromHex(asAny<string>(v))],
    ['fromBase32', (v) => fromBase32(asAny<string>(v))],
    ['idToBytes', (v) => idToBytes(asAny<EndpointId>(v))],
  ];

  for (const [name, fn] of [...bytesArg, ...textArg]) {
    it(name, () => {
      const isText = textArg.some(([n]) => n === name);
      for (const [label, value] of WRONG) {
        if (isText && label === 'string') continue;
        const code = thrownCode(() => fn(value));
        expect(['PLK_E_TYPE', 'PLK_E_FIELD'], `${name}(${label}) → ${code}`).toContain(code);
      }
    });
  }
});
