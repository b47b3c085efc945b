// Signature framing [PLK-2.3]: verification through the reused buffer gives the same answers as over a fresh copy, at every size.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nodeCryptoSuite } from '../../shared/crypto.ts';
import { PlushlinkError } from '../../shared/errors.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { CONTEXT } from '../../shared/limits.ts';
import { seededRandom } from '../../shared/random.ts';
import { signBody, signedMessage, verifyBody } from '../../shared/signed.ts';
import { fcParams } from '../helpers/fc.ts';

const crypto = nodeCryptoSuite();
const toy = generateIdentity('toy', seededRandom('signed-test'));

function verifies(context: string, body: Uint8Array, sig: Uint8Array): boolean {
  try {
    verifyBody(crypto, toy.signPublicKey, context, body, sig, 'test');
    return true;
  } catch (err) {
    expect(err).toBeInstanceOf(PlushlinkError);
    expect((err as PlushlinkError).code).toBe('PLK_E_BAD_SIGNATURE');
    return false;
  }
}

describe('verifyBody', () => {
  it('matches a verification over a fresh copy for any body, context and sequence of sizes (seeded)', () => {
    const contexts = [CONTEXT.CLIP, CONTEXT.RECEIPT];
    fc.assert(
      fc.property(
        // sizes on both sides of the reused buffer's first size (32 KiB) and of its limit (256 KiB)
        fc.array(
          fc.record({
            size: fc.oneof(fc.nat(64), fc.integer({ min: 32_700, max: 33_000 }), fc.constant(300_000)),
            context: fc.integer({ min: 0, max: 1 }),
            flip: fc.option(fc.nat(), { nil: undefined }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        (steps) => {
          for (const st of steps) {
            const context = contexts[st.context] ?? CONTEXT.CLIP;
            const body = seededRandom(`body-${st.size}-${st.context}`)(st.size);
            const sig = signBody(crypto, toy.signSeed, context, body);
            expect(crypto.verify(toy.signPublicKey, signedMessage(context, body), sig)).toBe(true);
            expect(verifies(context, body, sig)).toBe(true);
            // the other context never verifies (domain separation survives the reused buffer)
            expect(verifies(contexts[1 - st.context] ?? CONTEXT.RECEIPT, body, sig)).toBe(false);
            if (st.flip !== undefined && body.length > 0) {
              const bad = body.slice();
              const at = st.flip % bad.length;
              bad[at] = (bad[at] ?? 0) ^ 1;
              expect(verifies(context, bad, sig)).toBe(false);
            }
          }
        },
      ),
      fcParams({ numRuns: 40 }),
    );
  });
});
