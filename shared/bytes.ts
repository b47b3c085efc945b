// Byte helpers: hex, base32, constant-time compare and a bounds-checked big-endian reader/writer.
import { PlushlinkError } from './errors.ts';

const HEX = '0123456789abcdef';

/**
 * Text from ASCII codes in one flat string. Ids, hex keys and topics are kept for as long as a
 * connection lives (cache keys, session maps): built with `+=`, each would be a chain of V8 cons
 * strings, ~32 bytes per piece (about 1 kB per cached 32-byte key), until something flattens it.
 */
const ASCII = new TextDecoder();
const HEX_CODES = Uint8Array.from(HEX, (c) => c.charCodeAt(0));

export function toHex(bytes: Uint8Array): string {
  const out = new Uint8Array(bytes.length * 2);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    out[2 * i] = HEX_CODES[b >> 4]!;
    out[2 * i + 1] = HEX_CODES[b & 15]!;
  }
  return ASCII.decode(out);
}

/** Decodes lowercase or uppercase hex; `expectedLength` (bytes) is checked when given. */
export function fromHex(text: string, field = 'hex', expectedLength?: number): Uint8Array {
  if (typeof text !== 'string') throw new PlushlinkError('PLK_E_TYPE', `${field} must be a hex string`);
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new PlushlinkError('PLK_E_FIELD', `${field} is not valid hex`);
  }
  if (expectedLength !== undefined && text.length !== expectedLength * 2) {
    throw new PlushlinkError(
      'PLK_E_FIELD',
      `${field} must be ${expectedLength} bytes, got ${text.length / 2}`,
    );
  }
  // No Buffer: shared/ also runs in the browser page (web/).
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
const B32_CODES = Uint8Array.from(B32, (c) => c.charCodeAt(0));

/** RFC 4648 base32, lowercase, no padding [PLK-1.2]. */
export function toBase32(bytes: Uint8Array): string {
  const out = new Uint8Array(Math.ceil((bytes.length * 8) / 5));
  let n = 0;
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = ((value << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out[n++] = B32_CODES[(value >>> (bits - 5)) & 31]!;
      bits -= 5;
    }
  }
  if (bits > 0) out[n++] = B32_CODES[(value << (5 - bits)) & 31]!;
  return ASCII.decode(out.subarray(0, n));
}

export function fromBase32(text: string, field = 'base32'): Uint8Array {
  if (typeof text !== 'string') throw new PlushlinkError('PLK_E_TYPE', `${field} must be a base32 string`);
  if (!/^[a-z2-7]*$/.test(text)) throw new PlushlinkError('PLK_E_FIELD', `${field} is not lowercase base32`);
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let bits = 0;
  let value = 0;
  let i = 0;
  for (const ch of text) {
    value = ((value << 5) | B32.indexOf(ch)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out[i++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  if (bits > 0 && (value & ((1 << bits) - 1)) !== 0) {
    throw new PlushlinkError('PLK_E_FIELD', `${field} has non-zero trailing bits`);
  }
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Constant-time equality for equal-length inputs (length itself is not secret). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Throws PLK_E_TYPE unless `value` is a Uint8Array (Buffers are Uint8Arrays). */
export function assertBytes(value: unknown, field: string, length?: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new PlushlinkError('PLK_E_TYPE', `${field} must be a Uint8Array`);
  if (length !== undefined && value.length !== length) {
    throw new PlushlinkError('PLK_E_FIELD', `${field} must be ${length} bytes, got ${value.length}`);
  }
}

/** Big-endian writer into a buffer of known final size. */
export class ByteWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  offset = 0;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  u8(v: number): this {
    this.view.setUint8(this.offset, v);
    this.offset += 1;
    return this;
  }
  u16(v: number): this {
    this.view.setUint16(this.offset, v);
    this.offset += 2;
    return this;
  }
  u32(v: number): this {
    this.view.setUint32(this.offset, v);
    this.offset += 4;
    return this;
  }
  /** Unsigned 64-bit from a safe integer [PLK-2.1]. */
  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new PlushlinkError('PLK_E_FIELD', `u64 out of range: ${v}`);
    this.view.setUint32(this.offset, Math.floor(v / 2 ** 32));
    this.view.setUint32(this.offset + 4, v >>> 0);
    this.offset += 8;
    return this;
  }
  raw(b: Uint8Array): this {
    this.bytes.set(b, this.offset);
    this.offset += b.length;
    return this;
  }
}

/** Big-endian reader that throws PLK_E_TRUNCATED instead of reading past the end. */
export class ByteReader {
  private readonly view: DataView;
  offset = 0;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get remaining(): number {
    return this.bytes.length - this.offset;
  }
  private need(n: number, field: string): void {
    if (this.offset + n > this.bytes.length) {
      throw new PlushlinkError('PLK_E_TRUNCATED', `${field} needs ${n} bytes, ${this.remaining} left`);
    }
  }
  u8(field: string): number {
    this.need(1, field);
    return this.view.getUint8(this.offset++);
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.view.getUint16(this.offset);
    this.offset += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.offset);
    this.offset += 4;
    return v;
  }
  /** Unsigned 64-bit; values above 2^53-1 are refused with PLK_E_LIMIT [PLK-2.1]. */
  u64(field: string): number {
    this.need(8, field);
    const hi = this.view.getUint32(this.offset);
    const lo = this.view.getUint32(this.offset + 4);
    this.offset += 8;
    if (hi > 0x1fffff) throw new PlushlinkError('PLK_E_LIMIT', `${field} exceeds 2^53-1`);
    return hi * 2 ** 32 + lo;
  }
  /** A view (no copy) of the next `n` bytes. */
  raw(n: number, field: string): Uint8Array {
    this.need(n, field);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
  end(what: string): void {
    if (this.remaining !== 0)
      throw new PlushlinkError('PLK_E_TRAILING', `${this.remaining} bytes after ${what}`);
  }
}
