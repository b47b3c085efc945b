// Vendor-signed firmware: the manifest (model, version, minimum version, image size and SHA-256), the distribution message manifest ‖ image, and the toy's install decision [PLK-13].
import { assertBytes, ByteReader, ByteWriter, bytesEqual, toHex } from './bytes.ts';
import { type CryptoSuite, defaultCrypto, sha256 } from './crypto.ts';
import { PlushlinkError } from './errors.ts';
import { idFromBytes, idToBytes, type PrivateIdentity, type PublicIdentity } from './identity.ts';
import { CONTEXT, ID_BYTES, LIMITS, MSG, PROTOCOL_VERSION, SIGNATURE_BYTES } from './limits.ts';
import { signBody, verifyBody } from './signed.ts';
import type { EndpointId } from './types.ts';

export const FIRMWARE_SHA256_BYTES = 32;
/** [PLK-13.1] Every manifest byte but the model: type, version, vendor id, model length, 3 × u32, SHA-256, u64, signature. */
export const FIRMWARE_MANIFEST_FIXED_BYTES =
  1 + 1 + ID_BYTES + 1 + 4 + 4 + 4 + FIRMWARE_SHA256_BYTES + 8 + SIGNATURE_BYTES; // 139
export const FIRMWARE_MANIFEST_MAX_BYTES = FIRMWARE_MANIFEST_FIXED_BYTES + LIMITS.maxFirmwareModelChars; // 171
/** [PLK-13.2] The largest distribution message: a maximal manifest and a maximal image. */
export const FIRMWARE_MESSAGE_MAX_BYTES = FIRMWARE_MANIFEST_MAX_BYTES + LIMITS.maxFirmwareImageBytes;
/** [PLK-13.1] Versions are u32; 0 is the factory firmware, which no manifest carries. */
export const FIRMWARE_MAX_VERSION = 0xffff_ffff;

const MODEL_RE = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * [PLK-13.4] Why a toy refuses a release, in the order the checks run (the first failing check
 * names the refusal). The meanings are the table of PROTOCOL.md PLK-13.4 (a test keeps them in sync).
 */
export const FIRMWARE_REFUSALS = {
  malformed: 'the message does not decode as manifest ‖ image within the limits',
  unsigned: 'the manifest carries no signature (all 64 bytes zero)',
  'wrong-vendor': 'the manifest names a vendor other than the pinned one',
  'bad-signature': "the signature does not verify with the pinned vendor's key",
  'wrong-model': "the manifest is for another model than the toy's",
  'size-mismatch': 'the image length differs from the manifest image size',
  'hash-mismatch': 'the SHA-256 of the image differs from the manifest',
  'below-security-version': "the manifest's minimum version is below the toy's anti-rollback counter",
  downgrade: 'the version is not above the installed one (and the release is not the installed one)',
} as const;
export type FirmwareRefusal = keyof typeof FIRMWARE_REFUSALS;

/** A decoded manifest [PLK-13.1]. */
export interface FirmwareManifest {
  readonly vendorId: EndpointId;
  readonly model: string;
  readonly version: number;
  /** The minimum version (anti-rollback security version): after installing, no release below it installs. */
  readonly minVersion: number;
  readonly imageSize: number;
  readonly imageSha256: Uint8Array;
  readonly releasedAt: number;
  readonly signature: Uint8Array;
  /** The signed part: every byte before the signature. */
  readonly body: Uint8Array;
  /** Manifest size in bytes: 139 + model length. */
  readonly size: number;
}

/** True for a model name: 1..32 characters of [a-z0-9._-], starting with a letter or digit [PLK-13.1]. */
export function isFirmwareModel(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    value.length >= 1 &&
    value.length <= LIMITS.maxFirmwareModelChars &&
    MODEL_RE.test(value)
  );
}

function checkModel(value: unknown): string {
  if (!isFirmwareModel(value)) {
    throw new PlushlinkError(
      'PLK_E_FIELD',
      `model must be 1..${LIMITS.maxFirmwareModelChars} characters of [a-z0-9._-] starting with a letter or digit`,
    );
  }
  return value;
}

function checkU32(value: unknown, name: string, min: number): number {
  if (
    typeof value !== 'number' ||
    !Number.isSafeInteger(value) ||
    value < min ||
    value > FIRMWARE_MAX_VERSION
  )
    throw new PlushlinkError(
      'PLK_E_FIELD',
      `${name} must be an integer in [${min}, ${FIRMWARE_MAX_VERSION}]`,
    );
  return value;
}

/**
 * [PLK-13.1] A manifest for `image`, signed by the vendor (role `vendor`) with the context
 * `plushlink/v1/firmware-manifest`. `minVersion` ≤ `version`: once a toy has installed it, no
 * release whose minimum version is lower — hence no version below `minVersion` — installs again.
 */
