// Generates test/vectors/firmware-v1.json (firmware manifest, distribution message and install-decision vectors) deterministically from fixed seeds: `npx tsx scripts/gen-firmware-vectors.ts [--check]`.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { toHex } from '../shared/bytes.ts';
import { type CryptoSuite, defaultCrypto, sha256 } from '../shared/crypto.ts';
import { PlushlinkError } from '../shared/errors.ts';
import {
  checkFirmwareUpdate,
  createFirmwareManifest,
  encodeFirmwareMessage,
  FIRMWARE_MANIFEST_FIXED_BYTES,
  FIRMWARE_MANIFEST_MAX_BYTES,
  FIRMWARE_MESSAGE_MAX_BYTES,
  type FirmwareDevice,
  type FirmwareRefusal,
  verifyFirmwareManifest,
} from '../shared/firmware.ts';
import { generateIdentity, type PrivateIdentity } from '../shared/identity.ts';
import { CONTEXT, LIMITS, PROTOCOL_VERSION } from '../shared/limits.ts';
import { seededRandom } from '../shared/random.ts';
import { signedMessage } from '../shared/signed.ts';

export const FIRMWARE_VECTORS_PATH = fileURLToPath(
  new URL('../test/vectors/firmware-v1.json', import.meta.url),
);

/** 2026-01-01T00:00:00Z, as in plushlink-v1.json. */
export const FIRMWARE_VECTOR_EPOCH_MS = 1_767_225_600_000;
export const VECTOR_MODEL = 'plushbear-1';

export interface VendorVector {
  name: string;
  seed: string;
  signSeed: string;
  boxSecret: string;
  signPublicKey: string;
  id: string;
}

export interface ManifestParams {
  model: string;
  version: number;
  minVersion: number;
  /** Name of the image in `images`. */
  image: string;
  releasedAt: number;
}

export interface ManifestVector {
  name: string;
  /** Vendor (in `vendors`) whose key signs it. */
  signer: string;
  params: ManifestParams;
  hex: string;
  signedMessage: string;
  decoded: {
    vendorId: string;
    model: string;
    version: number;
    minVersion: number;
    imageSize: number;
    imageSha256: string;
    releasedAt: number;
    signature: string;
    size: number;
  };
}

export interface DeviceVector {
  model: string;
  /** Pinned vendor (in `vendors`). */
  vendor: string;
  version: number;
  sha256: string | null;
  antiRollback: number;
}

export interface DecisionVector {
  name: string;
  device: DeviceVector;
  manifest: string;
  image: string;
  action: 'install' | 'current' | 'refuse';
  reason?: FirmwareRefusal;
}

export interface InvalidManifestVector {
  name: string;
  hex: string;
  /** Code of decodeFirmwareManifest, or of verifyFirmwareManifest against the vendor `acme` when decoding succeeds. */
  error: string;
}

export interface FirmwareVectors {
  description: string;
  generator: string;
  protocolVersion: number;
  context: string;
  limits: {
    maxImageBytes: number;
    maxModelChars: number;
    manifestFixedBytes: number;
    manifestMaxBytes: number;
    messageMaxBytes: number;
  };
  vendors: VendorVector[];
  images: Record<string, string>;
  manifests: ManifestVector[];
  message: { manifest: string; image: string; hex: string };
  decisions: DecisionVector[];
  invalid: InvalidManifestVector[];
}

const VENDORS = ['acme', 'rogue'] as const;

export function vendorSeed(name: string): string {
  return `plushlink-v1/vectors/firmware/vendor/${name}`;
}

/** The vendor identities of the vectors (role `vendor`, deterministic). */
export function vectorVendors(crypto: CryptoSuite = defaultCrypto()): Map<string, PrivateIdentity> {
  return new Map(VENDORS.map((n) => [n, generateIdentity('vendor', seededRandom(vendorSeed(n)), crypto)]));
}

/** A 256-byte image: seededRandom of its name. */
export function vectorImage(name: string): Uint8Array {
  return seededRandom(`plushlink-v1/vectors/firmware/image/${name}`)(256);
}

function need<T>(map: Map<string, T>, key: string): T {
  const v = map.get(key);
  if (v === undefined) throw new Error(`gen-firmware-vectors: no ${key}`);
  return v;
}

function flip(bytes: Uint8Array, index: number, mask = 1): Uint8Array {
  const copy = bytes.slice();
  copy[index]! ^= mask;
  return copy;
}

function setBytes(bytes: Uint8Array, index: number, values: readonly number[]): Uint8Array {
  const copy = bytes.slice();
  copy.set(values, index);
  return copy;
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof PlushlinkError) return err.code;
    throw err;
  }
  throw new Error('gen-firmware-vectors: an invalid manifest verified');
}

