// Golden vectors of protocol v2 (experimental, chunked clips): regenerate byte for byte, decode, verify, recompute the chain and delivery ids from the spec, open, and replay every receiving rule [PLK-14].
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  buildV2Vectors,
  type PlushlinkV2Vectors,
  serializeV2Vectors,
  V2_VECTORS_PATH,
} from '../../scripts/gen-v2-vectors.ts';
import { vectorIdentities } from '../../scripts/gen-vectors.ts';
import { fromHex, toHex } from '../../shared/bytes.ts';
import {
  CHUNK_CONTEXT,
  CHUNK_LIMITS,
  chunkChainHash,
  chunkSize,
  decodeChunk,
  openChunkBody,
  openChunkedClip,
  openChunkKey,
  verifyChunk,
} from '../../shared/chunked.ts';
import { nodeCryptoSuite, tweetnaclSuite } from '../../shared/crypto.ts';
import { isPlushlinkError } from '../../shared/errors.ts';
import type { PrivateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { verifyReceipt } from '../../shared/receipt.ts';
import { decodeClipObject } from '../../shared/versions.ts';
import { expectCode } from '../helpers/errors.ts';

const V = JSON.parse(readFileSync(V2_VECTORS_PATH, 'utf8')) as PlushlinkV2Vectors;
const V1 = JSON.parse(readFileSync(new URL('../vectors/plushlink-v1.json', import.meta.url), 'utf8')) as {
  envelope: { hex: string; decoded: { clipId: string; sequence: number } };
};
const ids = vectorIdentities();
const who = (name: string): PrivateIdentity => {
  const i = ids.get(name);
  if (!i) throw new Error(name);
  return i;
};
const toy = who('toy');
const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('plushlink-v2.json', () => {
  it('is what scripts/gen-v2-vectors.ts generates, byte for byte, with either crypto suite', () => {
    const file = readFileSync(V2_VECTORS_PATH, 'utf8');
    expect(serializeV2Vectors(buildV2Vectors(nodeCryptoSuite()))).toBe(file);
    expect(serializeV2Vectors(buildV2Vectors(tweetnaclSuite()))).toBe(file);
  });

  it('is marked experimental, version 2, with the contexts and limits of the code', () => {
    expect(V.protocolVersion).toBe(2);
    expect(V.experimental).toBe(true);
    expect(V.contexts).toEqual({ ...CHUNK_CONTEXT });
    expect(V.limits).toEqual({ ...CHUNK_LIMITS });
    for (const i of V.identities) expect(who(i.name).id).toBe(i.id);
  });

  it('draws its randomness in the documented order', () => {
    const r = seededRandom(V.clip.seed);
    const draws = [r(32), r(16), r(24), r(32), r(32), r(24), r(24)].map(toHex);
    expect(V.clip.draws).toEqual(draws);
    expect(V.clip.contentKey).toBe(draws[0]);
    expect(V.clip.clipId).toBe(draws[1]);
  });

  for (const suite of [nodeCryptoSuite(), tweetnaclSuite()]) {
    it(`every chunk decodes to its fields and verifies (${suite.name})`, () => {
      const n = V.clip.recipients.length;
      for (const c of V.clip.chunks) {
        const d = decodeChunk(fromHex(c.hex));
        const h = d.header;
        expect(h.version).toBe(2);
        expect(h.sender).toBe(toy.id);
        expect(toHex(h.clipId)).toBe(V.clip.clipId);
        expect([h.index, h.final, h.sequence, h.createdAt, h.durationMs]).toEqual([
          c.index,
          c.final,
          c.sequence,
          c.createdAt,
          c.durationMs,
        ]);
        expect(h.codec).toEqual(V.clip.codec);
        expect(h.recipients.map((r) => r.id)).toEqual(V.clip.recipients.map((r) => who(r).id));
        expect(h.recipients.every((r) => (r.sealedKey !== undefined) === (c.index === 0))).toBe(true);
        expect([d.size, d.signed.length, toHex(d.signature)]).toEqual([c.size, c.signedLength, c.signature]);
        // [PLK-14.2] total size: 214 + E·n + P.
        expect(d.size).toBe(chunkSize(c.index, n, d.body.length - 16));
        expect(d.size).toBe(214 + (c.index === 0 ? 100 : 20) * n + c.padded.length / 2);
        verifyChunk(d, toy.signPublicKey, suite);
        expect(
          c.parts.payload + c.parts.padding + c.parts.sealedKeys + c.parts.signature + c.parts.header,
        ).toBe(c.size);
      }
    });
  }

  it('chain hashes and delivery ids follow the formulas of PLK-14.4 and PLK-14.9 (recomputed with node:crypto)', () => {
    let previous: Uint8Array = new Uint8Array(32);
    for (const c of V.clip.chunks) {
      const bytes = fromHex(c.hex);
      const signed = bytes.subarray(0, c.signedLength);
      const chain = sha256(text('plushlink/v2/chunk-chain'), new Uint8Array([0]), signed);
      expect(toHex(chain)).toBe(c.chainHash);
      expect(toHex(chunkChainHash(decodeChunk(bytes)))).toBe(c.chainHash);
      expect(c.previous).toBe(toHex(previous));
      const d = sha256(
        text('plushlink/v2/chunk-delivery-id'),
        new Uint8Array([0]),
        fromHex(V.clip.clipId),
        new Uint8Array([c.index >> 8, c.index & 0xff]),
      ).subarray(0, 16);
      expect(toHex(d)).toBe(c.deliveryId);
      previous = chain;
    }
    // Only the last chunk is final.
    expect(V.clip.chunks.map((c) => c.final)).toEqual(
      V.clip.chunks.map((_, i) => i === V.clip.chunks.length - 1),
    );
  });

  it('the signature is Ed25519 over "plushlink/v2/clip-chunk\\0" || every byte before it', () => {
    const c = V.clip.chunks[1]!;
    const bytes = fromHex(c.hex);
    const message = new Uint8Array([
      ...text('plushlink/v2/clip-chunk'),
      0,
      ...bytes.subarray(0, c.signedLength),
    ]);
    expect(tweetnaclSuite().verify(toy.signPublicKey, message, fromHex(c.signature))).toBe(true);
  });

  it('opens for each recipient: the content key from chunk 0, every padded payload, the whole Ogg', () => {
    for (const name of V.clip.recipients) {
      const chunks = V.clip.chunks.map((c) => fromHex(c.hex));
      const key = openChunkKey(decodeChunk(chunks[0]!), who(name));
      expect(toHex(key)).toBe(V.clip.contentKey);
      V.clip.chunks.forEach((c, i) => {
        expect(toHex(openChunkBody(decodeChunk(chunks[i]!), key))).toBe(c.payload);
        expect(
          c.padded.startsWith(`${(c.payload.length / 2).toString(16).padStart(8, '0')}${c.payload}`),
        ).toBe(true);
      });
      const opened = openChunkedClip(chunks, { recipient: who(name), sender: toy });
      expect(toHex(opened.ogg)).toBe(V.clip.ogg);
      expect(V.clip.chunks.map((c) => c.payload).join('')).toBe(V.clip.ogg);
      expect(opened.playableMs).toEqual(
        V.clip.chunks.map((_, i) => V.clip.chunks.slice(0, i + 1).reduce((s, c) => s + c.durationMs, 0)),
      );
    }
    expectCode(
      () => openChunkKey(decodeChunk(fromHex(V.clip.chunks[0]!.hex)), who('stranger')),
      'PLK_E_NOT_RECIPIENT',
    );
  });

  it('the re-sealed clip keeps clip id, sequences and bodies, and opens for mom alone', () => {
    const chunks = V.resealed.chunks.map((h) => fromHex(h));
    chunks.forEach((b, i) => {
      const d = decodeChunk(b);
      const orig = decodeChunk(fromHex(V.clip.chunks[i]!.hex));
      expect(toHex(d.deliveryId)).toBe(V.clip.chunks[i]!.deliveryId);
      expect(d.header.sequence).toBe(orig.header.sequence);
      expect(toHex(d.body)).toBe(toHex(orig.body));
      expect(d.header.recipients.map((r) => r.id)).toEqual([who('mom').id]);
    });
    expect(toHex(openChunkedClip(chunks, { recipient: who('mom'), sender: toy }).ogg)).toBe(V.clip.ogg);
    expectCode(() => openChunkedClip(chunks, { recipient: who('dad'), sender: toy }), 'PLK_E_NOT_RECIPIENT');
  });

  it('receipts are PLK-6 receipts naming each chunk delivery id [PLK-14.9]', () => {
    for (const r of V.receipts) {
      const receipt = verifyReceipt(fromHex(r.hex), who(r.signer).signPublicKey);
      expect(toHex(receipt.clipId)).toBe(V.clip.chunks[r.chunk]!.deliveryId);
      expect(receipt.sender).toBe(toy.id);
      expect(receipt.receivedAt).toBe(r.receivedAt);
    }
  });

  for (const r of V.receiving) {
    it(`receiving: ${r.name} → ${r.expect}`, () => {
      const chunkOf = (ref: string): Uint8Array => {
        const m = /^a(\d)$/.exec(ref);
        if (m) return fromHex(V.clip.chunks[Number(m[1])]!.hex);
        const hex = V.extra[ref];
        if (!hex) throw new Error(`no chunk ${ref}`);
        return fromHex(hex);
      };
      const run = () => openChunkedClip(r.deliver.map(chunkOf), { recipient: who(r.recipient), sender: toy });
      if (r.expect === 'complete') expect(toHex(run().ogg)).toBe(V.clip.ogg);
      else expectCode(run, r.expect as Parameters<typeof expectCode>[1]);
    });
  }

  it('every invalid chunk fails decode-then-verify with its code', () => {
    expect(V.invalid.length).toBeGreaterThan(10);
    for (const v of V.invalid) {
      let code: string | undefined;
      try {
        verifyChunk(decodeChunk(fromHex(v.hex)), toy.signPublicKey);
      } catch (err) {
        expect(isPlushlinkError(err), v.name).toBe(true);
        code = (err as { code: string }).code;
      }
      expect(code, v.name).toBe(v.error);
    }
  });

  it('the version registry decodes both versions: v1 stored under its clip id, v2 under its delivery id', () => {
    const v1 = decodeClipObject(fromHex(V1.envelope.hex));
    expect([v1.header.version, toHex(v1.storeId), v1.header.sequence]).toEqual([
      1,
      V1.envelope.decoded.clipId,
      V1.envelope.decoded.sequence,
    ]);
    const c = V.clip.chunks[2]!;
    const v2 = decodeClipObject(fromHex(c.hex));
    expect([v2.header.version, toHex(v2.storeId), v2.header.sequence]).toEqual([2, c.deliveryId, c.sequence]);
    const unknown = fromHex(c.hex);
    unknown[1] = 0x7f;
    expectCode(() => decodeClipObject(unknown), 'PLK_E_VERSION');
  });
});
