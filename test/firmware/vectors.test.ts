// Firmware vectors: firmware-v1.json is exactly what the generator makes (either crypto suite), and every manifest, message, decision and malformed case re-checks byte for byte [PLK-13].
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  buildFirmwareVectors,
  FIRMWARE_VECTORS_PATH,
  type FirmwareVectors,
  serializeFirmwareVectors,
} from '../../scripts/gen-firmware-vectors.ts';
import { fromHex, toHex } from '../../shared/bytes.ts';
import { type CryptoSuite, nodeCryptoSuite, sha256, tweetnaclSuite } from '../../shared/crypto.ts';
import { PlushlinkError } from '../../shared/errors.ts';
import {
  checkFirmwareMessage,
  checkFirmwareUpdate,
  createFirmwareManifest,
  decodeFirmwareManifest,
  decodeFirmwareMessage,
  encodeFirmwareMessage,
  FIRMWARE_MANIFEST_FIXED_BYTES,
  FIRMWARE_MANIFEST_MAX_BYTES,
  FIRMWARE_MESSAGE_MAX_BYTES,
  FIRMWARE_REFUSALS,
  type FirmwareDevice,
  verifyFirmwareManifest,
} from '../../shared/firmware.ts';
import { identityFromSecrets, type PrivateIdentity, publicPart } from '../../shared/identity.ts';
import { CONTEXT, LIMITS, MSG } from '../../shared/limits.ts';
import { signedMessage } from '../../shared/signed.ts';

const DOC = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
const V = JSON.parse(readFileSync(FIRMWARE_VECTORS_PATH, 'utf8')) as FirmwareVectors;
const SUITES: CryptoSuite[] = [nodeCryptoSuite(), tweetnaclSuite()];
const h = (hex: string): Uint8Array => fromHex(hex);

function vendor(name: string, crypto: CryptoSuite = SUITES[0]!): PrivateIdentity {
  const v = V.vendors.find((x) => x.name === name);
  if (!v) throw new Error(`no vendor ${name}`);
  return identityFromSecrets('vendor', h(v.signSeed), h(v.boxSecret), crypto);
}

function image(name: string): Uint8Array {
  const hex = V.images[name];
  if (hex === undefined) throw new Error(`no image ${name}`);
  return h(hex);
}

