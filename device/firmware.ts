// The toy's firmware updater: checks vendor-signed releases from its inbox, installs them atomically and keeps the anti-rollback counter across restarts [PLK-13].
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWriteFile, readLimitedText } from '../platform/files.ts';
import { fromHex, toHex } from '../shared/bytes.ts';
import { type CryptoSuite, defaultCrypto } from '../shared/crypto.ts';
import { CodedError } from '../shared/errors.ts';
import {
  checkFirmwareMessage,
  FIRMWARE_MAX_VERSION,
  FIRMWARE_SHA256_BYTES,
  type FirmwareDevice,
  type FirmwareRefusal,
  isFirmwareModel,
} from '../shared/firmware.ts';
import type { PublicIdentity } from '../shared/identity.ts';
import { describeValue, isJsonObject, type JsonObject, parseJson } from '../shared/json.ts';
import type { Clock, EndpointId } from '../shared/types.ts';

/** The state file in the updater's directory (mode 0600, replaced atomically) [PLK-13.5]. */
export const FIRMWARE_STATE_FILE = 'firmware.json';
const STATE_MAGIC = 'plushlink-firmware-state';
const STATE_FILE_BYTES = 4096;
const IMAGE_RE = /^image-v\d{10}\.bin$/;

export type FirmwareErrorCode = 'FIRMWARE_STATE_CORRUPT' | 'FIRMWARE_STATE_MODEL';

/** The updater cannot start: its state file is unreadable, or belongs to another model. Fails closed (an unreadable anti-rollback counter is never reset to 0). */
export class FirmwareError extends CodedError<FirmwareErrorCode> {}

/** What the toy has installed, as kept in DIR/firmware.json. */
export interface FirmwareState {
  readonly model: string;
  /** Installed version; 0 is the factory firmware. */
  readonly version: number;
  /** The highest minimum version ever installed: a release below it is refused (`below-security-version`). */
  readonly antiRollback: number;
  /** Hex SHA-256 of the installed image; null for the factory firmware. */
  readonly sha256: string | null;
  /** File name of the installed image in the updater's directory; null for the factory firmware. */
  readonly image: string | null;
  readonly installedAt: number | null;
}

/** The outcome of one release, reported as the endpoint's `firmware` event. */
export type FirmwareReport =
  | {
      readonly outcome: 'installed';
      readonly model: string;
      readonly version: number;
      readonly minVersion: number;
      readonly previousVersion: number;
      readonly antiRollback: number;
      readonly vendor: EndpointId;
      readonly sha256: string;
      readonly imageBytes: number;
      /** Where the installed image is kept (the simulation's flash). */
      readonly file: string;
      readonly at: number;
    }
  | { readonly outcome: 'current'; readonly model: string; readonly version: number; readonly at: number }
  | {
      readonly outcome: 'refused';
      readonly reason: FirmwareRefusal;
      readonly detail: string;
      /** The release's version and model as the manifest claims them (absent when it did not decode). */
      readonly version?: number;
      readonly releaseModel?: string;
      /** What stays installed. */
      readonly installedVersion: number;
      readonly at: number;
    };

export interface FirmwareUpdaterOptions {
  /** Directory of the state file and the installed image (created 0700). */
  readonly dir: string;
  /** The toy's model: releases for other models are refused. */
  readonly model: string;
  /** The vendor identity pinned at provisioning: the only key whose releases install. */
  readonly vendor: PublicIdentity;
  /** Version of the factory firmware when the directory holds no state yet; default 0. */
  readonly factoryVersion?: number;
  readonly clock?: Clock;
  readonly crypto?: CryptoSuite;
}

function corrupt(path: string, detail: string, cause?: unknown): FirmwareError {
  return new FirmwareError('FIRMWARE_STATE_CORRUPT', `${path}: ${detail}`, cause ? { cause } : undefined);
}

function intField(obj: JsonObject, name: string, path: string): number {
  const v = obj[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > FIRMWARE_MAX_VERSION)
    throw corrupt(
      path,
      `${name} must be an integer in [0, ${FIRMWARE_MAX_VERSION}], got ${describeValue(v)}`,
    );
  return v;
}

function parseState(text: string, path: string): FirmwareState {
  let obj: JsonObject;
  try {
    const value = parseJson(text, { what: 'firmware state', maxBytes: STATE_FILE_BYTES, maxDepth: 2 });
    if (!isJsonObject(value)) throw corrupt(path, `not a JSON object, got ${describeValue(value)}`);
    obj = value;
  } catch (err) {
    if (err instanceof FirmwareError) throw err;
    throw corrupt(path, err instanceof Error ? err.message : 'unreadable', err);
  }
  if (obj.plushlink !== STATE_MAGIC || obj.v !== 1) throw corrupt(path, 'not a PlushLink firmware state v1');
  if (!isFirmwareModel(obj.model)) throw corrupt(path, 'model is not a firmware model name');
  const version = intField(obj, 'version', path);
  const antiRollback = intField(obj, 'antiRollback', path);
  const sha = obj.sha256;
  const image = obj.image;
  const installedAt = obj.installedAt;
  if (sha !== null && (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha)))
    throw corrupt(path, 'sha256 must be 64 hex characters or null');
  if (image !== null && (typeof image !== 'string' || !IMAGE_RE.test(image)))
    throw corrupt(path, 'image must be an image-v<version>.bin file name or null');
  if (installedAt !== null && (typeof installedAt !== 'number' || !Number.isSafeInteger(installedAt)))
    throw corrupt(path, 'installedAt must be an integer or null');
  if ((sha === null) !== (image === null)) throw corrupt(path, 'sha256 and image go together');
  return { model: obj.model, version, antiRollback, sha256: sha, image, installedAt };
}

