// AES-CMAC and the LE Secure Connections functions against RFC 4493 §4 and Core Spec Vol 3 Part H Appendix D.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { aes128, aesCmac } from '../../device/ble/cmac.ts';
import {
  f4,
  f5,
  f6,
  formatSixDigits,
  g2,
  g2Raw,
  generateP256KeyPair,
  p256Dh,
  p256FromPrivate,
} from '../../device/ble/pairing-crypto.ts';
import { SeededRandom } from '../../device/ble/random.ts';

interface Vectors {
  rfc4493: { key: string; cases: { message: string; mac: string }[] };
  p256: Record<'privateA' | 'privateB' | 'publicAx' | 'publicAy' | 'publicBx' | 'publicBy' | 'dhKey', string>;
  f4: { u: string; v: string; x: string; z: number; out: string };
  f5: Record<'w' | 'n1' | 'n2' | 'a1' | 'a2' | 'macKey' | 'ltk', string>;
  f6: Record<'w' | 'n1' | 'n2' | 'r' | 'ioCap' | 'a1' | 'a2' | 'out', string>;
  g2: { u: string; v: string; x: string; y: string; raw: string; sixDigits: number };
}

const V = JSON.parse(
  readFileSync(
    new URL('./vectors/rfc4493-and-bt-core-v5-vol3-partH-appendixD.json', import.meta.url),
    'utf8',
  ),
) as Vectors;
const h = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('AES-128 and AES-CMAC', () => {
  it('AES-128 matches FIPS-197 Appendix C.1', () => {
    const out = aes128(h('000102030405060708090a0b0c0d0e0f'), h('00112233445566778899aabbccddeeff'));
    expect(hex(out)).toBe('69c4e0d86a7b0430d8cdb78070b4c55a');
  });

  it.each(V.rfc4493.cases.map((c) => [c.message.length / 2, c] as const))(
    'RFC 4493 §4 example with %i-byte message',
    (_len, c) => {
      expect(hex(aesCmac(h(V.rfc4493.key), h(c.message)))).toBe(c.mac);
    },
  );

  it('rejects wrong key sizes and types', () => {
    expect(() => aesCmac(new Uint8Array(15), new Uint8Array(0))).toThrow(RangeError);
    expect(() => aesCmac('k' as unknown as Uint8Array, new Uint8Array(0))).toThrow(TypeError);
  });
});

describe('LE Secure Connections functions (Core Spec Vol 3 Part H Appendix D)', () => {
  it('D.1: P-256 sample keys and DHKey (Node ECDH)', () => {
    const a = p256FromPrivate(h(V.p256.privateA));
    const b = p256FromPrivate(h(V.p256.privateB));
    expect(hex(a.x)).toBe(V.p256.publicAx);
    expect(hex(a.y)).toBe(V.p256.publicAy);
    expect(hex(b.x)).toBe(V.p256.publicBx);
    expect(hex(b.y)).toBe(V.p256.publicBy);
    expect(hex(p256Dh(a, b.x, b.y)!)).toBe(V.p256.dhKey);
    expect(hex(p256Dh(b, a.x, a.y)!)).toBe(V.p256.dhKey);
  });

  it('D.2: f4', () => {
    const t = V.f4;
    expect(hex(f4(h(t.u), h(t.v), h(t.x), t.z))).toBe(t.out);
  });

  it('D.3: f5 gives MacKey and LTK', () => {
    const t = V.f5;
    const { macKey, ltk } = f5(h(t.w), h(t.n1), h(t.n2), h(t.a1), h(t.a2));
    expect(hex(macKey)).toBe(t.macKey);
    expect(hex(ltk)).toBe(t.ltk);
  });

  it('D.4: f6', () => {
    const t = V.f6;
    expect(hex(f6(h(t.w), h(t.n1), h(t.n2), h(t.r), h(t.ioCap), h(t.a1), h(t.a2)))).toBe(t.out);
  });

  it('D.5: g2 and the six digits shown to the user', () => {
    const t = V.g2;
    expect(g2Raw(h(t.u), h(t.v), h(t.x), h(t.y))).toBe(Number.parseInt(t.raw, 16));
    expect(g2(h(t.u), h(t.v), h(t.x), h(t.y))).toBe(t.sixDigits);
    expect(formatSixDigits(t.sixDigits)).toBe('938554');
    expect(formatSixDigits(42)).toBe('000042');
  });

  it('an off-curve peer key yields no DHKey (invalid-curve check, CVE-2018-5383)', () => {
    const a = generateP256KeyPair(new SeededRandom(1).source);
    const badY = Uint8Array.from(a.y);
    badY[31]! ^= 1;
    expect(p256Dh(a, a.x, badY)).toBeUndefined();
  });

  it('generated key pairs are deterministic from the seed and agree on the DHKey', () => {
    const a1 = generateP256KeyPair(new SeededRandom(7).source);
    const a2 = generateP256KeyPair(new SeededRandom(7).source);
    const b = generateP256KeyPair(new SeededRandom(8).source);
    expect(hex(a1.x)).toBe(hex(a2.x));
    expect(hex(p256Dh(a1, b.x, b.y)!)).toBe(hex(p256Dh(b, a1.x, a1.y)!));
  });

  it('validates lengths, naming the field', () => {
    expect(() => f4(new Uint8Array(31), new Uint8Array(32), new Uint8Array(16), 0)).toThrow(/U must be 32/);
    expect(() => g2(new Uint8Array(32), new Uint8Array(32), new Uint8Array(16), new Uint8Array(15))).toThrow(
      /Y must be 16/,
    );
  });
});
