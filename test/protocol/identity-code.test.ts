// Identity codes [PLK-1.5] and the Buffer-free base64url and hex they and the page use: round trips, refusals of a wrong role or a mangled code, equality with Node's codecs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url } from '../../shared/base64url.ts';
import { fromHex, toHex } from '../../shared/bytes.ts';
import { PlushlinkError } from '../../shared/errors.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { IDENTITY_CODE_CHARS, identityCode, parseIdentityCode } from '../../shared/identity-code.ts';
import { seededRandom } from '../../shared/random.ts';

const code = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    if (err instanceof PlushlinkError) return err.code;
    throw err;
  }
  return 'ok';
};

describe('identity codes [PLK-1.5]', () => {
  const mum = publicPart(generateIdentity('parent', seededRandom('identity-code/mum')));

  it('round-trips a parent’s public keys in 101 characters, public values only', () => {
    const text = identityCode(mum);
    expect(text).toMatch(/^plkid1\.[A-Za-z0-9_-]{94}$/);
    expect(text.length).toBe(IDENTITY_CODE_CHARS);
    expect(parseIdentityCode(text, 'parent')).toEqual(mum);
    expect(parseIdentityCode(`  ${text}\n`, 'parent').id).toBe(mum.id); // pasted with whitespace
  });

  it('refuses another role, a gateway identity, a truncated code and any changed character', () => {
    const text = identityCode(mum);
    expect(code(() => parseIdentityCode(text, 'toy'))).toBe('PLK_E_FIELD');
    expect(code(() => identityCode(publicPart(generateIdentity('gateway'))))).toBe('PLK_E_FIELD');
    expect(code(() => parseIdentityCode(text.slice(0, -1), 'parent'))).toBe('PLK_E_FIELD');
    expect(code(() => parseIdentityCode(`plkid2${text.slice(6)}`, 'parent'))).toBe('PLK_E_FIELD');
    for (let i = 7; i < text.length; i++) {
      const c = text[i] === 'A' ? 'B' : 'A';
      const mangled = text.slice(0, i) + c + text.slice(i + 1);
      expect(['PLK_E_ID_MISMATCH', 'PLK_E_FIELD'], `position ${i}`).toContain(
        code(() => parseIdentityCode(mangled, 'parent')),
      );
    }
  });
});

describe('Buffer-free codecs (shared/ runs in the browser too)', () => {
  it('base64url equals Node’s, and decodes back; other alphabets and impossible lengths are refused', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = toBase64Url(bytes);
        expect(text).toBe(Buffer.from(bytes).toString('base64url'));
        expect(Buffer.from(fromBase64Url(text)).equals(Buffer.from(bytes))).toBe(true);
      }),
    );
    for (const bad of ['a+b', 'ab/c', 'abc=', 'é', 'a'])
      expect(
        code(() => fromBase64Url(bad)),
        bad,
      ).toBe('PLK_E_FIELD');
    expect(code(() => fromBase64Url('AB'))).toBe('PLK_E_FIELD'); // non-zero trailing bits
  });

  it('fromHex equals Node’s hex decoder, upper and lower case', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const hex = toHex(bytes);
        expect(Buffer.from(fromHex(hex)).equals(Buffer.from(bytes))).toBe(true);
        expect(Buffer.from(fromHex(hex.toUpperCase())).equals(Buffer.from(bytes))).toBe(true);
      }),
    );
  });
});
