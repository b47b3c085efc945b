// Protocol v2 (experimental) unit tests: chunked clip round trip, playback after chunk 0, every tamper case (truncation, reordering, duplicates, splicing, replay, wrong recipient, bit flips), limits and the version registry [PLK-14].
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { splitOggIntoChunks } from '../../device/codec/ogg-chunks.ts';
import { toHex } from '../../shared/bytes.ts';
import {
  CHUNK_LIMITS,
  ChunkedClipSealer,
  ChunkReceiver,
  type ChunkReceiverOptions,
  chunkChainHash,
  chunkedOverhead,
  chunkPaddedSize,
  chunkParts,
  chunkSize,
  decodeChunk,
  openChunkedClip,
  type ReceiveResult,
  resealChunks,
  sealChunkedClip,
  sealChunkRaw,
  unpadChunk,
} from '../../shared/chunked.ts';
import { nodeCryptoSuite, tweetnaclSuite } from '../../shared/crypto.ts';
import { ERROR_CATALOG, PlushlinkError } from '../../shared/errors.ts';
import { generateIdentity, type PrivateIdentity, publicPart } from '../../shared/identity.ts';
import { LIMITS } from '../../shared/limits.ts';
import { padmeSize } from '../../shared/padding.ts';
import { seededRandom } from '../../shared/random.ts';
import {
  CLIP_VERSIONS,
  clipVersionByte,
  DEFAULT_PROTOCOL_VERSIONS,
  decodeClipObject,
  parseProtocolVersions,
} from '../../shared/versions.ts';
import { expectCode } from '../helpers/errors.ts';
import { fcParams } from '../helpers/fc.ts';
import { fakeOggOpus } from './fake-ogg.ts';

const random = seededRandom('chunked-unit');
const toy = generateIdentity('toy', random);
const mom = generateIdentity('parent', random);
const dad = generateIdentity('parent', random);
const stranger = generateIdentity('parent', random);
const NOW = 1_767_225_600_000;

/** 1 s of fake Opus in 200 ms pages, cut into five 200 ms chunks. */
const OGG = fakeOggOpus({ durationMs: 1000, packetBytes: 40 });
const PIECES = splitOggIntoChunks(OGG, 200);

function clip(seed: string, sequence = 10, recipients: readonly PrivateIdentity[] = [mom, dad]) {
  return sealChunkedClip({
    sender: toy,
    recipients,
    chunks: PIECES,
    sequence,
    createdAt: NOW,
    random: seededRandom(seed),
  });
}
const A = clip('a');
const B = clip('b', 100);

function receiver(me: PrivateIdentity = mom, opts: Partial<ChunkReceiverOptions> = {}): ChunkReceiver {
  return new ChunkReceiver({
    recipient: me,
    senders: (id) => (id === toy.id ? publicPart(toy) : undefined),
    ...opts,
  });
}

/** Feeds chunks; returns every result and the clips completed. */
function feed(rx: ChunkReceiver, chunks: readonly Uint8Array[], now = NOW) {
  const results: ReceiveResult[] = chunks.map((c) => rx.receive(c, now));
  return {
    results,
    played: results.flatMap((r) => r.playable.map((p) => `${p.clipId.slice(0, 4)}:${p.index}`)),
    completed: results.flatMap((r) => r.completed),
    failed: results.flatMap((r) => r.failed),
    dropped: results.flatMap((r) => r.dropped),
  };
}

const aHex = toHex(A.clipId).slice(0, 4);

