// Ogg Opus for chunked clips: cuts a stream into chunk payloads at page boundaries, and plays chunks as they arrive with the real decoder [PLK-14.3] [PLK-14.8].
import { CodecError } from './errors.ts';
import { parseOggPage } from './ogg.ts';
import { createDecoder, type OpusDecoder, type OpusSampleRate } from './opus.ts';

const HEADER_BYTES = 27;
const FLAG_CONTINUED = 0x01;
const FLAG_BOS = 0x02;
const FLAG_EOS = 0x04;

/** One chunk payload: whole Ogg pages; the first begins with the OpusHead and OpusTags pages. */
export interface OggChunk {
  readonly ogg: Uint8Array;
  /** Playable audio in it, ms (chunk 0 net of the pre-skip; the last one end-trimmed). */
  readonly durationMs: number;
  /** Bytes of Opus audio packets in it; the rest of `ogg` is Ogg framing and the Opus headers. */
  readonly packetBytes: number;
}

function pageLength(page: { segments: readonly number[]; body: Uint8Array }): number {
  return HEADER_BYTES + page.segments.length + page.body.length;
}

function preSkipOf(firstPageBody: Uint8Array): number {
  if (firstPageBody.length < 19 || new TextDecoder().decode(firstPageBody.subarray(0, 8)) !== 'OpusHead')
    throw new CodecError('OPUS_BAD_HEAD', 'first page is not an OpusHead');
  return new DataView(firstPageBody.buffer, firstPageBody.byteOffset, firstPageBody.length).getUint16(
    10,
    true,
  );
}

/**
 * [PLK-14.3] Cuts an Ogg Opus stream (RFC 7845) into chunk payloads of about `chunkMs` each: a
 * chunk ends after the first page whose granule position reaches the next multiple of `chunkMs`
 * and never before a page that continues a packet, so every chunk holds whole pages and whole
 * packets and the payloads concatenate to the input byte for byte; a last chunk shorter than half
 * `chunkMs` joins the one before it. Pages written with
 * `maxPageDurationMs = chunkMs` (the recorder does) give chunks of exactly `chunkMs`.
 */
export function splitOggIntoChunks(ogg: Uint8Array, chunkMs: number): OggChunk[] {
  if (!(ogg instanceof Uint8Array)) throw new TypeError('ogg must be a Uint8Array');
  if (!Number.isInteger(chunkMs) || chunkMs < 20 || chunkMs > 60_000)
    throw new RangeError(`chunkMs must be an integer in [20, 60000], got ${chunkMs}`);
  const pages: { offset: number; length: number; granule: bigint; flags: number; body: number }[] = [];
  let offset = 0;
  let preSkip = 0;
  while (offset < ogg.length) {
    const page = parseOggPage(ogg, offset);
    if (pages.length === 0) {
      if ((page.flags & FLAG_BOS) === 0)
        throw new CodecError('OGG_BAD_STREAM', 'first page lacks the BOS flag');
      preSkip = preSkipOf(page.body);
    }
    pages.push({
      offset,
      length: pageLength(page),
      granule: page.granule,
      flags: page.flags,
      body: page.body.length,
    });
    offset += pageLength(page);
  }
  if (pages.length < 2) throw new CodecError('OGG_TRUNCATED', 'no audio page after the OpusHead');
  const step = BigInt(chunkMs * 48);
  const out: OggChunk[] = [];
  let start = 0; // byte offset of the current chunk
  let fromGranule = BigInt(preSkip); // playable audio starts after the pre-skip
  let target = step;
  let lastGranule = 0n;
  let audio = false;
  let packetBytes = 0;
  // Header pages have granule 0, below every target: they always stay in chunk 0.
  for (let i = 1; i < pages.length; i++) {
    const p = pages[i]!;
    if (p.granule > 0n) audio = true;
    if (audio) packetBytes += p.body;
    if (p.granule >= 0n) lastGranule = p.granule;
    const next = pages[i + 1];
    const last = next === undefined;
    const cut = last || (lastGranule >= target && (next.flags & FLAG_CONTINUED) === 0);
    if (!cut) continue;
    const end = p.offset + p.length;
    // Whole ms of the audio played up to each cut, so that the chunks' durations add up exactly.
    const upTo = (g: bigint): number => Math.round(Math.max(0, Number(g) - preSkip) / 48);
    const to = lastGranule > fromGranule ? lastGranule : fromGranule;
    out.push({ ogg: ogg.subarray(start, end), durationMs: upTo(to) - upTo(fromGranule), packetBytes });
    packetBytes = 0;
    start = end;
    fromGranule = lastGranule > fromGranule ? lastGranule : fromGranule;
    while (target <= lastGranule) target += step;
  }
  // A short tail (the encoder's last frames) joins the chunk before it rather than cost a chunk of its own.
  const tail = out[out.length - 1];
  const before = out[out.length - 2];
  if (tail && before && tail.durationMs * 2 < chunkMs) {
    const from = before.ogg.byteOffset - ogg.byteOffset;
    out.splice(out.length - 2, 2, {
      ogg: ogg.subarray(from, from + before.ogg.length + tail.ogg.length),
      durationMs: before.durationMs + tail.durationMs,
      packetBytes: before.packetBytes + tail.packetBytes,
    });
  }
  return out;
}

