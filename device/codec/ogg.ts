// Ogg Opus container (RFC 7845 over RFC 3533): a page writer and a bounded, strict reader with typed errors.
import { concatBytes } from '../../shared/bytes.ts';
import { oggCrc32 } from './crc32.ts';
import { CodecError } from './errors.ts';
import { opusPacketSamples48k } from './opus-packet.ts';

/** libopus encoder lookahead at any rate with the VOIP/AUDIO applications: 6.5 ms = 312 samples at 48 kHz. */
export const LIBOPUS_PRE_SKIP_48K = 312;

const HEADER_BYTES = 27;
const MAX_SEGMENTS = 255;
/** Largest page RFC 3533 allows: 27-byte header + 255 lacing values + 255 × 255 body bytes. */
export const OGG_MAX_PAGE_BYTES = HEADER_BYTES + MAX_SEGMENTS + MAX_SEGMENTS * 255;

const FLAG_CONTINUED = 0x01;
const FLAG_BOS = 0x02;
const FLAG_EOS = 0x04;
const NO_GRANULE = -1n;

export interface OpusHead {
  /** OpusHead version byte (RFC 7845 §5.1: major version 0 accepted). */
  readonly version: number;
  readonly channels: number;
  /** Samples at 48 kHz to discard from the decoder output start. */
  readonly preSkip: number;
  /** Sample rate of the original input, informational only. */
  readonly inputSampleRate: number;
  /** Q7.8 dB gain to apply on output. */
  readonly outputGain: number;
  readonly mappingFamily: number;
}

export interface OpusTags {
  readonly vendor: string;
  /** `KEY=value` user comments. */
  readonly comments: readonly string[];
}

export interface OggOpusWriterOptions {
  /** Logical bitstream serial number (uint32); inject a random or seeded value. */
  readonly serial: number;
  /** 1 or 2 (channel mapping family 0). Default 1. */
  readonly channels?: number;
  /** Pre-skip at 48 kHz. Default LIBOPUS_PRE_SKIP_48K. */
  readonly preSkip?: number;
  /** Original input rate stored in OpusHead. Default 16000. */
  readonly inputSampleRate?: number;
  readonly outputGain?: number;
  readonly vendor?: string;
  readonly comments?: readonly string[];
  /** Close an audio page once it holds this much audio. Default 1000 ms (as libopusenc). */
  readonly maxPageDurationMs?: number;
}

function u32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
    throw new RangeError(`${name} must be a uint32, got ${v}`);
  return v;
}

function intIn(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  }
  return v;
}

export function encodeOpusHead(head: Omit<OpusHead, 'version' | 'mappingFamily'>): Uint8Array {
  const out = new Uint8Array(19);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode('OpusHead'), 0);
  out[8] = 1;
  out[9] = intIn('channels', head.channels, 1, 2);
  dv.setUint16(10, intIn('preSkip', head.preSkip, 0, 0xffff), true);
  dv.setUint32(12, u32('inputSampleRate', head.inputSampleRate), true);
  dv.setInt16(16, intIn('outputGain', head.outputGain, -32768, 32767), true);
  out[18] = 0;
  return out;
}

