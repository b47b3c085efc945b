// Playback of a received clip: decodes the Ogg Opus bytes (proving they play) and, when asked, saves them as a playable .opus or .wav file.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EndpointId } from '../shared/types.ts';
import { writeWav } from './audio/wav.ts';
import { decodeOggToPcm } from './codec/clip.ts';
import { MIC_SAMPLE_RATE } from './recorder.ts';

export type PlayFormat = 'ogg' | 'wav';

export interface PlayerOptions {
  /** Folder where received clips are "played" (written). Nothing is written when absent. */
  readonly playDir?: string | undefined;
  readonly playFormat?: PlayFormat | undefined;
  /** Decode received clips to PCM (proves they play). Default true. */
  readonly decode?: boolean | undefined;
  /** File name of a played clip (the demo uses display names). */
  readonly fileName: (sender: EndpointId, clipId: string, format: PlayFormat) => string;
}

export interface PlayedClip {
  /** Decoded duration (0 when not decoded). */
  readonly durationMs: number;
  readonly file?: string;
}

/** "Plays" a clip: decodes it (when `decode` or a .wav file needs it) and writes it to playDir. */
export async function playClip(
  opts: PlayerOptions,
  clipId: string,
  sender: EndpointId,
  ogg: Uint8Array,
): Promise<PlayedClip> {
  const format = opts.playFormat ?? 'ogg';
  const decode = (opts.decode ?? true) || (opts.playDir !== undefined && format === 'wav');
  let durationMs = 0;
  let pcm: Int16Array | undefined;
  if (decode) {
    const d = decodeOggToPcm(ogg, { sampleRate: MIC_SAMPLE_RATE });
    pcm = d.samples;
    durationMs = Math.round(d.durationMs);
  }
  if (!opts.playDir) return { durationMs };
  const file = join(opts.playDir, opts.fileName(sender, clipId, format));
  if (format === 'wav' && pcm)
    await writeFile(file, writeWav({ sampleRate: MIC_SAMPLE_RATE, channels: 1, samples: pcm }));
  else await writeFile(file, ogg);
  return { durationMs, file };
}

/** "bear-1-from-mum-1-0123456789ab.opus": names made file-safe, 12 hex digits of the clip id. */
export function playedFileName(me: string, from: string, clipId: string, format: PlayFormat): string {
  const safe = (s: string): string => s.replace(/[^A-Za-z0-9-]/g, '_');
  return `${safe(me)}-from-${safe(from)}-${clipId.slice(0, 12)}.${format === 'wav' ? 'wav' : 'opus'}`;
}