function stateJson(s: FirmwareState): string {
  return `${JSON.stringify({ plushlink: STATE_MAGIC, v: 1, ...s }, null, 2)}\n`;
}

function imageFileName(version: number): string {
  return `image-v${String(version).padStart(10, '0')}.bin`;
}

/**
 * [PLK-13.5] The toy's side of firmware updates: each MSG.FIRMWARE message from the inbox is
 * checked (checkFirmwareMessage: pinned vendor, model, size, hash, anti-rollback, version) and
 * either installed — the image written to DIR/image-v<N>.bin, then the state (version, counter)
 * replaced atomically, then the old image removed, so a crash at any point leaves a state that
 * names a complete image — or refused with its reason. Messages are handled one at a time.
 */
export class FirmwareUpdater {
  private stateValue: FirmwareState;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly opts: FirmwareUpdaterOptions,
    state: FirmwareState,
    private readonly clock: Clock,
    private readonly crypto: CryptoSuite,
  ) {
    this.stateValue = state;
  }

  /** Opens DIR (creating it and the factory state on first use); a new updater on the same DIR resumes its state. */
  static async open(opts: FirmwareUpdaterOptions): Promise<FirmwareUpdater> {
    if (!isFirmwareModel(opts.model)) throw new TypeError('model must be a firmware model name [PLK-13.1]');
    if (opts.vendor?.role !== 'vendor') throw new TypeError('vendor must be a vendor identity');
    const factory = opts.factoryVersion ?? 0;
    if (!Number.isSafeInteger(factory) || factory < 0 || factory > FIRMWARE_MAX_VERSION)
      throw new RangeError('factoryVersion must be a u32');
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    const path = join(opts.dir, FIRMWARE_STATE_FILE);
    const clock = opts.clock ?? Date.now;
    let state: FirmwareState;
    let text: string | undefined;
    try {
      text = await readLimitedText(path, STATE_FILE_BYTES, {
        notFile: (p) => corrupt(p, 'not a file'),
        tooLarge: (p, n) => corrupt(p, `larger than ${n} bytes`),
      });
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
    }
    if (text === undefined) {
      state = {
        model: opts.model,
        version: factory,
        antiRollback: 0,
        sha256: null,
        image: null,
        installedAt: null,
      };
      await atomicWriteFile(path, stateJson(state));
    } else {
      state = parseState(text, path);
      if (state.model !== opts.model) {
        throw new FirmwareError(
          'FIRMWARE_STATE_MODEL',
          `${path} is the state of a ${state.model}, not of a ${opts.model}`,
        );
      }
    }
    return new FirmwareUpdater(opts, state, clock, opts.crypto ?? defaultCrypto());
  }

  get state(): FirmwareState {
    return this.stateValue;
  }

  get model(): string {
    return this.opts.model;
  }

  /** Path of the installed image (null for the factory firmware). */
  get imagePath(): string | null {
    return this.stateValue.image ? join(this.opts.dir, this.stateValue.image) : null;
  }

  /** What checkFirmwareUpdate needs to know about this toy. */
  device(): FirmwareDevice {
    const s = this.stateValue;
    return {
      model: this.opts.model,
      vendor: this.opts.vendor,
      version: s.version,
      sha256: s.sha256 ? fromHex(s.sha256, 'sha256', FIRMWARE_SHA256_BYTES) : null,
      antiRollback: s.antiRollback,
    };
  }

  /**
   * Handles one MSG.FIRMWARE inbox message; resolves with the outcome. Rejects only when an
   * install could not be written (the state then still names the previous, complete image).
   */
  handle(message: Uint8Array): Promise<FirmwareReport> {
    const run = this.queue.then(() => this.handleNow(message));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async handleNow(message: Uint8Array): Promise<FirmwareReport> {
    const before = this.stateValue;
    const decision = checkFirmwareMessage(this.device(), message, this.crypto);
    const at = this.clock();
    if (decision.action === 'refuse') {
      const m = decision.manifest;
      return {
        outcome: 'refused',
        reason: decision.reason,
        detail: decision.detail,
        ...(m ? { version: m.version, releaseModel: m.model } : {}),
        installedVersion: before.version,
        at,
      };
    }
    const m = decision.manifest;
    if (decision.action === 'current') return { outcome: 'current', model: m.model, version: m.version, at };
    const image = message.subarray(m.size);
    const file = imageFileName(m.version);
    await atomicWriteFile(join(this.opts.dir, file), image);
    const next: FirmwareState = {
      model: m.model,
      version: m.version,
      antiRollback: Math.max(before.antiRollback, m.minVersion),
      sha256: toHex(m.imageSha256),
      image: file,
      installedAt: at,
    };
    await atomicWriteFile(join(this.opts.dir, FIRMWARE_STATE_FILE), stateJson(next));
    this.stateValue = next;
    if (before.image && before.image !== file) await rm(join(this.opts.dir, before.image), { force: true });
    return {
      outcome: 'installed',
      model: m.model,
      version: m.version,
      minVersion: m.minVersion,
      previousVersion: before.version,
      antiRollback: next.antiRollback,
      vendor: m.vendorId,
      sha256: next.sha256!,
      imageBytes: image.length,
      file: join(this.opts.dir, file),
      at,
    };
  }
}