/** Builds every firmware vector; the same seeds always give the same bytes, with either crypto suite. */
export function buildFirmwareVectors(crypto: CryptoSuite = defaultCrypto()): FirmwareVectors {
  const vendors = vectorVendors(crypto);
  const acme = need(vendors, 'acme');
  const rogue = need(vendors, 'rogue');
  const images = new Map(['v2', 'v3', 'rogue'].map((n) => [n, vectorImage(n)]));
  const at = FIRMWARE_VECTOR_EPOCH_MS + 60_000;

  const specs: { name: string; signer: string; params: ManifestParams }[] = [
    {
      name: 'v2',
      signer: 'acme',
      params: { model: VECTOR_MODEL, version: 2, minVersion: 1, image: 'v2', releasedAt: at },
    },
    {
      name: 'v3',
      signer: 'acme',
      params: { model: VECTOR_MODEL, version: 3, minVersion: 2, image: 'v3', releasedAt: at + 1000 },
    },
    {
      name: 'v2-other-image',
      signer: 'acme',
      params: { model: VECTOR_MODEL, version: 2, minVersion: 1, image: 'v3', releasedAt: at + 2000 },
    },
    {
      name: 'cat-v2',
      signer: 'acme',
      params: { model: 'plushcat-1', version: 2, minVersion: 1, image: 'v2', releasedAt: at },
    },
    {
      name: 'rogue-v9',
      signer: 'rogue',
      params: { model: VECTOR_MODEL, version: 9, minVersion: 9, image: 'rogue', releasedAt: at },
    },
  ];
  const manifests = new Map<string, Uint8Array>();
  const manifestVectors: ManifestVector[] = specs.map((s) => {
    const bytes = createFirmwareManifest({
      vendor: need(vendors, s.signer),
      ...s.params,
      image: need(images, s.params.image),
      crypto,
    });
    manifests.set(s.name, bytes);
    const m = verifyFirmwareManifest(bytes, need(vendors, s.signer), crypto);
    return {
      name: s.name,
      signer: s.signer,
      params: s.params,
      hex: toHex(bytes),
      signedMessage: toHex(signedMessage(CONTEXT.FIRMWARE, m.body)),
      decoded: {
        vendorId: m.vendorId,
        model: m.model,
        version: m.version,
        minVersion: m.minVersion,
        imageSize: m.imageSize,
        imageSha256: toHex(m.imageSha256),
        releasedAt: m.releasedAt,
        signature: toHex(m.signature),
        size: m.size,
      },
    };
  });
  const v2 = need(manifests, 'v2');
  const img2 = need(images, 'v2');
  const img3 = need(images, 'v3');
  // Signed with the rogue key but naming acme: only the signature can tell.
  const forged = createFirmwareManifest({
    vendor: { ...rogue, id: acme.id },
    model: VECTOR_MODEL,
    version: 2,
    minVersion: 1,
    image: img2,
    releasedAt: at,
    crypto,
  });
  const unsigned = v2.slice();
  unsigned.fill(0, unsigned.length - 64);
  const versionOffset = 2 + 20 + 1 + VECTOR_MODEL.length + 3; // low byte of the version

  const sha = (b: Uint8Array): string => toHex(sha256(b));
  const factory: DeviceVector = {
    model: VECTOR_MODEL,
    vendor: 'acme',
    version: 1,
    sha256: null,
    antiRollback: 0,
  };
  const atV2: DeviceVector = { ...factory, version: 2, sha256: sha(img2), antiRollback: 1 };
  const atV3: DeviceVector = { ...factory, version: 3, sha256: sha(img3), antiRollback: 2 };
  const atV3LowFloor: DeviceVector = { ...atV3, antiRollback: 1 };
  const cases: { name: string; device: DeviceVector; manifest: Uint8Array; image: Uint8Array }[] = [
    { name: 'v2 on the factory firmware installs', device: factory, manifest: v2, image: img2 },
    { name: 'v2 again on v2 is current', device: atV2, manifest: v2, image: img2 },
    { name: 'v3 on v2 installs', device: atV2, manifest: need(manifests, 'v3'), image: img3 },
    { name: 'an all-zero signature is unsigned', device: factory, manifest: unsigned, image: img2 },
    {
      name: "another vendor's release",
      device: factory,
      manifest: need(manifests, 'rogue-v9'),
      image: need(images, 'rogue'),
    },
    { name: "another key under the pinned vendor's id", device: factory, manifest: forged, image: img2 },
    {
      name: 'version changed after signing',
      device: factory,
      manifest: flip(v2, versionOffset),
      image: img2,
    },
    {
      name: 'a release for another model',
      device: factory,
      manifest: need(manifests, 'cat-v2'),
      image: img2,
    },
    { name: 'image one byte short', device: factory, manifest: v2, image: img2.subarray(0, img2.length - 1) },
    { name: 'image with one bit flipped', device: factory, manifest: v2, image: flip(img2, 100, 0x10) },
    { name: 'v2 replayed after v3 (anti-rollback)', device: atV3, manifest: v2, image: img2 },
    { name: 'v2 on v3 above the floor is a downgrade', device: atV3LowFloor, manifest: v2, image: img2 },
    {
      name: 'same version, other image',
      device: atV2,
      manifest: need(manifests, 'v2-other-image'),
      image: img3,
    },
    {
      name: 'manifest truncated by one byte',
      device: factory,
      manifest: v2.subarray(0, v2.length - 1),
      image: img2,
    },
  ];
  const decisions: DecisionVector[] = cases.map((c) => {
    const device: FirmwareDevice = {
      model: c.device.model,
      vendor: need(vendors, c.device.vendor),
      version: c.device.version,
      sha256: c.device.sha256 === null ? null : Uint8Array.from(Buffer.from(c.device.sha256, 'hex')),
      antiRollback: c.device.antiRollback,
    };
    const d = checkFirmwareUpdate(device, c.manifest, c.image, crypto);
    return {
      name: c.name,
      device: c.device,
      manifest: toHex(c.manifest),
      image: toHex(c.image),
      action: d.action,
      ...(d.action === 'refuse' ? { reason: d.reason } : {}),
    };
  });

  const modelAt = 2 + 20; // the model-length byte
  const afterModel = modelAt + 1 + VECTOR_MODEL.length;
  const raw: { name: string; bytes: Uint8Array }[] = [
    { name: 'truncated to its header', bytes: v2.subarray(0, 2) },
    { name: 'a trailing byte', bytes: Uint8Array.from([...v2, 0]) },
    { name: 'clip type byte', bytes: setBytes(v2, 0, [0x01]) },
    { name: 'version 2', bytes: setBytes(v2, 1, [2]) },
    { name: 'model length 0', bytes: setBytes(v2, modelAt, [0]) },
    { name: 'model length 33', bytes: setBytes(v2, modelAt, [33]) },
    { name: 'upper-case model', bytes: setBytes(v2, modelAt + 1, [0x50]) },
    { name: 'firmware version 0', bytes: setBytes(v2, afterModel, [0, 0, 0, 0]) },
    { name: 'minimum version above version', bytes: setBytes(v2, afterModel + 4, [0, 0, 0, 3]) },
    { name: 'image size 0', bytes: setBytes(v2, afterModel + 8, [0, 0, 0, 0]) },
    { name: 'image size 1 MiB + 1', bytes: setBytes(v2, afterModel + 8, [0, 0x10, 0, 1]) },
    { name: 'all-zero signature', bytes: unsigned },
    { name: 'signed by another vendor', bytes: need(manifests, 'rogue-v9') },
    { name: 'signature bit flipped', bytes: flip(v2, v2.length - 1, 0x80) },
  ];
  const invalid = raw.map((r) => ({
    name: r.name,
    hex: toHex(r.bytes),
    error: errorCode(() => verifyFirmwareManifest(r.bytes, acme, crypto)),
  }));

  return {
    description:
      'PlushLink v1 firmware vectors (docs/PROTOCOL.md PLK-13). All byte strings are lowercase hex. Vendors are ' +
      "generateIdentity('vendor', seededRandom(seed)); images are seededRandom(name seed)(256). " +
      'Test data only: these keys are public.',
    generator: 'npx tsx scripts/gen-firmware-vectors.ts',
    protocolVersion: PROTOCOL_VERSION,
    context: CONTEXT.FIRMWARE,
    limits: {
      maxImageBytes: LIMITS.maxFirmwareImageBytes,
      maxModelChars: LIMITS.maxFirmwareModelChars,
      manifestFixedBytes: FIRMWARE_MANIFEST_FIXED_BYTES,
      manifestMaxBytes: FIRMWARE_MANIFEST_MAX_BYTES,
      messageMaxBytes: FIRMWARE_MESSAGE_MAX_BYTES,
    },
    vendors: VENDORS.map((name) => {
      const v = need(vendors, name);
      return {
        name,
        seed: vendorSeed(name),
        signSeed: toHex(v.signSeed),
        boxSecret: toHex(v.boxSecret),
        signPublicKey: toHex(v.signPublicKey),
        id: v.id,
      };
    }),
    images: Object.fromEntries([...images].map(([n, b]) => [n, toHex(b)])),
    manifests: manifestVectors,
    message: { manifest: 'v2', image: 'v2', hex: toHex(encodeFirmwareMessage(v2, img2)) },
    decisions,
    invalid,
  };
}

export function serializeFirmwareVectors(v: FirmwareVectors): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

function main(): void {
  const text = serializeFirmwareVectors(buildFirmwareVectors());
  if (process.argv.includes('--check')) {
    if (readFileSync(FIRMWARE_VECTORS_PATH, 'utf8') !== text) {
      process.stderr.write(
        `gen-firmware-vectors: ${FIRMWARE_VECTORS_PATH} is out of date; run npx tsx scripts/gen-firmware-vectors.ts\n`,
      );
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`gen-firmware-vectors: ${FIRMWARE_VECTORS_PATH} is up to date\n`);
    return;
  }
  writeFileSync(FIRMWARE_VECTORS_PATH, text);
  process.stdout.write(`gen-firmware-vectors: wrote ${FIRMWARE_VECTORS_PATH}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