export function encodeOpusTags(tags: OpusTags): Uint8Array {
  const enc = new TextEncoder();
  const vendor = enc.encode(tags.vendor);
  const comments = tags.comments.map((c) => {
    if (typeof c !== 'string' || !c.includes('='))
      throw new TypeError(`comment must be KEY=value, got ${String(c)}`);
    return enc.encode(c);
  });
  const size = 8 + 4 + vendor.length + 4 + comments.reduce((n, c) => n + 4 + c.length, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  out.set(enc.encode('OpusTags'), 0);
  let off = 8;
  dv.setUint32(off, vendor.length, true);
  out.set(vendor, off + 4);
  off += 4 + vendor.length;
  dv.setUint32(off, comments.length, true);
  off += 4;
  for (const c of comments) {
    dv.setUint32(off, c.length, true);
    out.set(c, off + 4);
    off += 4 + c.length;
  }
  return out;
}

interface PendingPacket {
  readonly data: Uint8Array;
  /** Granule position after this packet, or -1 for header packets that must stay on their own page. */
  readonly granule: bigint;
}

/**
 * Streaming Ogg Opus writer: OpusHead alone on the BOS page, OpusTags on its own page(s), then audio pages
 * holding up to `maxPageDurationMs` of packets (packets larger than a page continue on the next one).
 */
export class OggOpusWriter {
  private readonly serial: number;
  private readonly preSkip: number;
  private readonly maxPageSamples: number;
  private readonly chunks: Uint8Array[] = [];
  private pageSeq = 0;
  private granule = 0n;
  private pending: PendingPacket[] = [];
  private pendingSamples = 0;
  private finished = false;
  private packetCount = 0;

  constructor(opts: OggOpusWriterOptions) {
    this.serial = u32('serial', opts.serial);
    const channels = opts.channels ?? 1;
    this.preSkip = intIn('preSkip', opts.preSkip ?? LIBOPUS_PRE_SKIP_48K, 0, 0xffff);
    const maxMs = intIn('maxPageDurationMs', opts.maxPageDurationMs ?? 1000, 20, 10_000);
    this.maxPageSamples = maxMs * 48;
    const head = encodeOpusHead({
      channels,
      preSkip: this.preSkip,
      inputSampleRate: opts.inputSampleRate ?? 16000,
      outputGain: opts.outputGain ?? 0,
    });
    this.emitPages([{ data: head, granule: 0n }], FLAG_BOS, true);
    const tags = encodeOpusTags({ vendor: opts.vendor ?? 'PlushLink', comments: opts.comments ?? [] });
    this.emitPages([{ data: tags, granule: 0n }], 0, true);
  }

  /** Adds one Opus packet; its duration is read from its TOC byte. */
  writePacket(packet: Uint8Array): void {
    if (this.finished) throw new CodecError('OGG_BAD_STREAM', 'OggOpusWriter already finished');
    if (!(packet instanceof Uint8Array)) throw new TypeError('packet must be a Uint8Array');
    if (packet.length > 65536)
      throw new CodecError('OGG_TOO_LARGE', `packet of ${packet.length} bytes exceeds 65536`);
    const samples = opusPacketSamples48k(packet);
    // Flush lazily so that the final page always holds packets (end trimming needs them).
    if (this.pendingSamples >= this.maxPageSamples) this.flush(false);
    this.granule += BigInt(samples);
    this.packetCount++;
    this.pending.push({ data: packet, granule: this.granule });
    this.pendingSamples += samples;
  }

  /**
   * Writes the last page with EOS set and returns the whole file. With `totalSamples48k` (the real input
   * length at 48 kHz) the final granule is trimmed to pre-skip + total (RFC 7845 §4.5 end trimming).
   */
  finish(totalSamples48k?: number): Uint8Array {
    if (this.finished) throw new CodecError('OGG_BAD_STREAM', 'OggOpusWriter already finished');
    if (totalSamples48k !== undefined) {
      const max = Number(this.granule);
      intIn('totalSamples48k', totalSamples48k, 0, max);
      // The last page's granule must not go below the previous page's: trim only within the pending packets.
      const end = BigInt(this.preSkip + totalSamples48k);
      const last = this.pending[this.pending.length - 1];
      const pageStart = this.granule - BigInt(this.pendingSamples);
      if (last && end < last.granule) {
        this.pending[this.pending.length - 1] = {
          data: last.data,
          granule: end > pageStart ? end : pageStart,
        };
      }
    }
    this.finished = true;
    if (this.pending.length === 0) {
      // Stream without audio (or already flushed): close it with an empty EOS page.
      this.writePage(new Uint8Array(0), [], this.granule, FLAG_EOS);
    } else {
      this.flush(true);
    }
    return concatBytes(...this.chunks);
  }

  /** Audio packets written so far. */
  get packets(): number {
    return this.packetCount;
  }

  private flush(eos: boolean): void {
    const pkts = this.pending;
    this.pending = [];
    this.pendingSamples = 0;
    this.emitPages(pkts, eos ? FLAG_EOS : 0, false);
  }

  /** Lays packets out into pages of at most 255 lacing values; EOS (if any) goes on the last page. */
  private emitPages(packets: readonly PendingPacket[], flags: number, alone: boolean): void {
    let segs: number[] = [];
    let body: Uint8Array[] = [];
    let granule = NO_GRANULE;
    let continued = false;
    let pageFlags = flags & FLAG_BOS;
    const out = (last: boolean, nextContinued: boolean): void => {
      this.writePage(
        concatBytes(...body),
        segs,
        granule,
        pageFlags | (continued ? FLAG_CONTINUED : 0) | (last ? flags & FLAG_EOS : 0),
      );
      segs = [];
      body = [];
      granule = NO_GRANULE;
      continued = nextContinued;
      pageFlags = 0;
    };
    for (const p of packets) {
      let off = 0;
      for (let guard = 0; guard < 1_000_000; guard++) {
        const room = MAX_SEGMENTS - segs.length;
        const remaining = p.data.length - off;
        const need = Math.floor(remaining / 255) + 1;
        if (need <= room) {
          for (let i = 0; i < need - 1; i++) segs.push(255);
          segs.push(remaining % 255);
          body.push(p.data.subarray(off));
          granule = p.granule;
          break;
        }
        for (let i = 0; i < room; i++) segs.push(255);
        body.push(p.data.subarray(off, off + room * 255));
        off += room * 255;
        out(false, true);
      }
      if (alone) out(p === packets[packets.length - 1], false);
    }
    if (segs.length > 0) out(true, false);
  }

  private writePage(body: Uint8Array, segs: readonly number[], granule: bigint, flags: number): void {
    const page = new Uint8Array(HEADER_BYTES + segs.length + body.length);
    const dv = new DataView(page.buffer);
    page.set([0x4f, 0x67, 0x67, 0x53], 0);
    page[4] = 0;
    page[5] = flags;
    dv.setBigInt64(6, granule, true);
    dv.setUint32(14, this.serial, true);
    dv.setUint32(18, this.pageSeq++, true);
    dv.setUint32(22, 0, true);
    page[26] = segs.length;
    page.set(segs, HEADER_BYTES);
    page.set(body, HEADER_BYTES + segs.length);
    dv.setUint32(22, oggCrc32(page), true);
    this.chunks.push(page);
  }
}

/** Writes a complete Ogg Opus file from packets in one call. */
export function writeOggOpus(
  packets: Iterable<Uint8Array>,
  opts: OggOpusWriterOptions & { readonly totalSamples48k?: number },
): Uint8Array {
  const w = new OggOpusWriter(opts);
  for (const p of packets) w.writePacket(p);
  return w.finish(opts.totalSamples48k);
}

// ---------------------------------------------------------------------------------------------- reader

export interface OggReadLimits {
  /** Whole input. Default 64 MiB. */
  readonly maxInputBytes?: number;
  /** One page including header. Default OGG_MAX_PAGE_BYTES (65307). */
  readonly maxPageBytes?: number;
  /** One packet, after joining continued segments. Default 65536. */
  readonly maxPacketBytes?: number;
  /** Audio packets in the stream. Default 200,000 (over an hour of 20 ms frames). */
  readonly maxPackets?: number;
}

export interface OggPage {
  readonly flags: number;
  readonly granule: bigint;
  readonly serial: number;
  readonly sequence: number;
  /** Lacing values. */
  readonly segments: readonly number[];
  readonly body: Uint8Array;
  /** Byte offset of the page in the input. */
  readonly offset: number;
}

export interface OggOpusFile {
  readonly serial: number;
  readonly head: OpusHead;
  readonly tags: OpusTags;
  readonly packets: readonly Uint8Array[];
  /** Final granule position (48 kHz, includes pre-skip). */
  readonly finalGranule: number;
  /** Playable duration at 48 kHz: final granule − pre-skip. */
  readonly durationSamples48k: number;
}

/** Parses one page at `offset`, verifying capture pattern, version, flags, bounds and CRC. */
export function parseOggPage(bytes: Uint8Array, offset: number, maxPageBytes = OGG_MAX_PAGE_BYTES): OggPage {
  if (bytes.length - offset < HEADER_BYTES) {
    throw new CodecError('OGG_TRUNCATED', `truncated Ogg page header at byte ${offset}`);
  }
  if (
    bytes[offset] !== 0x4f ||
    bytes[offset + 1] !== 0x67 ||
    bytes[offset + 2] !== 0x67 ||
    bytes[offset + 3] !== 0x53
  ) {
    throw new CodecError('OGG_BAD_CAPTURE', `missing "OggS" capture pattern at byte ${offset}`);
  }
  if (bytes[offset + 4] !== 0)
    throw new CodecError('OGG_BAD_VERSION', `unsupported Ogg version ${bytes[offset + 4]}`);
  const flags = bytes[offset + 5]!;
  if ((flags & ~0x07) !== 0)
    throw new CodecError('OGG_BAD_VERSION', `reserved Ogg header flags set: 0x${flags.toString(16)}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, HEADER_BYTES);
  const granule = dv.getBigInt64(6, true);
  const serial = dv.getUint32(14, true);
  const sequence = dv.getUint32(18, true);
  const storedCrc = dv.getUint32(22, true);
  const nsegs = bytes[offset + 26]!;
  if (bytes.length - offset < HEADER_BYTES + nsegs) {
    throw new CodecError('OGG_TRUNCATED', `truncated Ogg segment table at byte ${offset}`);
  }
  const segments: number[] = [];
  let bodyLen = 0;
  for (let i = 0; i < nsegs; i++) {
    const s = bytes[offset + HEADER_BYTES + i]!;
    segments.push(s);
    bodyLen += s;
  }
  const pageLen = HEADER_BYTES + nsegs + bodyLen;
  if (pageLen > maxPageBytes)
    throw new CodecError('OGG_TOO_LARGE', `Ogg page of ${pageLen} bytes exceeds ${maxPageBytes}`);
  if (bytes.length - offset < pageLen)
    throw new CodecError('OGG_TRUNCATED', `truncated Ogg page body at byte ${offset}`);
  const page = bytes.slice(offset, offset + pageLen);
  page[22] = 0;
  page[23] = 0;
  page[24] = 0;
  page[25] = 0;
  const crc = oggCrc32(page);
  if (crc !== storedCrc) {
    throw new CodecError('OGG_BAD_CRC', `Ogg page ${sequence} at byte ${offset}: CRC mismatch`);
  }
  return {
    flags,
    granule,
    serial,
    sequence,
    segments,
    body: page.subarray(HEADER_BYTES + nsegs),
    offset,
  };
}

function parseOpusHead(p: Uint8Array): OpusHead {
  if (p.length < 19 || new TextDecoder().decode(p.subarray(0, 8)) !== 'OpusHead') {
    throw new CodecError('OPUS_BAD_HEAD', 'first packet is not an OpusHead');
  }
  const dv = new DataView(p.buffer, p.byteOffset, p.length);
  const version = p[8]!;
  if ((version & 0xf0) !== 0)
    throw new CodecError('OPUS_BAD_HEAD', `unsupported OpusHead version ${version}`);
  const channels = p[9]!;
  const mappingFamily = p[18]!;
  if (mappingFamily !== 0) {
    throw new CodecError('OPUS_BAD_HEAD', `unsupported channel mapping family ${mappingFamily} (only 0)`);
  }
  if (channels < 1 || channels > 2) throw new CodecError('OPUS_BAD_HEAD', `bad channel count ${channels}`);
  return {
    version,
    channels,
    preSkip: dv.getUint16(10, true),
    inputSampleRate: dv.getUint32(12, true),
    outputGain: dv.getInt16(16, true),
    mappingFamily,
  };
}

function parseOpusTags(p: Uint8Array): OpusTags {
  const bad = (why: string): CodecError => new CodecError('OPUS_BAD_TAGS', `OpusTags: ${why}`);
  if (p.length < 16 || new TextDecoder().decode(p.subarray(0, 8)) !== 'OpusTags') throw bad('missing magic');
  const dv = new DataView(p.buffer, p.byteOffset, p.length);
  const dec = new TextDecoder('utf-8', { fatal: false });
  const vlen = dv.getUint32(8, true);
  if (vlen > p.length - 16) throw bad('vendor string overruns the packet');
  const vendor = dec.decode(p.subarray(12, 12 + vlen));
  let off = 12 + vlen;
  const count = dv.getUint32(off, true);
  off += 4;
  if (count > (p.length - off) / 4) throw bad(`comment count ${count} overruns the packet`);
  const comments: string[] = [];
  for (let i = 0; i < count; i++) {
    if (p.length - off < 4) throw bad('truncated comment length');
    const len = dv.getUint32(off, true);
    off += 4;
    if (len > p.length - off) throw bad('comment overruns the packet');
    comments.push(dec.decode(p.subarray(off, off + len)));
    off += len;
  }
  return { vendor, comments };
}

/**
 * Reads a single-stream Ogg Opus file (channel mapping family 0). Strict: one logical stream, pages in
 * sequence, CRCs checked, BOS first, EOS last, header packets on their own pages, every limit enforced.
 * Throws only CodecError (or RangeError for bad limits), never anything else, on any input bytes.
 */
export function readOggOpus(bytes: Uint8Array, limits: OggReadLimits = {}): OggOpusFile {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array');
  const maxInput = intIn('maxInputBytes', limits.maxInputBytes ?? 64 * 1024 * 1024, 1, 2 ** 31);
  const maxPage = intIn(
    'maxPageBytes',
    limits.maxPageBytes ?? OGG_MAX_PAGE_BYTES,
    HEADER_BYTES,
    OGG_MAX_PAGE_BYTES,
  );
  const maxPacket = intIn('maxPacketBytes', limits.maxPacketBytes ?? 65536, 1, 2 ** 24);
  const maxPackets = intIn('maxPackets', limits.maxPackets ?? 200_000, 1, 10_000_000);
  if (bytes.length > maxInput)
    throw new CodecError('OGG_TOO_LARGE', `input of ${bytes.length} bytes exceeds ${maxInput}`);
  if (bytes.length === 0) throw new CodecError('OGG_TRUNCATED', 'empty input');

  let offset = 0;
  let serial = -1;
  let expectSeq = 0;
  let head: OpusHead | undefined;
  let tags: OpusTags | undefined;
  const packets: Uint8Array[] = [];
  let partial: Uint8Array[] = [];
  let partialLen = 0;
  let lastGranule = 0n;
  let sawEos = false;
  let totalSamples = 0;
  // Each iteration consumes at least HEADER_BYTES, so the loop is bounded by the input size.
  while (offset < bytes.length) {
    if (sawEos) throw new CodecError('OGG_BAD_STREAM', `data after the EOS page at byte ${offset}`);
    const page = parseOggPage(bytes, offset, maxPage);
    offset += HEADER_BYTES + page.segments.length + page.body.length;
    if (expectSeq === 0) {
      if ((page.flags & FLAG_BOS) === 0)
        throw new CodecError('OGG_BAD_STREAM', 'first page lacks the BOS flag');
      serial = page.serial;
    } else {
      if (page.serial !== serial) {
        throw new CodecError('OGG_BAD_STREAM', 'multiplexed or chained Ogg streams are not supported');
      }
      if ((page.flags & FLAG_BOS) !== 0)
        throw new CodecError('OGG_BAD_STREAM', `BOS flag on page ${page.sequence}`);
    }
    if (page.sequence !== expectSeq) {
      throw new CodecError(
        'OGG_BAD_SEQUENCE',
        `page sequence ${page.sequence}, expected ${expectSeq} (lost page?)`,
      );
    }
    expectSeq++;
    if ((page.flags & FLAG_CONTINUED) !== 0 && partialLen === 0 && partial.length === 0) {
      throw new CodecError(
        'OGG_BAD_STREAM',
        `page ${page.sequence} continues a packet that was never started`,
      );
    }
    if ((page.flags & FLAG_CONTINUED) === 0 && partial.length > 0) {
      throw new CodecError('OGG_BAD_STREAM', `page ${page.sequence} drops an unfinished packet`);
    }
    if ((page.flags & FLAG_EOS) !== 0) sawEos = true;

    let bodyOff = 0;
    let completed = 0;
    for (const seg of page.segments) {
      partial.push(page.body.subarray(bodyOff, bodyOff + seg));
      partialLen += seg;
      bodyOff += seg;
      if (partialLen > maxPacket) {
        throw new CodecError('OGG_TOO_LARGE', `packet exceeds ${maxPacket} bytes on page ${page.sequence}`);
      }
      if (seg < 255) {
        const pkt = concatBytes(...partial);
        partial = [];
        partialLen = 0;
        completed++;
        if (!head) {
          head = parseOpusHead(pkt);
          if (page.sequence !== 0 || page.segments.length !== 1 || page.granule !== 0n) {
            throw new CodecError('OPUS_BAD_HEAD', 'OpusHead must be alone on the first page with granule 0');
          }
        } else if (!tags) {
          tags = parseOpusTags(pkt);
          if (bodyOff !== page.body.length) {
            throw new CodecError('OPUS_BAD_TAGS', 'OpusTags must finish its page (RFC 7845 §3)');
          }
        } else {
          if (packets.length >= maxPackets)
            throw new CodecError('OGG_TOO_LARGE', `more than ${maxPackets} packets`);
          totalSamples += opusPacketSamples48k(pkt);
          packets.push(pkt);
        }
      }
    }
    if (completed > 0 && packets.length > 0 && page.granule !== NO_GRANULE) {
      if (page.granule < lastGranule) {
        throw new CodecError('OGG_BAD_STREAM', `granule position goes backwards on page ${page.sequence}`);
      }
      lastGranule = page.granule;
    } else if (completed === 0 && page.granule !== NO_GRANULE && page.segments.length > 0) {
      throw new CodecError(
        'OGG_BAD_STREAM',
        `page ${page.sequence} completes no packet but has a granule position`,
      );
    }
  }
  if (!head) throw new CodecError('OGG_TRUNCATED', 'no OpusHead');
  if (!tags) throw new CodecError('OGG_TRUNCATED', 'no OpusTags');
  if (partial.length > 0) throw new CodecError('OGG_TRUNCATED', 'stream ends inside a packet');
  if (!sawEos) throw new CodecError('OGG_TRUNCATED', 'stream ends without an EOS page');
  if (lastGranule > BigInt(Number.MAX_SAFE_INTEGER))
    throw new CodecError('OGG_BAD_STREAM', 'granule position too large');
  const finalGranule = Number(lastGranule);
  const duration = finalGranule - head.preSkip;
  if (packets.length > 0 && (duration < 0 || finalGranule > totalSamples)) {
    throw new CodecError(
      'OGG_BAD_STREAM',
      `final granule ${finalGranule} inconsistent with ${totalSamples} samples of packets and pre-skip ${head.preSkip}`,
    );
  }
  return {
    serial,
    head,
    tags,
    packets,
    finalGranule,
    durationSamples48k: Math.max(0, duration),
  };
}