export function createFirmwareManifest(opts: {
  vendor: PrivateIdentity;
  model: string;
  version: number;
  minVersion: number;
  image: Uint8Array;
  releasedAt: number;
  crypto?: CryptoSuite;
}): Uint8Array {
  if (opts.vendor?.role !== 'vendor')
    throw new PlushlinkError('PLK_E_FIELD', 'a firmware manifest is signed by a vendor identity');
  const model = checkModel(opts.model);
  const version = checkU32(opts.version, 'version', 1);
  const minVersion = checkU32(opts.minVersion, 'minVersion', 0);
  if (minVersion > version) throw new PlushlinkError('PLK_E_FIELD', 'minVersion must not exceed version');
  assertBytes(opts.image, 'image');
  if (opts.image.length === 0) throw new PlushlinkError('PLK_E_FIELD', 'image is empty');
  if (opts.image.length > LIMITS.maxFirmwareImageBytes) {
    throw new PlushlinkError(
      'PLK_E_LIMIT',
      `image is ${opts.image.length} bytes, max ${LIMITS.maxFirmwareImageBytes}`,
    );
  }
  const releasedAt = opts.releasedAt;
  if (!Number.isSafeInteger(releasedAt) || releasedAt < 0 || releasedAt > LIMITS.maxTimestampMs)
    throw new PlushlinkError('PLK_E_FIELD', 'releasedAt out of range');
  const size = FIRMWARE_MANIFEST_FIXED_BYTES + model.length;
  const w = new ByteWriter(size);
  w.u8(MSG.FIRMWARE).u8(PROTOCOL_VERSION).raw(idToBytes(opts.vendor.id));
  w.u8(model.length).raw(new TextEncoder().encode(model));
  w.u32(version).u32(minVersion).u32(opts.image.length).raw(sha256(opts.image)).u64(releasedAt);
  const body = w.bytes.subarray(0, w.offset);
  w.raw(signBody(opts.crypto ?? defaultCrypto(), opts.vendor.signSeed, CONTEXT.FIRMWARE, body));
  return w.bytes;
}

/** Reads a manifest from the start of `r` (no signature check); the caller checks what follows. */
function readManifest(r: ByteReader, bytes: Uint8Array): FirmwareManifest {
  const type = r.u8('type');
  if (type !== MSG.FIRMWARE)
    throw new PlushlinkError('PLK_E_MSG_TYPE', `firmware manifest: got 0x${type.toString(16)}`);
  const v = r.u8('version');
  if (v !== PROTOCOL_VERSION) throw new PlushlinkError('PLK_E_VERSION', `firmware manifest version ${v}`);
  const vendorId = idFromBytes(r.raw(ID_BYTES, 'vendor id'), 'vendor id');
  const modelLength = r.u8('model length');
  if (modelLength === 0) throw new PlushlinkError('PLK_E_FIELD', 'model is empty');
  if (modelLength > LIMITS.maxFirmwareModelChars)
    throw new PlushlinkError(
      'PLK_E_LIMIT',
      `model is ${modelLength} bytes, max ${LIMITS.maxFirmwareModelChars}`,
    );
  const modelBytes = r.raw(modelLength, 'model');
  // ASCII only, so each byte is one character and the check below sees every byte.
  const model = checkModel(String.fromCharCode(...modelBytes));
  const version = r.u32('firmware version');
  if (version === 0) throw new PlushlinkError('PLK_E_FIELD', 'firmware version 0 is the factory firmware');
  const minVersion = r.u32('minimum version');
  if (minVersion > version)
    throw new PlushlinkError('PLK_E_FIELD', `minimum version ${minVersion} above version ${version}`);
  const imageSize = r.u32('image size');
  if (imageSize === 0) throw new PlushlinkError('PLK_E_FIELD', 'image size 0');
  if (imageSize > LIMITS.maxFirmwareImageBytes) {
    throw new PlushlinkError('PLK_E_LIMIT', `image size ${imageSize}, max ${LIMITS.maxFirmwareImageBytes}`);
  }
  const imageSha256 = r.raw(FIRMWARE_SHA256_BYTES, 'image sha256');
  const releasedAt = r.u64('released at');
  if (releasedAt > LIMITS.maxTimestampMs) throw new PlushlinkError('PLK_E_FIELD', 'released at out of range');
  const bodyEnd = r.offset;
  const signature = r.raw(SIGNATURE_BYTES, 'signature');
  return {
    vendorId,
    model,
    version,
    minVersion,
    imageSize,
    imageSha256,
    releasedAt,
    signature,
    body: bytes.subarray(0, bodyEnd),
    size: r.offset,
  };
}