describe('chunked clip round trip [PLK-14]', () => {
  it('cuts the Ogg at page boundaries: payloads concatenate to the stream, durations add up', () => {
    expect(PIECES.length).toBe(5);
    expect(Buffer.concat(PIECES.map((p) => p.ogg)).equals(Buffer.from(OGG))).toBe(true);
    // fake-ogg ends at granule pre-skip + 1000 ms.
    expect(PIECES.map((p) => p.durationMs)).toEqual([194, 200, 200, 200, 206]);
    expect(PIECES.reduce((s, p) => s + p.durationMs, 0)).toBe(1000);
  });

  for (const suite of [nodeCryptoSuite(), tweetnaclSuite()]) {
    it(`every recipient opens the whole clip, bit for bit (${suite.name})`, () => {
      for (const r of [mom, dad]) {
        const opened = openChunkedClip(A.chunks, { recipient: r, sender: publicPart(toy), crypto: suite });
        expect(Buffer.from(opened.ogg).equals(Buffer.from(OGG))).toBe(true);
        expect(opened.chunks).toBe(5);
        expect(opened.firstSequence).toBe(10);
      }
    });
  }

  it('playback can begin after chunk 0: each chunk is playable the moment it arrives in order', () => {
    const rx = receiver();
    let played = 0;
    A.chunks.forEach((c, i) => {
      const r = rx.receive(c, NOW + i);
      expect(r.outcome).toBe('applied');
      expect(r.playable.map((p) => p.index)).toEqual([i]);
      played += PIECES[i]!.durationMs;
      expect(r.playable[0]!.playableMs).toBe(played);
      expect(r.completed.length).toBe(i === 4 ? 1 : 0);
    });
    expect(rx.openClips).toBe(0);
  });

  it('sequence numbers increase with the index, every chunk names the same clip and recipients', () => {
    const d = A.chunks.map((c) => decodeChunk(c));
    expect(d.map((x) => x.header.sequence)).toEqual([10, 11, 12, 13, 14]);
    expect(d.map((x) => x.header.index)).toEqual([0, 1, 2, 3, 4]);
    expect(d.map((x) => x.header.final)).toEqual([false, false, false, false, true]);
    expect(new Set(d.map((x) => toHex(x.header.clipId))).size).toBe(1);
    expect(new Set(d.map((x) => toHex(x.deliveryId))).size).toBe(5);
    for (let i = 1; i < 5; i++) expect(toHex(d[i]!.header.previous)).toBe(toHex(chunkChainHash(d[i - 1]!)));
  });

  it('the streaming sealer gives the same chunks as the whole-clip helper', () => {
    const s = new ChunkedClipSealer({ sender: toy, recipients: [mom, dad], random: seededRandom('a') });
    const chunks = PIECES.map((p, i) =>
      s.seal({ ogg: p.ogg, durationMs: p.durationMs, sequence: 10 + i, createdAt: NOW, final: i === 4 }),
    );
    expect(chunks.map(toHex)).toEqual(A.chunks.map(toHex));
    expect(s.done).toBe(true);
    expectCode(
      () => s.seal({ ogg: PIECES[0]!.ogg, durationMs: 1, sequence: 99, createdAt: NOW, final: true }),
      'PLK_E_FIELD',
    );
  });

  it('byte accounting: chunkedOverhead and chunkParts agree with the real chunks', () => {
    const o = chunkedOverhead({ recipients: 2, payloadBytes: PIECES.map((p) => p.ogg.length) });
    expect(o.chunks.map((c) => c.size)).toEqual(A.chunks.map((c) => c.length));
    A.chunks.forEach((c, i) => {
      const p = chunkParts(c, PIECES[i]!.ogg.length);
      expect(p).toEqual(o.chunks[i]);
      expect(p.payload + p.padding + p.sealedKeys + p.signature + p.header).toBe(c.length);
      expect(p.sealedKeys).toBe(i === 0 ? 160 : 0);
      // [PLK-14.2] 214 + E·n + P
      expect(c.length).toBe(214 + (i === 0 ? 200 : 40) + chunkPaddedSize(PIECES[i]!.ogg.length));
    });
    expect(o.total.size).toBe(A.chunks.reduce((s, c) => s + c.length, 0));
  });

  it('padTo pads every chunk of a clip to one size [PLK-14.3]', () => {
    const even = sealChunkedClip({
      sender: toy,
      recipients: [mom],
      chunks: PIECES,
      sequence: 1,
      createdAt: NOW,
      padTo: 2000,
      random: seededRandom('even'),
    });
    const sizes = even.chunks.map((c) => decodeChunk(c).body.length);
    expect(new Set(sizes)).toEqual(new Set([padmeSize(2000) + 16]));
    expect(
      Buffer.from(openChunkedClip(even.chunks, { recipient: mom, sender: toy }).ogg).equals(Buffer.from(OGG)),
    ).toBe(true);
  });
});

