// Pre-encoded audio pool for the load generator: seeded synthetic speech, Opus-encoded once into Ogg.
import { synthesizeSpeech } from '../../device/audio/synth.ts';
import { encodePcmToOgg } from '../../device/codec/clip.ts';

export interface AudioPool {
  readonly clips: readonly Uint8Array[];
  readonly clipDurationMs: number;
  readonly oggBytesMean: number;
}

/** Encodes `count` distinct clips of `seconds` (16 kHz mono, 24 kbit/s voip, 20 ms frames). */
export function buildAudioPool(seconds: number, count: number, seed: number): AudioPool {
  const durationMs = Math.round(seconds * 1000);
  const clips: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const pcm = synthesizeSpeech({ seed: (seed + i * 7919) >>> 0, sampleRate: 16000, durationMs });
    const enc = encodePcmToOgg(pcm, {
      serial: (seed * 31 + i) >>> 0,
      settings: {
        sampleRate: 16000,
        channels: 1,
        bitrate: 24000,
        frameMs: 20,
        application: 'voip',
        complexity: 5,
      },
    });
    clips.push(enc.ogg);
  }
  const oggBytesMean = clips.reduce((a, c) => a + c.length, 0) / Math.max(1, clips.length);
  return { clips, clipDurationMs: durationMs, oggBytesMean: Math.round(oggBytesMean) };
}

/** Numeric seed from the --seed text (FNV-1a). */
export function seedNumber(seed: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) {
    h ^= seed.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