describe('firmware-v1.json', () => {
  it('is exactly what scripts/gen-firmware-vectors.ts generates, with either crypto suite', () => {
    const onDisk = readFileSync(FIRMWARE_VECTORS_PATH, 'utf8');
    for (const crypto of SUITES) expect(serializeFirmwareVectors(buildFirmwareVectors(crypto))).toBe(onDisk);
  });

  it('states the limits of PLK-13.1/13.2: a maximal message stays below the envelope limit', () => {
    expect(V.context).toBe(CONTEXT.FIRMWARE);
    expect(V.limits).toEqual({
      maxImageBytes: 1_048_576,
      maxModelChars: 32,
      manifestFixedBytes: 139,
      manifestMaxBytes: 171,
      messageMaxBytes: 1_048_747,
    });
    expect(FIRMWARE_MANIFEST_FIXED_BYTES).toBe(139);
    expect(FIRMWARE_MANIFEST_MAX_BYTES).toBe(171);
    expect(FIRMWARE_MESSAGE_MAX_BYTES).toBe(LIMITS.maxFirmwareImageBytes + 171);
    expect(FIRMWARE_MESSAGE_MAX_BYTES).toBeLessThan(LIMITS.maxEnvelopeBytes);
  });

  it('vendor identities derive from their secrets and have role vendor', () => {
    for (const v of V.vendors) {
      const id = vendor(v.name);
      expect(id.role).toBe('vendor');
      expect(id.id).toBe(v.id);
      expect(toHex(id.signPublicKey)).toBe(v.signPublicKey);
    }
  });

  for (const m of V.manifests) {
    it(`manifest ${m.name}: decodes field by field, verifies, and re-signs to the same bytes`, () => {
      const bytes = h(m.hex);
      expect(bytes[0]).toBe(MSG.FIRMWARE);
      const d = decodeFirmwareManifest(bytes);
      expect({
        vendorId: d.vendorId,
        model: d.model,
        version: d.version,
        minVersion: d.minVersion,
        imageSize: d.imageSize,
        imageSha256: toHex(d.imageSha256),
        releasedAt: d.releasedAt,
        signature: toHex(d.signature),
        size: d.size,
      }).toEqual(m.decoded);
      expect(d.size).toBe(FIRMWARE_MANIFEST_FIXED_BYTES + m.params.model.length);
      expect(toHex(signedMessage(CONTEXT.FIRMWARE, d.body))).toBe(m.signedMessage);
      expect(m.decoded.imageSha256).toBe(toHex(sha256(image(m.params.image))));
      for (const crypto of SUITES) {
        const signer = vendor(m.signer, crypto);
        expect(verifyFirmwareManifest(bytes, publicPart(signer), crypto).vendorId).toBe(signer.id);
        const again = createFirmwareManifest({
          vendor: signer,
          ...m.params,
          image: image(m.params.image),
          crypto,
        });
        expect(toHex(again)).toBe(m.hex);
      }
    });
  }

  it('the distribution message is manifest ‖ image, and splits back into both', () => {
    const manifest = h(V.manifests.find((m) => m.name === V.message.manifest)!.hex);
    const img = image(V.message.image);
    const msg = h(V.message.hex);
    expect(toHex(encodeFirmwareMessage(manifest, img))).toBe(V.message.hex);
    expect(msg.length).toBe(manifest.length + img.length);
    const parts = decodeFirmwareMessage(msg);
    expect(toHex(parts.manifestBytes)).toBe(toHex(manifest));
    expect(toHex(parts.image)).toBe(toHex(img));
  });

  it('docs/PROTOCOL.md PLK-13.4 lists the refusal reasons in check order with their meanings', () => {
    const table = DOC.slice(DOC.indexOf('| firmware refusal |'));
    const rows: [string, string][] = [];
    for (const line of table.split('\n').slice(2)) {
      const m = /^\|\s*`([a-z-]+)`\s*\|\s*(.*?)\s*\|\s*$/.exec(line);
      if (!m) break;
      rows.push([m[1]!, m[2]!]);
    }
    expect(rows).toEqual(Object.entries(FIRMWARE_REFUSALS));
  });

  it('covers every refusal reason of PLK-13.4, and install and current', () => {
    const seen = new Set(V.decisions.map((d) => d.reason ?? d.action));
    for (const r of [...Object.keys(FIRMWARE_REFUSALS), 'install', 'current']) expect(seen, r).toContain(r);
  });

  for (const d of V.decisions) {
    it(`decision: ${d.name} → ${d.reason ?? d.action}`, () => {
      for (const crypto of SUITES) {
        const device: FirmwareDevice = {
          model: d.device.model,
          vendor: publicPart(vendor(d.device.vendor, crypto)),
          version: d.device.version,
          sha256: d.device.sha256 === null ? null : h(d.device.sha256),
          antiRollback: d.device.antiRollback,
        };
        const r = checkFirmwareUpdate(device, h(d.manifest), h(d.image), crypto);
        expect(r.action).toBe(d.action);
        if (r.action === 'refuse') expect(r.reason).toBe(d.reason);
        // The same decision from the whole inbox message, where the message can be built.
        const whole = new Uint8Array([...h(d.manifest), ...h(d.image)]);
        const viaMessage = checkFirmwareMessage(device, whole, crypto);
        if (d.reason !== 'malformed') {
          expect(viaMessage.action).toBe(d.action);
          if (viaMessage.action === 'refuse') expect(viaMessage.reason).toBe(d.reason);
        } else expect(viaMessage.action).toBe('refuse');
      }
    });
  }

  for (const v of V.invalid) {
    it(`malformed manifest: ${v.name} → ${v.error}`, () => {
      let caught: unknown;
      try {
        verifyFirmwareManifest(h(v.hex), publicPart(vendor('acme')));
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(PlushlinkError);
      expect((caught as PlushlinkError).code).toBe(v.error);
    });
  }
});
