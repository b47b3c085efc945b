// Tamper matrix: every manifest byte changed, every image bit flipped, lengths changed, random bytes — a release is refused with the reason of its region, and parsers throw only PlushlinkError [PLK-13.4].
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../shared/bytes.ts';
import { sha256 } from '../../shared/crypto.ts';
import { isPlushlinkError } from '../../shared/errors.ts';
import {
  checkFirmwareMessage,
  checkFirmwareUpdate,
  createFirmwareManifest,
  decodeFirmwareManifest,
  decodeFirmwareMessage,
  encodeFirmwareMessage,
  type FirmwareDevice,
  type FirmwareRefusal,
  verifyFirmwareManifest,
} from '../../shared/firmware.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { ID_BYTES } from '../../shared/limits.ts';
import { seededRandom } from '../../shared/random.ts';

const MODEL = 'plushbear-1';
const vendor = generateIdentity('vendor', seededRandom('tamper/vendor'));
const image = seededRandom('tamper/image')(256);
const manifest = createFirmwareManifest({
  vendor,
  model: MODEL,
  version: 5,
  minVersion: 3,
  image,
  releasedAt: Date.UTC(2026, 0, 2),
});
const message = encodeFirmwareMessage(manifest, image);
const device: FirmwareDevice = {
  model: MODEL,
  vendor: publicPart(vendor),
  version: 4,
  sha256: null,
  antiRollback: 2,
};

/** The refusals a change of manifest byte `i` may cause (PLK-13.1 layout, PLK-13.4 order). */
function expectedFor(i: number): readonly FirmwareRefusal[] {
  const vendorEnd = 2 + ID_BYTES;
  if (i < 2) return ['malformed']; // type, version
  if (i < vendorEnd) return ['wrong-vendor']; // the vendor id is checked before the signature
  if (i >= manifest.length - 64) return ['bad-signature'];
  // Model length, model, integers, hash, time: either the structure breaks or the signature does.
  return ['malformed', 'bad-signature'];
}

function throwsOnlyPlushlinkErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!isPlushlinkError(err)) throw err;
  }
}

describe('firmware tamper matrix', () => {
  it('the untampered release installs', () => {
    expect(checkFirmwareMessage(device, message).action).toBe('install');
    expect(checkFirmwareUpdate(device, manifest, image).action).toBe('install');
  });

  it('every byte of the manifest, changed in every way tried, is refused with the reason of its region', () => {
    let checked = 0;
    for (let i = 0; i < manifest.length; i++) {
      for (const mask of [0x01, 0x02, 0x10, 0x80, 0xff]) {
        const m = message.slice();
        m[i]! ^= mask;
        const whole = checkFirmwareMessage(device, m);
        expect(whole.action, `byte ${i} ^ ${mask}`).toBe('refuse');
        if (whole.action === 'refuse')
          expect(expectedFor(i), `byte ${i} ^ ${mask}: ${whole.reason}`).toContain(whole.reason);
        // The manifest alone, beside the intact image: same regions.
        const alone = checkFirmwareUpdate(device, m.subarray(0, manifest.length), image);
        expect(alone.action).toBe('refuse');
        if (alone.action === 'refuse') expect(expectedFor(i)).toContain(alone.reason);
        checked++;
      }
    }
    expect(checked).toBe(manifest.length * 5);
  });

  it('every bit of the image, flipped, is a hash mismatch', () => {
    for (let bit = 0; bit < image.length * 8; bit++) {
      const m = message.slice();
      m[manifest.length + (bit >> 3)]! ^= 1 << (bit & 7);
      const r = checkFirmwareMessage(device, m);
      expect(r.action === 'refuse' && r.reason, `bit ${bit}`).toBe('hash-mismatch');
    }
  });

  it('an image cut short, extended or empty is a size mismatch', () => {
    for (const img of [image.subarray(0, 255), new Uint8Array([...image, 0]), new Uint8Array(0)]) {
      const r = checkFirmwareUpdate(device, manifest, img);
      expect(r.action === 'refuse' && r.reason).toBe('size-mismatch');
    }
    const short = checkFirmwareMessage(device, message.subarray(0, message.length - 1));
    expect(short.action === 'refuse' && short.reason).toBe('size-mismatch');
  });

  it('a message cut inside the manifest, or a bare image, is malformed', () => {
    for (let n = 0; n < manifest.length; n++) {
      const r = checkFirmwareMessage(device, message.subarray(0, n));
      expect(r.action === 'refuse' && r.reason, `cut at ${n}`).toBe('malformed');
    }
    const bare = checkFirmwareMessage(device, image);
    expect(bare.action === 'refuse' && bare.reason).toBe('malformed');
  });

  it('a message above the limit is refused before it is split (PLK_E_LIMIT)', () => {
    const huge = new Uint8Array(1_048_748);
    huge.set(message);
    expect(() => decodeFirmwareMessage(huge)).toThrow(expect.objectContaining({ code: 'PLK_E_LIMIT' }));
    const r = checkFirmwareMessage(device, huge);
    expect(r.action === 'refuse' && r.reason).toBe('malformed');
  });

  it('random bytes: decoders throw only PlushlinkError, the decision never throws and never installs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, typed) => {
        const input = typed && bytes.length > 0 ? Uint8Array.from([0x06, 0x01, ...bytes]) : bytes;
        throwsOnlyPlushlinkErrors(() => decodeFirmwareManifest(input));
        throwsOnlyPlushlinkErrors(() => decodeFirmwareMessage(input));
        throwsOnlyPlushlinkErrors(() => verifyFirmwareManifest(input, device.vendor));
        expect(checkFirmwareMessage(device, input).action).toBe('refuse');
      }),
      { numRuns: 500 },
    );
  });

  it('random edits of a valid release never install anything but the original bytes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: message.length - 1 }), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        (edits) => {
          const m = message.slice();
          for (const [i, x] of edits) m[i]! ^= x;
          const r = checkFirmwareMessage(device, m);
          if (r.action !== 'refuse') expect(toHex(sha256(m))).toBe(toHex(sha256(message)));
        },
      ),
      { numRuns: 300 },
    );
  });
});
