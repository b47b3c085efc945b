// Ogg Opus for chunked clips with the real encoder and decoder: cutting at page boundaries (whole packets, exact bytes and durations) and playing chunk by chunk [PLK-14.3] [PLK-14.8].
import { describe, expect, it } from 'vitest';
import { synthesizeSpeech } from '../../device/audio/synth.ts';
import { decodeOggToPcm, encodePcmToOgg } from '../../device/codec/clip.ts';
import { CodecError } from '../../device/codec/errors.ts';
import { OggOpusWriter, parseOggPage } from '../../device/codec/ogg.ts';
import { ChunkPlayer, splitOggIntoChunks } from '../../device/codec/ogg-chunks.ts';
import { expectCode } from '../helpers/errors.ts';

const pcm = synthesizeSpeech({ seed: 11, durationMs: 3000 });

describe('splitOggIntoChunks', () => {
  for (const chunkMs of [300, 500, 1000]) {
    it(`${chunkMs} ms pages → chunks of ${chunkMs} ms: exact bytes, durations, packet bytes`, () => {
      const enc = encodePcmToOgg(pcm, { serial: 1, maxPageDurationMs: chunkMs });
      const chunks = splitOggIntoChunks(enc.ogg, chunkMs);
      expect(chunks.length).toBe(3000 / chunkMs);
      expect(Buffer.concat(chunks.map((c) => c.ogg)).equals(Buffer.from(enc.ogg))).toBe(true);
      expect(chunks.reduce((s, c) => s + c.durationMs, 0)).toBe(3000);
      expect(chunks.slice(1, -1).every((c) => c.durationMs === chunkMs)).toBe(true);
      expect(chunks.reduce((s, c) => s + c.packetBytes, 0)).toBe(enc.packetBytes);
      // Every chunk starts with a page that does not continue a packet.
      for (const c of chunks) expect(parseOggPage(c.ogg, 0).flags & 0x01).toBe(0);
    });
  }

  it('a chunk length that is not a whole number of frames gives chunks of whole frames (250 ms → 260 ms at 20 ms)', () => {
    const enc = encodePcmToOgg(pcm, { serial: 7, maxPageDurationMs: 250 });
    const chunks = splitOggIntoChunks(enc.ogg, 250);
    expect(chunks.slice(1, -1).every((c) => c.durationMs === 260)).toBe(true);
    expect(chunks.reduce((s, c) => s + c.durationMs, 0)).toBe(3000);
  });

  it('never cuts before a page that continues a packet', () => {
    // 600-byte packets (3 lacing values each), 2 s pages: a page holds 85 packets, the 86th continues.
    const w = new OggOpusWriter({ serial: 8, maxPageDurationMs: 2000 });
    for (let i = 0; i < 300; i++) {
      const p = new Uint8Array(600).fill(i & 0xff);
      p[0] = 0x48; // SILK WB 20 ms, mono
      w.writePacket(p);
    }
    const ogg = w.finish();
    let continued = 0;
    for (let off = 0; off < ogg.length; ) {
      const page = parseOggPage(ogg, off);
      if (page.flags & 0x01) continued++;
      off += 27 + page.segments.length + page.body.length;
    }
    expect(continued).toBeGreaterThan(0);
    const chunks = splitOggIntoChunks(ogg, 250);
    expect(Buffer.concat(chunks.map((c) => c.ogg)).equals(Buffer.from(ogg))).toBe(true);
    for (const c of chunks) expect(parseOggPage(c.ogg, 0).flags & 0x01).toBe(0);
    expect(chunks.reduce((s, c) => s + c.packetBytes, 0)).toBe(300 * 600);
  });

  it('a short tail joins the chunk before it; pages longer than the chunk give longer chunks', () => {
    const enc = encodePcmToOgg(pcm.subarray(0, 16000 * 2.1), { serial: 3, maxPageDurationMs: 1000 });
    const tail = splitOggIntoChunks(enc.ogg, 1000);
    // Chunk 0 is net of the pre-skip (312 samples at 48 kHz: 6.5 ms).
    expect(tail.map((c) => c.durationMs)).toEqual([994, 1106]);
    const coarse = splitOggIntoChunks(encodePcmToOgg(pcm, { serial: 4 }).ogg, 500); // 1 s pages
    expect(coarse.map((c) => c.durationMs)).toEqual([994, 1000, 1006]);
  });

  it('refuses what is not an Ogg Opus stream', () => {
    expectCode(() => splitOggIntoChunks(new Uint8Array(40), 500), 'OGG_BAD_CAPTURE', CodecError);
    expect(() => splitOggIntoChunks(new Uint8Array(0), 10)).toThrow(RangeError);
  });
});

describe('ChunkPlayer', () => {
  it('plays each chunk as it arrives, with the real decoder; the total is the clip, sample for sample', () => {
    const enc = encodePcmToOgg(pcm, { serial: 5, maxPageDurationMs: 500 });
    const chunks = splitOggIntoChunks(enc.ogg, 500);
    const player = new ChunkPlayer();
    const played = chunks.map((c) => player.push(c.ogg));
    player.destroy();
    expect(played[0]).toBeGreaterThan(400); // after chunk 0: its half second (less the pre-skip)
    expect(played[0]).toBeLessThanOrEqual(500);
    expect(played.at(-1)).toBe(3000);
    expect(player.finished).toBe(true);
    expect(decodeOggToPcm(enc.ogg).durationMs).toBe(3000);
  });

  it('refuses chunks out of order, damaged pages and data after the end', () => {
    const enc = encodePcmToOgg(pcm, { serial: 6, maxPageDurationMs: 500 });
    const chunks = splitOggIntoChunks(enc.ogg, 500);
    const p1 = new ChunkPlayer();
    p1.push(chunks[0]!.ogg);
    expectCode(() => p1.push(chunks[2]!.ogg), 'OGG_BAD_SEQUENCE', CodecError);
    p1.destroy();
    const p2 = new ChunkPlayer();
    const bad = chunks[0]!.ogg.slice();
    bad[bad.length - 1]! ^= 1;
    expectCode(() => p2.push(bad), 'OGG_BAD_CRC', CodecError);
    p2.destroy();
    const p3 = new ChunkPlayer();
    for (const c of chunks) p3.push(c.ogg);
    expectCode(() => p3.push(chunks[0]!.ogg), 'OGG_BAD_STREAM', CodecError);
    p3.destroy();
    const p4 = new ChunkPlayer();
    expectCode(() => p4.push(chunks[1]!.ogg), 'OGG_BAD_STREAM', CodecError);
    p4.destroy();
  });
});
