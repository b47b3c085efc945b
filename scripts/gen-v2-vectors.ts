// Generates test/vectors/plushlink-v2.json (protocol v2, experimental: chunked clips) deterministically from fixed seeds: `npx tsx scripts/gen-v2-vectors.ts [--check]`.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { OggOpusWriter } from '../device/codec/ogg.ts';
import { splitOggIntoChunks } from '../device/codec/ogg-chunks.ts';
import { toHex } from '../shared/bytes.ts';
import {
  CHUNK_CONTEXT,
  CHUNK_LIMITS,
  CHUNKED_VERSION,
  chunkChainHash,
  chunkParts,
  decodeChunk,
  openChunkedClip,
  resealChunks,
  sealChunkedClip,
  sealChunkRaw,
  verifyChunk,
} from '../shared/chunked.ts';
import { type CryptoSuite, defaultCrypto } from '../shared/crypto.ts';
import { DEFAULT_CODEC } from '../shared/envelope.ts';
import { PlushlinkError } from '../shared/errors.ts';
import type { PrivateIdentity } from '../shared/identity.ts';
import { seededRandom } from '../shared/random.ts';
import { createReceipt } from '../shared/receipt.ts';
import { identitySeed, VECTOR_EPOCH_MS, vectorIdentities } from './gen-vectors.ts';

export const V2_VECTORS_PATH = fileURLToPath(new URL('../test/vectors/plushlink-v2.json', import.meta.url));

export interface V2ChunkVector {
  index: number;
  final: boolean;
  sequence: number;
  createdAt: number;
  durationMs: number;
  /** This chunk's Ogg Opus bytes. */
  payload: string;
  /** The padded payload [PLK-14.3]. */
  padded: string;
  hex: string;
  size: number;
  signedLength: number;
  previous: string;
  chainHash: string;
  deliveryId: string;
  signature: string;
  parts: { payload: number; padding: number; sealedKeys: number; signature: number; header: number };
}

export interface V2ClipVector {
  seed: string;
  sender: string;
  recipients: string[];
  firstSequence: number;
  createdAt: number;
  codec: typeof DEFAULT_CODEC;
  chunkMs: number;
  padTo: number;
  /** The whole Ogg Opus stream: the chunks' payloads concatenated. */
  ogg: string;
  clipId: string;
  contentKey: string;
  /** Random draws in order (seededRandom(seed)): content key, clip id, then per chunk its body nonce and, in chunk 0, one ephemeral X25519 secret per recipient. */
  draws: string[];
  chunks: V2ChunkVector[];
}

/** A sequence of chunks handed to a recipient, and what it must conclude [PLK-14.8]. */
export interface V2ReceivingVector {
  name: string;
  recipient: string;
  /** "a0" = chunk 0 of clip a; clips: a (the clip above), b (another clip of the same sender), forged ones listed in `extra`. */
  deliver: string[];
  /** 'complete' (the Ogg of clip a, bit for bit) or the PlushlinkError code of openChunkedClip. */
  expect: string;
}

export interface V2InvalidVector {
  name: string;
  hex: string;
  /** Code of decodeChunk then verifyChunk with the sender's key. */
  error: string;
}

export interface PlushlinkV2Vectors {
  description: string;
  generator: string;
  protocolVersion: number;
  experimental: true;
  contexts: Record<string, string>;
  limits: Record<string, number>;
  identities: { name: string; seed: string; id: string; signPublicKey: string; boxPublicKey: string }[];
  clip: V2ClipVector;
  /** Clip a re-sealed to mom alone [PLK-14.6]. */
  resealed: { seed: string; recipients: string[]; chunks: string[] };
  receipts: { signer: string; chunk: number; receivedAt: number; hex: string }[];
  /** Chunks used by `receiving` beyond clip a: name → hex. */
  extra: Record<string, string>;
  receiving: V2ReceivingVector[];
  invalid: V2InvalidVector[];
}