describe('tampering is detected [PLK-14.4] [PLK-14.8]', () => {
  it('truncation: every proper prefix ends as PLK_E_CHUNK_TRUNCATED, never as a complete clip', () => {
    for (let n = 1; n < 5; n++) {
      const rx = receiver();
      const f = feed(rx, A.chunks.slice(0, n));
      expect(f.completed).toEqual([]);
      expect(f.played.length).toBe(n); // what arrived was played
      const end = rx.close();
      expect(end.failed.map((x) => x.error.code)).toEqual(['PLK_E_CHUNK_TRUNCATED']);
      expect(end.failed[0]!.playedChunks).toBe(n);
      expectCode(
        () => openChunkedClip(A.chunks.slice(0, n), { recipient: mom, sender: toy }),
        'PLK_E_CHUNK_TRUNCATED',
      );
    }
  });

  it('truncation by idle time: the caller clock decides, nothing before the limit', () => {
    const rx = receiver();
    feed(rx, A.chunks.slice(0, 2), NOW);
    expect(rx.expireIdle(NOW + 29_999, 30_000).failed).toEqual([]);
    const late = rx.expireIdle(NOW + 30_000, 30_000);
    expect(late.failed.map((x) => x.error.code)).toEqual(['PLK_E_CHUNK_TRUNCATED']);
    // Its later chunks are refused with the clip's error, not played.
    const r = rx.receive(A.chunks[2]!, NOW + 30_001);
    expect([r.outcome, r.error?.code, r.playable.length]).toEqual(['refused', 'PLK_E_CHUNK_TRUNCATED', 0]);
  });

  it('reordered delivery: every permutation is held and played in index order, the reordering reported', () => {
    const perms = (xs: number[]): number[][] =>
      xs.length <= 1
        ? [xs]
        : xs.flatMap((x, i) => perms([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
    for (const order of perms([0, 1, 2, 3])) {
      const rx = receiver();
      const f = feed(rx, [...order.map((i) => A.chunks[i]!), A.chunks[4]!]);
      expect(f.played).toEqual([0, 1, 2, 3, 4].map((i) => `${aHex}:${i}`));
      expect(Buffer.from(f.completed[0]!.ogg).equals(Buffer.from(OGG))).toBe(true);
      const held = f.results.filter((r) => r.outcome === 'held');
      // A chunk is held exactly when it arrives before the next index to play.
      let next = 0;
      let expectHeld = 0;
      const waiting = new Set<number>();
      for (const x of order) {
        if (x !== next) {
          waiting.add(x);
          expectHeld++;
          continue;
        }
        next++;
        while (waiting.delete(next)) next++;
      }
      expect(held.length).toBe(expectHeld);
      for (const h of held) expect(h.error?.code).toBe('PLK_E_CHUNK_ORDER');
    }
  });

  it('chunks signed out of order (sequence not increasing with the index) are PLK_E_CHUNK_ORDER', () => {
    const c0 = decodeChunk(A.chunks[0]!);
    const forged = sealChunkRaw({
      sender: toy,
      recipients: [mom, dad],
      clipId: A.clipId,
      contentKey: A.contentKey,
      index: 1,
      final: true,
      previous: chunkChainHash(c0),
      sequence: 9,
      createdAt: NOW,
      durationMs: 200,
      ogg: PIECES[1]!.ogg,
      random: seededRandom('forged'),
    }).bytes;
    const rx = receiver();
    const f = feed(rx, [forged, A.chunks[0]!]);
    expect(f.results[0]!.outcome).toBe('held');
    expect(f.failed.map((x) => x.error.code)).toEqual(['PLK_E_CHUNK_ORDER']);
    expect(f.played).toEqual([`${aHex}:0`]);
  });

  it('duplicates: each chunk twice is played once and reported as a duplicate', () => {
    const rx = receiver();
    const f = feed(
      rx,
      A.chunks.flatMap((c) => [c, c]),
    );
    expect(f.results.map((r) => r.outcome)).toEqual(A.chunks.flatMap(() => ['applied', 'duplicate']));
    expect(f.completed.length).toBe(1);
    // And after completion, the whole clip again: duplicates, nothing played.
    const again = feed(rx, A.chunks);
    expect(again.results.map((r) => r.outcome)).toEqual(A.chunks.map(() => 'duplicate'));
    expect(again.played).toEqual([]);
  });

  it('a copy of a held chunk stays held (no second notice); another chunk with its delivery id is PLK_E_CHUNK_CHAIN', () => {
    const rx = receiver();
    expect(rx.receive(A.chunks[2]!, NOW).outcome).toBe('held');
    const copy = rx.receive(A.chunks[2]!, NOW);
    expect([copy.outcome, copy.error]).toEqual(['held', undefined]);
    expect(rx.heldChunks).toBe(1);
    const other = sealChunkRaw({
      sender: toy,
      recipients: [mom, dad],
      clipId: A.clipId,
      contentKey: A.contentKey,
      index: 2,
      final: false,
      previous: decodeChunk(A.chunks[2]!).header.previous,
      sequence: 12,
      createdAt: NOW,
      durationMs: 200,
      ogg: PIECES[2]!.ogg,
      random: seededRandom('other'),
    }).bytes;
    expect(rx.receive(other, NOW).error?.code).toBe('PLK_E_CHUNK_CHAIN');
  });

  it('splicing a chunk of another clip (same sender, same index) into a clip: never played in it, the clip incomplete', () => {
    for (let k = 1; k < 5; k++) {
      const rx = receiver();
      const stream = A.chunks.map((c, i) => (i === k ? B.chunks[k]! : c));
      const f = feed(rx, stream);
      expect(f.completed).toEqual([]);
      expect(f.played).toEqual(A.chunks.slice(0, k).map((_, i) => `${aHex}:${i}`));
      const end = rx.close();
      expect(end.failed.map((x) => [x.clipId, x.error.code])).toEqual([
        [toHex(A.clipId), 'PLK_E_CHUNK_TRUNCATED'],
      ]);
      expect(end.dropped.map((d) => d.clipId)).toContain(toHex(B.clipId));
    }
  });

  it('a chunk that does not link to the one before it (same clip, other chain) is PLK_E_CHUNK_CHAIN', () => {
    const forged = sealChunkRaw({
      sender: toy,
      recipients: [mom, dad],
      clipId: A.clipId,
      contentKey: A.contentKey,
      index: 2,
      final: false,
      previous: chunkChainHash(decodeChunk(A.chunks[0]!)),
      sequence: 12,
      createdAt: NOW,
      durationMs: 200,
      ogg: PIECES[2]!.ogg,
      random: seededRandom('bad-link'),
    }).bytes;
    const rx = receiver();
    const f = feed(rx, [A.chunks[0]!, A.chunks[1]!, forged, A.chunks[3]!]);
    expect(f.failed.map((x) => x.error.code)).toEqual(['PLK_E_CHUNK_CHAIN']);
    expect(f.results[3]!.error?.code).toBe('PLK_E_CHUNK_CHAIN');
  });

  it("a chunk that changes the clip's recipients is PLK_E_CHUNK_CHAIN", () => {
    const forged = sealChunkRaw({
      sender: toy,
      recipients: [mom],
      clipId: A.clipId,
      contentKey: A.contentKey,
      index: 1,
      final: false,
      previous: chunkChainHash(decodeChunk(A.chunks[0]!)),
      sequence: 11,
      createdAt: NOW,
      durationMs: 200,
      ogg: PIECES[1]!.ogg,
      random: seededRandom('recipients'),
    }).bytes;
    const f = feed(receiver(), [A.chunks[0]!, forged]);
    expect(f.failed.map((x) => x.error.code)).toEqual(['PLK_E_CHUNK_CHAIN']);
  });

  it('replay: a chunk of a clip already complete is PLK_E_CHUNK_REPLAY, and so is one below the sequence floor of forgotten clips', () => {
    const after = sealChunkRaw({
      sender: toy,
      recipients: [mom, dad],
      clipId: A.clipId,
      contentKey: A.contentKey,
      index: 5,
      final: true,
      previous: chunkChainHash(decodeChunk(A.chunks[4]!)),
      sequence: 15,
      createdAt: NOW,
      durationMs: 200,
      ogg: PIECES[0]!.ogg,
      random: seededRandom('after'),
    }).bytes;
    const rx = receiver();
    feed(rx, A.chunks);
    expect(rx.receive(after, NOW).error?.code).toBe('PLK_E_CHUNK_REPLAY');
    // A receiver that remembers one clip and one chunk: clip A is forgotten once B completes.
    const small = receiver(mom, { rememberClips: 1, rememberChunks: 1 });
    feed(small, A.chunks);
    feed(small, B.chunks);
    const r = small.receive(A.chunks[0]!, NOW);
    expect([r.outcome, r.error?.code, r.playable.length]).toEqual(['refused', 'PLK_E_CHUNK_REPLAY', 0]);
  });

  it('wrong recipient, unknown sender: refused before anything is opened', () => {
    const f = feed(receiver(stranger), A.chunks);
    expect(f.results.map((r) => r.error?.code)).toEqual(A.chunks.map(() => 'PLK_E_NOT_RECIPIENT'));
    const nobody = new ChunkReceiver({ recipient: mom, senders: () => undefined });
    expect(nobody.receive(A.chunks[0]!, NOW).error?.code).toBe('PLK_E_WRONG_ENDPOINT');
    // A clip for mom alone: dad is not a recipient of any chunk.
    const momOnly = clip('mom-only', 1, [mom]);
    expectCode(() => openChunkedClip(momOnly.chunks, { recipient: dad, sender: toy }), 'PLK_E_NOT_RECIPIENT');
  });

  it('bit flips: every flipped bit of chunk 0 and of chunk 1 is refused with a catalogued code, nothing played', () => {
    const codes = new Set<string>();
    for (const [k, base] of [
      [0, A.chunks[0]!],
      [1, A.chunks[1]!],
    ] as const) {
      for (let i = 0; i < base.length; i++) {
        for (const bit of i < 200 || i >= base.length - 64 ? [0, 1, 2, 3, 4, 5, 6, 7] : [0, 7]) {
          const rx = receiver();
          if (k === 1) rx.receive(A.chunks[0]!, NOW);
          const bad = base.slice();
          bad[i]! ^= 1 << bit;
          const r = rx.receive(bad, NOW);
          expect(r.outcome, `byte ${i} bit ${bit} of chunk ${k}`).toBe('refused');
          expect(r.playable).toEqual([]);
          expect(r.error).toBeInstanceOf(PlushlinkError);
          codes.add(r.error!.code);
        }
      }
    }
    for (const c of codes) expect(c in ERROR_CATALOG).toBe(true);
    expect(codes.has('PLK_E_BAD_SIGNATURE')).toBe(true);
  });

  it('every truncation of a chunk is refused', () => {
    const base = A.chunks[1]!;
    const rx = receiver();
    rx.receive(A.chunks[0]!, NOW);
    for (let n = 0; n < base.length; n++)
      expect(rx.receive(base.subarray(0, n), NOW).outcome).toBe('refused');
    expect(rx.receive(base, NOW).outcome).toBe('applied');
  });

  it('arbitrary bytes and mutated chunks never throw, never play (fixed-seed fast-check)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }),
          fc
            .tuple(
              fc.integer({ min: 0, max: 4 }),
              fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
            )
            .map(([k, edits]) => {
              const b = A.chunks[k]!.slice();
              for (const [at, x] of edits) b[at % b.length]! ^= x;
              return b;
            }),
        ),
        (bytes) => {
          const rx = receiver();
          const r = rx.receive(bytes, NOW);
          expect(r.outcome).toBe('refused');
          expect(r.error).toBeInstanceOf(PlushlinkError);
          expect(r.playable).toEqual([]);
        },
      ),
      fcParams({ numRuns: 200 }),
    );
  });

  it('any delivery schedule with duplicates of a whole clip plays it once, in order, bit for bit (fixed-seed fast-check)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 6 }),
        fc.array(fc.nat(), { minLength: 5, maxLength: 5 }),
        (dups, keys) => {
          const order = [0, 1, 2, 3, 4].sort((x, y) => keys[x]! - keys[y]! || x - y);
          const stream = [...order, ...dups].map((i) => A.chunks[i]!);
          const f = feed(receiver(), stream);
          expect(f.played).toEqual([0, 1, 2, 3, 4].map((i) => `${aHex}:${i}`));
          expect(f.completed.length).toBe(1);
          expect(Buffer.from(f.completed[0]!.ogg).equals(Buffer.from(OGG))).toBe(true);
          expect(f.failed).toEqual([]);
        },
      ),
      fcParams({ numRuns: 100 }),
    );
  });
});

