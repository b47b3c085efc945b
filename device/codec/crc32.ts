// Ogg page CRC-32 (RFC 3533 §6): polynomial 0x04c11db7, MSB-first, init 0, no final xor; table-driven.
//
// Hand-written on purpose: it is 20 lines, fully specified by the Ogg spec, and differs from the common
// zlib CRC-32 (which is reflected with init/xorout 0xffffffff), so no dependency provides it as-is.

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let bit = 0; bit < 8; bit++) {
      r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    }
    table[i] = r >>> 0;
  }
  return table;
})();

/** CRC-32 of `bytes` as used in Ogg page headers (continues from `crc`, default 0). */
export function oggCrc32(bytes: Uint8Array, crc = 0): number {
  let c = crc >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    c = ((c << 8) ^ TABLE[((c >>> 24) ^ bytes[i]!) & 0xff]!) >>> 0;
  }
  return c >>> 0;
}
