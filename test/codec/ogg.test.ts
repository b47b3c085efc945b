// Ogg Opus container tests: CRC vector, write/read roundtrip, lacing/continuation, limits, fuzzing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../device/audio/synth.ts';
import { oggCrc32 } from '../../device/codec/crc32.ts';
import { CodecError } from '../../device/codec/errors.ts';
import { OggOpusWriter, parseOggPage, readOggOpus, writeOggOpus } from '../../device/codec/ogg.ts';
import { opusPacketSamples48k } from '../../device/codec/opus-packet.ts';
import { fcParams } from '../helpers/fc.ts';

/** A fake SILK-WB 20 ms packet (TOC 0x48) of `len` bytes. */
function packet(len: number, rnd: () => number): Uint8Array {
  const p = new Uint8Array(len);
  p[0] = 0x48;
  for (let i = 1; i < len; i++) p[i] = Math.floor(rnd() * 256);
  return p;
}

function expectCodecError(fn: () => unknown, code?: string): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CodecError);
    if (code) expect((err as CodecError).code).toBe(code);
    return;
  }
  throw new Error('expected a CodecError');
}

describe('Ogg CRC-32', () => {
  it('matches the check value of the Ogg polynomial (init 0, no reflection, no xor)', () => {
    // CRC-32/CKSUM (same polynomial and init) has check 0x765e7680 with xorout 0xffffffff.
    expect(oggCrc32(new TextEncoder().encode('123456789'))).toBe(~0x765e7680 >>> 0);
    expect(oggCrc32(new Uint8Array(0))).toBe(0);
  });
});

describe('Opus packet TOC', () => {
  it('computes durations per RFC 6716 §3.1', () => {
    expect(opusPacketSamples48k(Uint8Array.of(0x48))).toBe(960); // SILK WB 20 ms
    expect(opusPacketSamples48k(Uint8Array.of(0x58))).toBe(2880); // SILK WB 60 ms
    expect(opusPacketSamples48k(Uint8Array.of(0xf8 | 1))).toBe(1920); // CELT FB 20 ms ×2
    expect(opusPacketSamples48k(Uint8Array.of(0x4b, 3))).toBe(2880); // code 3, 3 frames
    expectCodecError(() => opusPacketSamples48k(new Uint8Array(0)), 'OPUS_BAD_PACKET');
    expectCodecError(() => opusPacketSamples48k(Uint8Array.of(0x4b, 7)), 'OPUS_BAD_PACKET'); // 140 ms
  });
});

describe('Ogg Opus write/read', () => {
  it('roundtrips packets, headers, tags and the trimmed duration', () => {
    const rnd = seededRandom(1);
    const pkts = Array.from({ length: 137 }, (_, i) => packet(1 + ((i * 37) % 700), rnd));
    const ogg = writeOggOpus(pkts, {
      serial: 0xdeadbeef,
      inputSampleRate: 16000,
      vendor: 'test-vendor',
      comments: ['TITLE=hello', 'ARTIST=nobody'],
      totalSamples48k: 137 * 960 - 312 - 500,
    });
    const file = readOggOpus(ogg);
    expect(file.serial).toBe(0xdeadbeef);
    expect(file.head).toMatchObject({
      channels: 1,
      preSkip: 312,
      inputSampleRate: 16000,
      outputGain: 0,
      mappingFamily: 0,
    });
    expect(file.tags).toEqual({ vendor: 'test-vendor', comments: ['TITLE=hello', 'ARTIST=nobody'] });
    expect(file.packets.length).toBe(pkts.length);
    file.packets.forEach((p, i) => {
      expect(Buffer.from(p).equals(Buffer.from(pkts[i]!))).toBe(true);
    });
    expect(file.durationSamples48k).toBe(137 * 960 - 312 - 500);
    expect(file.finalGranule).toBe(137 * 960 - 500);
  });

  it('sets BOS on the first page, EOS on the last, sequential page numbers and page granules', () => {
    const rnd = seededRandom(2);
    const w = new OggOpusWriter({ serial: 7, maxPageDurationMs: 100 });
    for (let i = 0; i < 12; i++) w.writePacket(packet(50, rnd));
    const ogg = w.finish();
    const pages = [];
    for (let off = 0; off < ogg.length; ) {
      const p = parseOggPage(ogg, off);
      pages.push(p);
      off += 27 + p.segments.length + p.body.length;
    }
    expect(pages.map((p) => p.sequence)).toEqual(pages.map((_, i) => i));
    expect(pages[0]!.flags).toBe(2);
    expect(pages.at(-1)!.flags & 4).toBe(4);
    expect(pages.slice(1, -1).every((p) => (p.flags & 6) === 0)).toBe(true);
    // header pages (granule 0), then 100 ms pages (5 packets): granules 4800, 9600, 11520
    expect(pages.map((p) => Number(p.granule))).toEqual([0, 0, 4800, 9600, 11520]);
  });

  it('continues packets across pages and uses 0-terminated lacing for multiples of 255', () => {
    const rnd = seededRandom(3);
    const pkts = [
      packet(255, rnd),
      packet(510, rnd),
      packet(60_000, rnd),
      packet(65_025, rnd),
      packet(3, rnd),
    ];
    const file = readOggOpus(writeOggOpus(pkts, { serial: 1 }));
    expect(file.packets.map((p) => p.length)).toEqual([255, 510, 60_000, 65_025, 3]);
  });

  it('writes a valid stream with no audio packets', () => {
    const file = readOggOpus(new OggOpusWriter({ serial: 5 }).finish());
    expect(file.packets.length).toBe(0);
    expect(file.durationSamples48k).toBe(0);
  });

  it('validates writer inputs', () => {
    expect(() => new OggOpusWriter({ serial: -1 })).toThrow(RangeError);
    expect(() => new OggOpusWriter({ serial: 1, channels: 3 })).toThrow(/channels/);
    expect(() => new OggOpusWriter({ serial: 1, preSkip: 70000 })).toThrow(/preSkip/);
    expectCodecError(
      () => new OggOpusWriter({ serial: 1 }).writePacket(new Uint8Array(0)),
      'OPUS_BAD_PACKET',
    );
  });
});