describe('bounds of a recipient [PLK-14.8]', () => {
  it('held chunks are bounded: the oldest is given up with PLK_E_CHUNK_ORDER', () => {
    const rx = receiver(mom, { maxHeldChunks: 2 });
    const f = feed(rx, [A.chunks[3]!, A.chunks[4]!, A.chunks[2]!]);
    expect(rx.heldChunks).toBe(2);
    expect(f.dropped.map((d) => [d.index, d.error.code])).toEqual([[3, 'PLK_E_CHUNK_ORDER']]);
  });

  it('clips in progress are bounded: the least recently active is truncated', () => {
    const rx = receiver(mom, { maxOpenClips: 1 });
    const f = feed(rx, [A.chunks[0]!, B.chunks[0]!]);
    expect(f.failed.map((x) => [x.clipId, x.error.code])).toEqual([
      [toHex(A.clipId), 'PLK_E_CHUNK_TRUNCATED'],
    ]);
    expect(rx.openClips).toBe(1);
  });
});

describe('limits [PLK-14.5]', () => {
  it('constants: padded chunk bucket, largest chunk', () => {
    expect(CHUNK_LIMITS.maxChunkPaddedBytes).toBe(padmeSize(4 + CHUNK_LIMITS.maxChunkPayloadBytes));
    expect(CHUNK_LIMITS.maxChunkBytes).toBe(
      chunkSize(0, LIMITS.maxRecipients, CHUNK_LIMITS.maxChunkPaddedBytes),
    );
    expect(CHUNK_LIMITS.maxChunkBytes).toBeLessThan(LIMITS.maxEnvelopeBytes);
    expect(CHUNK_LIMITS.maxChunks * CHUNK_LIMITS.minChunkMs).toBe(CHUNK_LIMITS.maxClipDurationMs);
  });

  it('oversized chunk objects and payloads are PLK_E_LIMIT', () => {
    expectCode(() => decodeChunk(new Uint8Array(CHUNK_LIMITS.maxChunkBytes + 1)), 'PLK_E_LIMIT');
    expectCode(() => chunkPaddedSize(CHUNK_LIMITS.maxChunkPayloadBytes + 1), 'PLK_E_LIMIT');
    const s = new ChunkedClipSealer({ sender: toy, recipients: [mom], random: seededRandom('big') });
    expectCode(
      () =>
        s.seal({
          ogg: new Uint8Array(CHUNK_LIMITS.maxChunkPayloadBytes + 1),
          durationMs: 1000,
          sequence: 1,
          createdAt: NOW,
          final: false,
        }),
      'PLK_E_LIMIT',
    );
    expectCode(
      () =>
        s.seal({
          ogg: new Uint8Array(10),
          durationMs: CHUNK_LIMITS.maxChunkDurationMs + 1,
          sequence: 1,
          createdAt: NOW,
          final: false,
        }),
      'PLK_E_FIELD',
    );
  });

  it('at most 1200 chunks, the last of them final; a clip at most 1 MiB of Ogg', () => {
    const many = Array.from({ length: CHUNK_LIMITS.maxChunks + 1 }, () => ({
      ogg: new Uint8Array(1),
      durationMs: 1,
    }));
    expectCode(
      () =>
        sealChunkedClip({
          sender: toy,
          recipients: [mom],
          chunks: many,
          sequence: 1,
          createdAt: NOW,
          random: seededRandom('m'),
        }),
      'PLK_E_LIMIT',
    );
    const s = new ChunkedClipSealer({ sender: toy, recipients: [mom], random: seededRandom('n') });
    for (let i = 0; i < CHUNK_LIMITS.maxChunks - 1; i++)
      s.seal({ ogg: new Uint8Array(1), durationMs: 1, sequence: i + 1, createdAt: NOW, final: false });
    expectCode(
      () => s.seal({ ogg: new Uint8Array(1), durationMs: 1, sequence: 5000, createdAt: NOW, final: false }),
      'PLK_E_LIMIT',
    );
    expect(
      s.seal({ ogg: new Uint8Array(1), durationMs: 1, sequence: 5000, createdAt: NOW, final: true }).length,
    ).toBeGreaterThan(0);
    const big = new ChunkedClipSealer({ sender: toy, recipients: [mom], random: seededRandom('o') });
    const quarter = new Uint8Array(CHUNK_LIMITS.maxChunkPayloadBytes);
    for (let i = 0; i < 4; i++)
      big.seal({ ogg: quarter, durationMs: 1000, sequence: i + 1, createdAt: NOW, final: false });
    expectCode(
      () => big.seal({ ogg: new Uint8Array(1), durationMs: 1, sequence: 9, createdAt: NOW, final: true }),
      'PLK_E_LIMIT',
    );
  });

  it('sender rules: sequence above the previous chunk, time never backwards', () => {
    const s = new ChunkedClipSealer({ sender: toy, recipients: [mom], random: seededRandom('p') });
    s.seal({ ogg: new Uint8Array(4), durationMs: 10, sequence: 5, createdAt: NOW, final: false });
    expectCode(
      () => s.seal({ ogg: new Uint8Array(4), durationMs: 10, sequence: 5, createdAt: NOW, final: false }),
      'PLK_E_FIELD',
    );
    expectCode(
      () => s.seal({ ogg: new Uint8Array(4), durationMs: 10, sequence: 6, createdAt: NOW - 1, final: false }),
      'PLK_E_FIELD',
    );
  });

  it('padding: any bucket at least 4 + length, zero filler', () => {
    const padded = new Uint8Array(2048);
    new DataView(padded.buffer).setUint32(0, 3);
    padded.set([1, 2, 3], 4);
    expect([...unpadChunk(padded)]).toEqual([1, 2, 3]);
    padded[100] = 1;
    expectCode(() => unpadChunk(padded), 'PLK_E_PADDING');
    expectCode(() => unpadChunk(new Uint8Array(2047)), 'PLK_E_PADDING');
    const long = new Uint8Array(1024);
    new DataView(long.buffer).setUint32(0, 1021);
    expectCode(() => unpadChunk(long), 'PLK_E_PADDING');
  });
});