function checkInput(bytes: unknown, max: number, what: string): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new PlushlinkError('PLK_E_TYPE', `${what} must be bytes`);
  if (bytes.length > max)
    throw new PlushlinkError('PLK_E_LIMIT', `${what} is ${bytes.length} bytes, max ${max}`);
}

/** [PLK-13.1] Structural decode of exactly one manifest (no signature check). */
export function decodeFirmwareManifest(bytes: Uint8Array): FirmwareManifest {
  checkInput(bytes, FIRMWARE_MANIFEST_MAX_BYTES, 'firmware manifest');
  const r = new ByteReader(bytes);
  const manifest = readManifest(r, bytes);
  r.end('firmware manifest');
  return manifest;
}

/** True when the signature field is all zero: how a build that skipped signing is framed [PLK-13.1]. */
function isUnsigned(signature: Uint8Array): boolean {
  return bytesEqual(signature, new Uint8Array(SIGNATURE_BYTES));
}

/**
 * [PLK-13.3] Decodes and verifies a manifest against the vendor key(s) trusted here: a toy passes
 * the one it was provisioned with, a gateway every vendor its operator trusts. In this order:
 * structure, signature present (PLK_E_UNSIGNED), vendor trusted (PLK_E_WRONG_VENDOR), signature
 * valid under that vendor's key (PLK_E_BAD_SIGNATURE).
 */
export function verifyFirmwareManifest(
  bytes: Uint8Array,
  trusted: PublicIdentity | readonly PublicIdentity[],
  crypto: CryptoSuite = defaultCrypto(),
): FirmwareManifest {
  const manifest = decodeFirmwareManifest(bytes);
  if (isUnsigned(manifest.signature)) throw new PlushlinkError('PLK_E_UNSIGNED');
  const list: readonly PublicIdentity[] = Array.isArray(trusted) ? trusted : [trusted as PublicIdentity];
  const vendor = list.find((v) => v.id === manifest.vendorId && v.role === 'vendor');
  if (!vendor) throw new PlushlinkError('PLK_E_WRONG_VENDOR', `vendor ${manifest.vendorId}`);
  verifyBody(
    crypto,
    vendor.signPublicKey,
    CONTEXT.FIRMWARE,
    manifest.body,
    manifest.signature,
    'firmware manifest',
  );
  return manifest;
}

/** [PLK-13.3] The image must have exactly the manifest's size and SHA-256 (PLK_E_IMAGE_MISMATCH). */
export function verifyFirmwareImage(manifest: FirmwareManifest, image: Uint8Array): void {
  assertBytes(image, 'image');
  if (image.length !== manifest.imageSize) {
    throw new PlushlinkError(
      'PLK_E_IMAGE_MISMATCH',
      `image is ${image.length} bytes, the manifest says ${manifest.imageSize}`,
    );
  }
  if (!bytesEqual(sha256(image), manifest.imageSha256))
    throw new PlushlinkError('PLK_E_IMAGE_MISMATCH', 'SHA-256 of the image differs from the manifest');
}

/** [PLK-13.2] The distribution message: the manifest followed by the image, nothing else. */
export function encodeFirmwareMessage(manifest: Uint8Array, image: Uint8Array): Uint8Array {
  const m = decodeFirmwareManifest(manifest);
  checkInput(image, LIMITS.maxFirmwareImageBytes, 'firmware image');
  if (image.length !== m.imageSize)
    throw new PlushlinkError(
      'PLK_E_IMAGE_MISMATCH',
      `image is ${image.length} bytes, manifest says ${m.imageSize}`,
    );
  const out = new Uint8Array(manifest.length + image.length);
  out.set(manifest, 0);
  out.set(image, manifest.length);
  return out;
}

/** A distribution message split into its parts (views into the input, no copy). */
export interface FirmwareMessage {
  readonly manifest: FirmwareManifest;
  readonly manifestBytes: Uint8Array;
  readonly image: Uint8Array;
}

/**
 * [PLK-13.2] Splits manifest ‖ image. Structural only: no signature check, and the image length
 * is NOT compared with the manifest here (that is a refusal reason of its own, PLK-13.4).
 */
export function decodeFirmwareMessage(bytes: Uint8Array): FirmwareMessage {
  checkInput(bytes, FIRMWARE_MESSAGE_MAX_BYTES, 'firmware message');
  const r = new ByteReader(bytes);
  const manifest = readManifest(r, bytes);
  const image = bytes.subarray(manifest.size);
  if (image.length > LIMITS.maxFirmwareImageBytes) {
    throw new PlushlinkError(
      'PLK_E_LIMIT',
      `image is ${image.length} bytes, max ${LIMITS.maxFirmwareImageBytes}`,
    );
  }
  return { manifest, manifestBytes: bytes.subarray(0, manifest.size), image };
}

