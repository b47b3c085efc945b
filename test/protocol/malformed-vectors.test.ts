// Malformed inputs breaking several rules at once fail with the code [PLK-10.1] says wins (test/vectors/plushlink-v1-malformed.json).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  codeOf,
  generateMalformedVectors,
  MALFORMED_VECTORS_PATH,
  type MalformedVector,
} from '../../scripts/gen-malformed-vectors.ts';

const file = JSON.parse(readFileSync(MALFORMED_VECTORS_PATH, 'utf8')) as { vectors: MalformedVector[] };

describe('malformed-input vectors [PLK-10.1]', () => {
  it('are exactly what scripts/gen-malformed-vectors.ts generates', () => {
    expect(file).toEqual(generateMalformedVectors());
  });

  it('cover every fixed-size object at 129 and 131 bytes, and trailing bytes on the variable-size ones', () => {
    const names = file.vectors.map((v) => v.name);
    for (const o of ['token', 'proof', 'receipt'])
      expect(
        names.some((n) => n.startsWith(`${o} of 131`)),
        o,
      ).toBe(true);
    for (const o of ['envelope', 'roster'])
      expect(
        names.some((n) => n.startsWith(`${o} with one byte after the end`)),
        o,
      ).toBe(true);
  });

  for (const v of file.vectors) {
    it(`${v.object}: ${v.name} → ${v.code}`, () => {
      expect(codeOf(v.object, new Uint8Array(Buffer.from(v.hex, 'hex')))).toBe(v.code);
    });
  }
});