describe('re-sealing to a new roster [PLK-4.6] [PLK-14.6]', () => {
  it('keeps clip id, delivery ids, sequences and bodies; opens for the new recipients only', () => {
    const resealed = resealChunks({
      sender: toy,
      chunks: A.chunks,
      contentKey: A.contentKey,
      recipients: [dad],
      random: seededRandom('r'),
    });
    resealed.forEach((c, i) => {
      const d = decodeChunk(c);
      const o = decodeChunk(A.chunks[i]!);
      expect(toHex(d.deliveryId)).toBe(toHex(o.deliveryId));
      expect(d.header.sequence).toBe(o.header.sequence);
      expect(toHex(d.body)).toBe(toHex(o.body));
    });
    expect(
      Buffer.from(openChunkedClip(resealed, { recipient: dad, sender: toy }).ogg).equals(Buffer.from(OGG)),
    ).toBe(true);
    expectCode(() => openChunkedClip(resealed, { recipient: mom, sender: toy }), 'PLK_E_NOT_RECIPIENT');
  });

  it('refuses another content key, another sender, or chunks not starting at 0', () => {
    expectCode(
      () => resealChunks({ sender: toy, chunks: A.chunks, contentKey: B.contentKey, recipients: [dad] }),
      'PLK_E_DECRYPT',
    );
    expectCode(
      () => resealChunks({ sender: mom, chunks: A.chunks, contentKey: A.contentKey, recipients: [dad] }),
      'PLK_E_WRONG_ENDPOINT',
    );
    expectCode(
      () =>
        resealChunks({ sender: toy, chunks: A.chunks.slice(1), contentKey: A.contentKey, recipients: [dad] }),
      'PLK_E_FIELD',
    );
  });
});

