// Opus packet TOC inspection (RFC 6716 §3.1): frame count and duration of a packet, without decoding it.
import { CodecError } from './errors.ts';

const SILK_MS = [10, 20, 40, 60] as const;
const HYBRID_MS = [10, 20] as const;
const CELT_SAMPLES_48K = [120, 240, 480, 960] as const;

/** Samples per frame at 48 kHz for a TOC byte. */
export function tocFrameSamples48k(toc: number): number {
  const config = (toc >> 3) & 0x1f;
  if (config < 12) return (SILK_MS[config % 4] ?? 20) * 48;
  if (config < 16) return (HYBRID_MS[config % 2] ?? 20) * 48;
  return CELT_SAMPLES_48K[config % 4] ?? 960;
}

/**
 * Duration of one Opus packet in 48 kHz samples. Throws CodecError('OPUS_BAD_PACKET') for an empty packet,
 * a code-3 packet without its frame-count byte or with zero frames, or a packet longer than 120 ms
 * (RFC 6716 §3.2.5, R5).
 */
export function opusPacketSamples48k(packet: Uint8Array): number {
  const toc = packet[0];
  if (toc === undefined)
    throw new CodecError('OPUS_BAD_PACKET', 'Opus packet is empty (RFC 6716 §3.1 requires a TOC byte)');
  const perFrame = tocFrameSamples48k(toc);
  const code = toc & 0x03;
  let frames: number;
  if (code === 0) frames = 1;
  else if (code === 1 || code === 2) frames = 2;
  else {
    const countByte = packet[1];
    if (countByte === undefined)
      throw new CodecError('OPUS_BAD_PACKET', 'code-3 Opus packet lacks its frame count byte');
    frames = countByte & 0x3f;
    if (frames === 0) throw new CodecError('OPUS_BAD_PACKET', 'code-3 Opus packet declares zero frames');
  }
  const total = frames * perFrame;
  if (total > 5760)
    throw new CodecError('OPUS_BAD_PACKET', `Opus packet lasts ${total / 48} ms, more than 120 ms`);
  return total;
}
