// Builds small, well-formed Ogg Opus files (RFC 3533 pages with CRC, RFC 7845 headers) with fake packets for tests and vectors.
import { concatBytes } from '../../shared/bytes.ts';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

function oggCrc(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ b) & 0xff]!) >>> 0;
  return crc >>> 0;
}

function page(body: Uint8Array, granule: bigint, flags: number, serial: number, seqNo: number): Uint8Array {
  const segs: number[] = [];
  let left = body.length;
  while (left >= 255) {
    segs.push(255);
    left -= 255;
  }
  segs.push(left);
  if (segs.length > 255) throw new RangeError('fake-ogg: packet too large for one page');
  const out = new Uint8Array(27 + segs.length + body.length);
  const dv = new DataView(out.buffer);
  out.set([0x4f, 0x67, 0x67, 0x53], 0);
  out[4] = 0;
  out[5] = flags;
  dv.setBigInt64(6, granule, true);
  dv.setUint32(14, serial, true);
  dv.setUint32(18, seqNo, true);
  out[26] = segs.length;
  out.set(segs, 27);
  out.set(body, 27 + segs.length);
  dv.setUint32(22, oggCrc(out), true);
  return out;
}

export interface FakeOggOptions {
  /** Playable duration in ms (multiple of 20). */
  durationMs: number;
  channels?: number;
  inputSampleRate?: number;
  preSkip?: number;
  /** Bytes per fake 20 ms packet. */
  packetBytes?: number;
  serial?: number;
}

/** A deterministic Ogg Opus stream: OpusHead, OpusTags, then fake 20 ms packets (TOC 0xf8: CELT FB 20 ms, mono). */
export function fakeOggOpus(opts: FakeOggOptions): Uint8Array {
  const channels = opts.channels ?? 1;
  const preSkip = opts.preSkip ?? 312;
  const serial = opts.serial ?? 0x504c4b31;
  const head = new Uint8Array(19);
  head.set(new TextEncoder().encode('OpusHead'), 0);
  const hv = new DataView(head.buffer);
  head[8] = 1;
  head[9] = channels;
  hv.setUint16(10, preSkip, true);
  hv.setUint32(12, opts.inputSampleRate ?? 16000, true);
  const vendor = new TextEncoder().encode('plushlink-fake');
  const tags = new Uint8Array(8 + 4 + vendor.length + 4);
  tags.set(new TextEncoder().encode('OpusTags'), 0);
  new DataView(tags.buffer).setUint32(8, vendor.length, true);
  tags.set(vendor, 12);
  const pages: Uint8Array[] = [page(head, 0n, 0x02, serial, 0), page(tags, 0n, 0, serial, 1)];
  const frames = Math.ceil(opts.durationMs / 20);
  const packetBytes = opts.packetBytes ?? 60;
  let granule = 0n;
  let seq = 2;
  for (let f = 0; f < frames; f += 10) {
    const n = Math.min(10, frames - f);
    const body = new Uint8Array(n * packetBytes);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31 + f) & 0xff;
    for (let k = 0; k < n; k++) body[k * packetBytes] = 0xf8; // TOC: CELT FB 20 ms, mono, 1 frame
    granule += BigInt(n * 960);
    const last = f + n >= frames;
    const g = last ? BigInt(preSkip) + BigInt(Math.round(opts.durationMs * 48)) : granule;
    // One page per 10 packets: lacing of equal-size packets.
    const segs: number[] = [];
    for (let k = 0; k < n; k++) {
      let left = packetBytes;
      while (left >= 255) {
        segs.push(255);
        left -= 255;
      }
      segs.push(left);
    }
    const out = new Uint8Array(27 + segs.length + body.length);
    const dv = new DataView(out.buffer);
    out.set([0x4f, 0x67, 0x67, 0x53], 0);
    out[5] = last ? 0x04 : 0;
    dv.setBigInt64(6, g, true);
    dv.setUint32(14, serial, true);
    dv.setUint32(18, seq++, true);
    out[26] = segs.length;
    out.set(segs, 27);
    out.set(body, 27 + segs.length);
    dv.setUint32(22, oggCrc(out), true);
    pages.push(out);
  }
  return concatBytes(...pages);
}