describe('version registry [PLK-14.1]', () => {
  it('knows versions 1 and 2; the default is 1', () => {
    expect([...CLIP_VERSIONS.keys()]).toEqual([1, 2]);
    expect(CLIP_VERSIONS.get(2)?.status).toBe('experimental');
    expect(DEFAULT_PROTOCOL_VERSIONS).toEqual([1]);
    expect(clipVersionByte(A.chunks[0]!)).toBe(2);
    expect(clipVersionByte(new Uint8Array([2, 1]))).toBeUndefined();
  });

  it('parses a list of versions, refusing unknown, duplicate and empty ones', () => {
    expect(parseProtocolVersions('1,2')).toEqual([1, 2]);
    expect(parseProtocolVersions(' 2 , 1 ')).toEqual([1, 2]);
    expect(parseProtocolVersions([2])).toEqual([2]);
    for (const bad of ['', '3', '1,1', 'one', '1,,2', '-1'])
      expect(() => parseProtocolVersions(bad), bad).toThrow(RangeError);
    expect(() => parseProtocolVersions([])).toThrow(RangeError);
  });

  it('decodes and verifies a chunk through its module; storeId is the delivery id', () => {
    const obj = decodeClipObject(A.chunks[3]!);
    const module = CLIP_VERSIONS.get(2)!;
    module.verify(obj, toy.signPublicKey, nodeCryptoSuite());
    expect(toHex(obj.storeId)).toBe(toHex(decodeChunk(A.chunks[3]!).deliveryId));
    expect(() => module.verify(obj, mom.signPublicKey, nodeCryptoSuite())).toThrow(PlushlinkError);
    expect(module.describe(obj)).toMatchObject({
      type: 'clip-chunk',
      index: 3,
      final: false,
      experimental: true,
    });
  });
});