describe('Ogg Opus reader errors', () => {
  const rnd = seededRandom(4);
  const good = writeOggOpus(
    Array.from({ length: 60 }, () => packet(80, rnd)),
    { serial: 42, maxPageDurationMs: 200 },
  );

  it('detects a flipped byte (CRC), truncation, a lost page and trailing junk', () => {
    const bad = good.slice();
    bad[200] = bad[200]! ^ 0x01;
    expectCodecError(() => readOggOpus(bad), 'OGG_BAD_CRC');
    expectCodecError(() => readOggOpus(good.subarray(0, good.length - 10)), 'OGG_TRUNCATED');
    expectCodecError(() => readOggOpus(good.subarray(0, 10)), 'OGG_TRUNCATED');
    expectCodecError(() => readOggOpus(new Uint8Array(0)), 'OGG_TRUNCATED');
    expectCodecError(
      () => readOggOpus(new TextEncoder().encode('RIFF....WAVEfmt and more bytes here')),
      'OGG_BAD_CAPTURE',
    );
    // drop page 3
    const offsets: number[] = [];
    for (let off = 0; off < good.length; ) {
      offsets.push(off);
      const p = parseOggPage(good, off);
      off += 27 + p.segments.length + p.body.length;
    }
    const lost = Buffer.concat([good.subarray(0, offsets[3]), good.subarray(offsets[4])]);
    expectCodecError(() => readOggOpus(lost), 'OGG_BAD_SEQUENCE');
    expectCodecError(() => readOggOpus(Buffer.concat([good, good])), 'OGG_BAD_STREAM');
  });

  it('enforces limits', () => {
    expectCodecError(() => readOggOpus(good, { maxPackets: 10 }), 'OGG_TOO_LARGE');
    expectCodecError(() => readOggOpus(good, { maxPacketBytes: 50 }), 'OGG_TOO_LARGE');
    expectCodecError(() => readOggOpus(good, { maxPageBytes: 100 }), 'OGG_TOO_LARGE');
    expectCodecError(() => readOggOpus(good, { maxInputBytes: 1000 }), 'OGG_TOO_LARGE');
    expect(() => readOggOpus(good, { maxPackets: 0 })).toThrow(RangeError);
  });

  it('never throws anything but CodecError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        try {
          readOggOpus(bytes);
        } catch (err) {
          if (!(err instanceof CodecError)) throw err;
        }
      }),
      fcParams({ numRuns: 2000 }),
    );
  });

  it('never throws anything but CodecError on mutated valid files (CRC fixed up)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.nat(),
        (edits, cut) => {
          const bytes = good.slice(0, good.length - (cut % 40));
          for (const e of edits) bytes[e.at % bytes.length] = e.value;
          // Recompute every page CRC so the parser gets past the checksum and exercises the structure checks.
          for (let off = 0, guard = 0; off + 27 <= bytes.length && guard < 1000; guard++) {
            const n = bytes[off + 26]!;
            let len = 27 + n;
            for (let i = 0; i < n && off + 27 + i < bytes.length; i++) len += bytes[off + 27 + i]!;
            if (off + len > bytes.length) break;
            bytes.fill(0, off + 22, off + 26);
            new DataView(bytes.buffer).setUint32(off + 22, oggCrc32(bytes.subarray(off, off + len)), true);
            off += len;
          }
          try {
            readOggOpus(bytes);
          } catch (err) {
            if (!(err instanceof CodecError)) throw err;
          }
        },
      ),
      fcParams({ numRuns: 1000 }),
    );
  });
});