/**
 * [PLK-14.8] Plays a chunked clip as its chunks arrive: parses each chunk's pages (CRC, page
 * sequence, one stream), decodes every completed packet with the real Opus decoder and counts
 * the audio played, pre-skip removed and the end trimmed to the final granule. Throws CodecError
 * on a broken stream; destroy() frees the decoder.
 */
export class ChunkPlayer {
  private decoder: OpusDecoder | undefined;
  private readonly sampleRate: OpusSampleRate;
  private pageSeq = 0;
  private serial = -1;
  private headers = 0;
  private preSkip = 0;
  private decoded48k = 0;
  private finalGranule = -1;
  private ended = false;
  private partial: Uint8Array[] = [];

  constructor(opts: { readonly sampleRate?: OpusSampleRate } = {}) {
    this.sampleRate = opts.sampleRate ?? 16000;
  }

  /** Audio played so far, ms (after the pre-skip; the exact clip length once the EOS page is in). */
  get playedMs(): number {
    const samples = this.ended
      ? Math.min(this.decoded48k, Math.max(0, this.finalGranule - this.preSkip))
      : Math.max(0, this.decoded48k - this.preSkip);
    return samples / 48;
  }

  /** True once the EOS page was played. */
  get finished(): boolean {
    return this.ended;
  }

  /** Plays one chunk's pages; returns the audio played so far, ms. */
  push(chunk: Uint8Array): number {
    if (this.ended) throw new CodecError('OGG_BAD_STREAM', 'data after the EOS page');
    let offset = 0;
    while (offset < chunk.length) {
      const page = parseOggPage(chunk, offset);
      offset += pageLength(page);
      if (this.pageSeq === 0) {
        if ((page.flags & FLAG_BOS) === 0)
          throw new CodecError('OGG_BAD_STREAM', 'first page lacks the BOS flag');
        this.serial = page.serial;
      } else if (page.serial !== this.serial || (page.flags & FLAG_BOS) !== 0) {
        throw new CodecError('OGG_BAD_STREAM', 'one Ogg stream per clip');
      }
      if (page.sequence !== this.pageSeq)
        throw new CodecError('OGG_BAD_SEQUENCE', `page ${page.sequence}, expected ${this.pageSeq}`);
      this.pageSeq++;
      let bodyOff = 0;
      for (const seg of page.segments) {
        this.partial.push(page.body.subarray(bodyOff, bodyOff + seg));
        bodyOff += seg;
        if (seg === 255) continue;
        const packet = concat(this.partial);
        this.partial = [];
        this.packet(packet);
      }
      if ((page.flags & FLAG_EOS) !== 0) {
        this.ended = true;
        this.finalGranule = Number(page.granule);
        if (offset !== chunk.length) throw new CodecError('OGG_BAD_STREAM', 'data after the EOS page');
      }
    }
    return this.playedMs;
  }

  private packet(packet: Uint8Array): void {
    if (this.headers === 0) {
      this.preSkip = preSkipOf(packet);
      const channels = packet[9] === 2 ? 2 : 1;
      this.decoder = createDecoder({ sampleRate: this.sampleRate, channels });
      this.headers++;
      return;
    }
    if (this.headers === 1) {
      if (new TextDecoder().decode(packet.subarray(0, 8)) !== 'OpusTags')
        throw new CodecError('OPUS_BAD_TAGS', 'second packet is not OpusTags');
      this.headers++;
      return;
    }
    const decoder = this.decoder;
    if (!decoder) throw new CodecError('OPUS_BAD_HEAD', 'no OpusHead');
    const pcm = decoder.decode(packet);
    this.decoded48k += (pcm.length / decoder.settings.channels) * (48000 / this.sampleRate);
  }

  destroy(): void {
    this.decoder?.destroy();
    this.decoder = undefined;
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
