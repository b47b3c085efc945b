// Base64url (RFC 4648 §5, no padding) without Buffer: connect tokens as MQTT passwords [PLK-3.1] and identity codes [PLK-1.5], in Node and in the browser.
import { PlushlinkError } from './errors.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const CODES = Uint8Array.from(ALPHABET, (c) => c.charCodeAt(0));
const VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET.charCodeAt(i)] = i;
const ASCII = new TextDecoder();

/** RFC 4648 §5 base64url, no padding. */
export function toBase64Url(bytes: Uint8Array): string {
  const out = new Uint8Array(Math.ceil((bytes.length * 4) / 3));
  let n = 0;
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[n++] = CODES[v >> 18]!;
    out[n++] = CODES[(v >> 12) & 63]!;
    out[n++] = CODES[(v >> 6) & 63]!;
    out[n++] = CODES[v & 63]!;
  }
  const rest = bytes.length - i;
  if (rest > 0) {
    const v = (bytes[i]! << 16) | (rest === 2 ? bytes[i + 1]! << 8 : 0);
    out[n++] = CODES[v >> 18]!;
    out[n++] = CODES[(v >> 12) & 63]!;
    if (rest === 2) out[n++] = CODES[(v >> 6) & 63]!;
  }
  return ASCII.decode(out.subarray(0, n));
}

/** Decodes RFC 4648 §5 base64url without padding; anything else is PLK_E_FIELD, naming `field`. */
export function fromBase64Url(text: string, field = 'base64url'): Uint8Array {
  if (typeof text !== 'string') throw new PlushlinkError('PLK_E_TYPE', `${field} must be a string`);
  if (text.length % 4 === 1) throw new PlushlinkError('PLK_E_FIELD', `${field} has an impossible length`);
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? VALUE[c]! : -1;
    if (v < 0) throw new PlushlinkError('PLK_E_FIELD', `${field} is not base64url`);
    value = ((value << 6) | v) & 0xffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (value >> bits) & 0xff;
    }
  }
  if ((value & ((1 << bits) - 1)) !== 0)
    throw new PlushlinkError('PLK_E_FIELD', `${field} has non-zero trailing bits`);
  return out;
}