/** What a toy runs and trusts: its model, its pinned vendor, its installed release and its anti-rollback counter. */
export interface FirmwareDevice {
  readonly model: string;
  /** The vendor identity the toy was provisioned with (the only key it accepts). */
  readonly vendor: PublicIdentity;
  /** Installed version (0: the factory firmware). */
  readonly version: number;
  /** SHA-256 of the installed image (null for the factory firmware). */
  readonly sha256: Uint8Array | null;
  /** Anti-rollback counter: the highest minimum version ever installed; never decreases. */
  readonly antiRollback: number;
}

export type FirmwareDecision =
  | { readonly action: 'install'; readonly manifest: FirmwareManifest }
  /** The installed release itself (delivered again on every connection): nothing to do. */
  | { readonly action: 'current'; readonly manifest: FirmwareManifest }
  | {
      readonly action: 'refuse';
      readonly reason: FirmwareRefusal;
      readonly detail: string;
      /** The decoded manifest, when it decoded (untrusted unless the reason comes after bad-signature). */
      readonly manifest?: FirmwareManifest;
    };

function refuse(reason: FirmwareRefusal, detail: string, manifest?: FirmwareManifest): FirmwareDecision {
  return manifest ? { action: 'refuse', reason, detail, manifest } : { action: 'refuse', reason, detail };
}

/**
 * [PLK-13.4] The toy's decision on one release: install, current (already installed) or a typed
 * refusal, checks in the order of FIRMWARE_REFUSALS. Never throws on bad input: anything
 * malformed is the refusal `malformed`.
 */
export function checkFirmwareUpdate(
  device: FirmwareDevice,
  manifestBytes: Uint8Array,
  image: Uint8Array,
  crypto: CryptoSuite = defaultCrypto(),
): FirmwareDecision {
  let manifest: FirmwareManifest;
  try {
    manifest = decodeFirmwareManifest(manifestBytes);
    if (!(image instanceof Uint8Array)) throw new PlushlinkError('PLK_E_TYPE', 'image must be bytes');
  } catch (err) {
    return refuse('malformed', err instanceof Error ? err.message : 'malformed');
  }
  try {
    verifyFirmwareManifest(manifestBytes, device.vendor, crypto);
  } catch (err) {
    const code = err instanceof PlushlinkError ? err.code : undefined;
    const reason: FirmwareRefusal =
      code === 'PLK_E_UNSIGNED'
        ? 'unsigned'
        : code === 'PLK_E_WRONG_VENDOR'
          ? 'wrong-vendor'
          : code === 'PLK_E_BAD_SIGNATURE'
            ? 'bad-signature'
            : 'malformed';
    return refuse(reason, err instanceof Error ? err.message : reason, manifest);
  }
  if (manifest.model !== device.model)
    return refuse('wrong-model', `release for ${manifest.model}, this toy is ${device.model}`, manifest);
  if (image.length !== manifest.imageSize)
    return refuse(
      'size-mismatch',
      `image is ${image.length} bytes, manifest says ${manifest.imageSize}`,
      manifest,
    );
  const digest = sha256(image);
  if (!bytesEqual(digest, manifest.imageSha256))
    return refuse('hash-mismatch', `image SHA-256 ${toHex(digest)}`, manifest);
  if (manifest.minVersion < device.antiRollback) {
    return refuse(
      'below-security-version',
      `minimum version ${manifest.minVersion} below the anti-rollback counter ${device.antiRollback}`,
      manifest,
    );
  }
  if (manifest.version === device.version && device.sha256 && bytesEqual(device.sha256, digest))
    return { action: 'current', manifest };
  if (manifest.version <= device.version)
    return refuse('downgrade', `version ${manifest.version}, installed ${device.version}`, manifest);
  return { action: 'install', manifest };
}

/** [PLK-13.4] checkFirmwareUpdate on a whole distribution message (manifest ‖ image). Never throws on bad input. */
export function checkFirmwareMessage(
  device: FirmwareDevice,
  message: Uint8Array,
  crypto: CryptoSuite = defaultCrypto(),
): FirmwareDecision {
  let parts: FirmwareMessage;
  try {
    parts = decodeFirmwareMessage(message);
  } catch (err) {
    return refuse('malformed', err instanceof Error ? err.message : 'malformed');
  }
  return checkFirmwareUpdate(device, parts.manifestBytes, parts.image, crypto);
}

/** JSON view of a manifest (`plushlink firmware inspect`): every field, no secrets exist in it. */
export function describeFirmwareManifest(m: FirmwareManifest): Record<string, unknown> {
  return {
    type: 'firmware-manifest',
    vendor: m.vendorId,
    model: m.model,
    version: m.version,
    minVersion: m.minVersion,
    imageSize: m.imageSize,
    imageSha256: toHex(m.imageSha256),
    releasedAt: new Date(m.releasedAt).toISOString(),
    signature: toHex(m.signature),
    size: m.size,
  };
}