/** A small Ogg Opus stream of fake 20 ms SILK packets (TOC 0x48) in 300 ms pages, from a seed. */
export function vectorV2Ogg(): Uint8Array {
  const random = seededRandom('plushlink-v2/vectors/ogg');
  const w = new OggOpusWriter({ serial: 0x706c6b32, maxPageDurationMs: 300, vendor: 'PlushLink vectors' });
  for (let i = 0; i < 45; i++) {
    const p = random(40);
    p[0] = 0x48;
    w.writePacket(p);
  }
  return w.finish(45 * 960 - 312);
}

function get(ids: Map<string, PrivateIdentity>, name: string): PrivateIdentity {
  const id = ids.get(name);
  if (!id) throw new Error(`no identity ${name}`);
  return id;
}

function flip(bytes: Uint8Array, index: number, mask: number): string {
  const copy = bytes.slice();
  copy[index]! ^= mask;
  return toHex(copy);
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlushlinkError) return err.code;
    throw err;
  }
  throw new Error('gen-v2-vectors: an invalid vector verified');
}

export function buildV2Vectors(crypto: CryptoSuite = defaultCrypto()): PlushlinkV2Vectors {
  const ids = vectorIdentities(crypto);
  const toy = get(ids, 'toy');
  const mom = get(ids, 'mom');
  const dad = get(ids, 'dad');
  const ogg = vectorV2Ogg();
  const chunkMs = 300;
  const pieces = splitOggIntoChunks(ogg, chunkMs);
  const seed = 'plushlink-v2/vectors/clip';
  const firstSequence = 50;
  const createdAt = VECTOR_EPOCH_MS + 2000;
  const sealed = sealChunkedClip({
    sender: toy,
    recipients: [mom, dad],
    chunks: pieces,
    sequence: firstSequence,
    createdAt,
    random: seededRandom(seed),
    crypto,
  });
  const replay = seededRandom(seed);
  const draws = [replay(32), replay(16), replay(24), replay(32), replay(32)];
  for (let i = 1; i < pieces.length; i++) draws.push(replay(24));
  const chunks = sealed.chunks.map((bytes, i): V2ChunkVector => {
    const d = decodeChunk(bytes);
    verifyChunk(d, toy.signPublicKey, crypto);
    const payload = pieces[i]!.ogg;
    const padded = new Uint8Array(d.body.length - 16);
    new DataView(padded.buffer).setUint32(0, payload.length);
    padded.set(payload, 4);
    const p = chunkParts(bytes, payload.length);
    return {
      index: d.header.index,
      final: d.header.final,
      sequence: d.header.sequence,
      createdAt: d.header.createdAt,
      durationMs: d.header.durationMs,
      payload: toHex(payload),
      padded: toHex(padded),
      hex: toHex(bytes),
      size: d.size,
      signedLength: d.signed.length,
      previous: toHex(d.header.previous),
      chainHash: toHex(chunkChainHash(d)),
      deliveryId: toHex(d.deliveryId),
      signature: toHex(d.signature),
      parts: {
        payload: p.payload,
        padding: p.padding,
        sealedKeys: p.sealedKeys,
        signature: p.signature,
        header: p.header,
      },
    };
  });
  // The reference recipient must open it.
  openChunkedClip(sealed.chunks, { recipient: mom, sender: toy, crypto });

  const resealSeed = 'plushlink-v2/vectors/reseal';
  const resealed = resealChunks({
    sender: toy,
    chunks: sealed.chunks,
    contentKey: sealed.contentKey,
    recipients: [mom],
    random: seededRandom(resealSeed),
    crypto,
  });

  const receipts = sealed.chunks.map((bytes, i) => {
    const receivedAt = VECTOR_EPOCH_MS + 5000 + i;
    return {
      signer: 'mom',
      chunk: i,
      receivedAt,
      hex: toHex(
        createReceipt({
          recipient: mom,
          sender: toy.id,
          clipId: decodeChunk(bytes).deliveryId,
          receivedAt,
          crypto,
        }),
      ),
    };
  });

  // Clip b: another clip of the same sender (for splicing); forged chunks for the receiving rules.
  const b = sealChunkedClip({
    sender: toy,
    recipients: [mom, dad],
    chunks: pieces,
    sequence: firstSequence + 10,
    createdAt: createdAt + 5000,
    random: seededRandom('plushlink-v2/vectors/clip-b'),
    crypto,
  });
  const forge = (
    name: string,
    o: { index: number; final: boolean; previous: Uint8Array; sequence: number },
  ) =>
    toHex(
      sealChunkRaw({
        sender: toy,
        recipients: [mom, dad],
        clipId: sealed.clipId,
        contentKey: sealed.contentKey,
        ...o,
        createdAt,
        durationMs: 300,
        ogg: pieces[Math.min(o.index, pieces.length - 1)]!.ogg,
        random: seededRandom(`plushlink-v2/vectors/forged/${name}`),
        crypto,
      }).bytes,
    );
  const c = sealed.chunks.map((bytes) => chunkChainHash(decodeChunk(bytes)));
  const extra: Record<string, string> = {
    // Chunk 1 of clip a signed with a sequence below chunk 0's: chunks signed out of order.
    a1LowSequence: forge('a1-low-sequence', {
      index: 1,
      final: false,
      previous: c[0]!,
      sequence: firstSequence - 1,
    }),
    // Chunk 2 of clip a that does not link to chunk 1 (it links to chunk 0).
    a2BadLink: forge('a2-bad-link', { index: 2, final: true, previous: c[0]!, sequence: firstSequence + 2 }),
    // A chunk 3 after the final chunk 2: a chunk of a clip already complete.
    a3AfterFinal: forge('a3-after-final', {
      index: 3,
      final: true,
      previous: c[2]!,
      sequence: firstSequence + 3,
    }),
    // Another chunk 1 of clip a (same delivery id, other bytes).
    a1Conflict: forge('a1-conflict', {
      index: 1,
      final: false,
      previous: c[0]!,
      sequence: firstSequence + 1,
    }),
  };
  b.chunks.forEach((bytes, i) => {
    extra[`b${i}`] = toHex(bytes);
  });
  const receiving: V2ReceivingVector[] = [
    { name: 'in order', recipient: 'mom', deliver: ['a0', 'a1', 'a2'], expect: 'complete' },
    { name: 'dad opens it too', recipient: 'dad', deliver: ['a0', 'a1', 'a2'], expect: 'complete' },
    {
      name: 'delivered out of order: held, then played in order',
      recipient: 'mom',
      deliver: ['a2', 'a0', 'a1'],
      expect: 'complete',
    },
    {
      name: 'duplicates are ignored',
      recipient: 'mom',
      deliver: ['a0', 'a0', 'a1', 'a1', 'a2', 'a2'],
      expect: 'complete',
    },
    {
      name: 'truncated: no final chunk',
      recipient: 'mom',
      deliver: ['a0', 'a1'],
      expect: 'PLK_E_CHUNK_TRUNCATED',
    },
    { name: 'only chunk 0', recipient: 'mom', deliver: ['a0'], expect: 'PLK_E_CHUNK_TRUNCATED' },
    {
      name: 'spliced: chunk 1 of clip b in clip a',
      recipient: 'mom',
      deliver: ['a0', 'b1', 'a2'],
      expect: 'PLK_E_CHUNK_TRUNCATED',
    },
    {
      name: 'signed out of order',
      recipient: 'mom',
      deliver: ['a0', 'a1LowSequence'],
      expect: 'PLK_E_CHUNK_ORDER',
    },
    {
      name: 'broken chain',
      recipient: 'mom',
      deliver: ['a0', 'a1', 'a2BadLink'],
      expect: 'PLK_E_CHUNK_CHAIN',
    },
    {
      name: 'conflicting chunk 1',
      recipient: 'mom',
      deliver: ['a0', 'a1', 'a1Conflict'],
      expect: 'PLK_E_CHUNK_CHAIN',
    },
    {
      name: 'replay: a chunk after the final one',
      recipient: 'mom',
      deliver: ['a0', 'a1', 'a2', 'a3AfterFinal'],
      expect: 'PLK_E_CHUNK_REPLAY',
    },
    {
      name: 'not a recipient',
      recipient: 'stranger',
      deliver: ['a0', 'a1', 'a2'],
      expect: 'PLK_E_NOT_RECIPIENT',
    },
  ];

  const a0 = sealed.chunks[0]!;
  const a1 = sealed.chunks[1]!;
  const check = (hex: string) => () => {
    const d = decodeChunk(Buffer.from(hex, 'hex'));
    verifyChunk(d, toy.signPublicKey, crypto);
  };
  const invalid: V2InvalidVector[] = [
    { name: 'flipped sender byte', hex: flip(a0, 2, 0x01), error: '' },
    { name: 'flipped clip id byte', hex: flip(a1, 22, 0x80), error: '' },
    { name: 'flipped sequence byte', hex: flip(a1, 45, 0x01), error: '' },
    { name: 'index 0 → 1 (links to nothing)', hex: flip(a0, 71, 0x01), error: '' },
    { name: 'final flag set on chunk 1', hex: flip(a1, 72, 0x01), error: '' },
    { name: 'reserved flag bit', hex: flip(a1, 72, 0x80), error: '' },
    { name: 'flipped previous hash byte', hex: flip(a1, 80, 0x01), error: '' },
    { name: 'flipped sealed key byte', hex: flip(a0, 130, 0x01), error: '' },
    { name: 'flipped body byte', hex: flip(a1, a1.length - 100, 0x01), error: '' },
    { name: 'flipped signature byte', hex: flip(a1, a1.length - 1, 0x01), error: '' },
    { name: 'version 1 byte', hex: flip(a1, 1, 0x03), error: '' },
    { name: 'truncated by one byte', hex: toHex(a1.subarray(0, a1.length - 1)), error: '' },
    { name: 'one trailing byte', hex: `${toHex(a1)}00`, error: '' },
  ].map((v) => ({ ...v, error: errorCode(check(v.hex)) }));

  return {
    description:
      'PlushLink protocol version 2 (EXPERIMENTAL, docs/PROTOCOL.md PLK-14): a chunked clip of three chunks with every field, chain hash and delivery id, the random draws, a re-seal, receipts, receiving rules and invalid chunks. Identities are those of plushlink-v1.json.',
    generator: 'scripts/gen-v2-vectors.ts',
    protocolVersion: CHUNKED_VERSION,
    experimental: true,
    contexts: { ...CHUNK_CONTEXT },
    limits: { ...CHUNK_LIMITS },
    identities: ['toy', 'mom', 'dad', 'stranger'].map((name) => {
      const i = get(ids, name);
      return {
        name,
        seed: identitySeed(name),
        id: i.id,
        signPublicKey: toHex(i.signPublicKey),
        boxPublicKey: toHex(i.boxPublicKey),
      };
    }),
    clip: {
      seed,
      sender: 'toy',
      recipients: ['mom', 'dad'],
      firstSequence,
      createdAt,
      codec: DEFAULT_CODEC,
      chunkMs,
      padTo: 0,
      ogg: toHex(ogg),
      clipId: toHex(sealed.clipId),
      contentKey: toHex(sealed.contentKey),
      draws: draws.map(toHex),
      chunks,
    },
    resealed: { seed: resealSeed, recipients: ['mom'], chunks: resealed.map(toHex) },
    receipts,
    extra,
    receiving,
    invalid,
  };
}

export function serializeV2Vectors(v: PlushlinkV2Vectors): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

function main(): void {
  const text = serializeV2Vectors(buildV2Vectors());
  if (process.argv.includes('--check')) {
    const current = readFileSync(V2_VECTORS_PATH, 'utf8');
    if (current !== text) {
      process.stderr.write(
        `gen-v2-vectors: ${V2_VECTORS_PATH} is out of date; run npx tsx scripts/gen-v2-vectors.ts\n`,
      );
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`gen-v2-vectors: ${V2_VECTORS_PATH} is up to date\n`);
    return;
  }
  writeFileSync(V2_VECTORS_PATH, text);
  process.stdout.write(`gen-v2-vectors: wrote ${V2_VECTORS_PATH}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
