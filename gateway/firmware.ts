// Firmware distribution: vendor keys the operator trusts and releases published under DATA/firmware (0600, audited), checked again when loaded, and the latest release of each model sent to every connected toy's inbox after its proof [PLK-13.6].
import { mkdir, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from 'aedes';
import type { Logger } from 'pino';
import { atomicWriteFile, readLimitedText } from '../platform/files.ts';
import { bytesEqual, toHex } from '../shared/bytes.ts';
import { type CryptoSuite, defaultCrypto } from '../shared/crypto.ts';
import { PlushlinkError } from '../shared/errors.ts';
import {
  decodeFirmwareManifest,
  decodeFirmwareMessage,
  encodeFirmwareMessage,
  FIRMWARE_MESSAGE_MAX_BYTES,
  type FirmwareManifest,
  verifyFirmwareImage,
  verifyFirmwareManifest,
} from '../shared/firmware.ts';
import { identityToJson, type PublicIdentity, parseIdentityJson } from '../shared/identity.ts';
import { LIMITS } from '../shared/limits.ts';
import type { Clock, EndpointId } from '../shared/types.ts';
import { AdminError } from './admin.ts';
import type { ConnState } from './context.ts';
import { publishTo } from './forward.ts';
import type { AuditEvent, AuditLog } from './interfaces.ts';

/** DATA/firmware: `vendors/<vendor id>.json` (trusted vendor identities) and `releases/<model>@<version>.fw` (manifest ‖ image). */
export const FIRMWARE_DIR = 'firmware';
export const MAX_TRUSTED_VENDORS = 64;
/** Release files looked at per scan (the rest are ignored, with a warning). */
export const MAX_RELEASE_FILES = 1024;
/** Models distributed at once: each keeps its latest release (≤ 1 MiB) in memory. */
export const MAX_FIRMWARE_MODELS = 16;
export const DEFAULT_FIRMWARE_POLL_MS = 5000;
/** Releases being written to sockets at once: a new release for 10,000 toys costs ~8 MiB of buffers, not 10 GB. */
export const FIRMWARE_SEND_CONCURRENCY = 8;

const RELEASE_RE = /^([a-z0-9][a-z0-9._-]{0,31})@([1-9]\d{0,9})\.fw$/;
const VENDOR_RE = /^[a-z2-7]{32}\.json$/;

export function firmwarePaths(dataDir: string): { root: string; vendors: string; releases: string } {
  const root = join(dataDir, FIRMWARE_DIR);
  return { root, vendors: join(root, 'vendors'), releases: join(root, 'releases') };
}

export function releaseFileName(model: string, version: number): string {
  return `${model}@${version}.fw`;
}

function isMissing(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ENOENT';
}

/** Reads a whole regular file of at most `limit` bytes; larger files are refused before they are read. */
export async function readBoundedFile(path: string, limit: number, what: string): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new PlushlinkError('PLK_E_FIELD', `${what} ${path} is not a file`);
    if (st.size > limit)
      throw new PlushlinkError('PLK_E_LIMIT', `${what} ${path} is larger than ${limit} bytes`);
    const buf = Buffer.alloc(st.size);
    const { bytesRead } = await fh.read(buf, 0, st.size, 0);
    return new Uint8Array(buf.buffer, buf.byteOffset, bytesRead);
  } finally {
    await fh.close();
  }
}

/** A file of DATA/firmware that could not be used, and why. */
export interface FirmwareFileProblem {
  readonly file: string;
  readonly error: string;
}

/** [PLK-13.3] The vendor identities trusted by the gateway of `dataDir` (files that do not check out are reported, never trusted). */
export async function readTrustedVendors(
  dataDir: string,
): Promise<{ vendors: PublicIdentity[]; problems: FirmwareFileProblem[] }> {
  const dir = firmwarePaths(dataDir).vendors;
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => VENDOR_RE.test(n)).sort();
  } catch (err) {
    if (isMissing(err)) return { vendors: [], problems: [] };
    throw err;
  }
  const vendors: PublicIdentity[] = [];
  const problems: FirmwareFileProblem[] = [];
  for (const name of names.slice(0, MAX_TRUSTED_VENDORS)) {
    try {
      const text = await readLimitedText(join(dir, name), LIMITS.identityFileBytes, {
        notFile: (p) => new PlushlinkError('PLK_E_KEY_FILE', `${p} is not a file`),
        tooLarge: (p, n) => new PlushlinkError('PLK_E_LIMIT', `${p} is larger than ${n} bytes`),
      });
      const identity = parseIdentityJson(text);
      if (identity.role !== 'vendor')
        throw new PlushlinkError('PLK_E_KEY_FILE', `a ${identity.role} identity, not a vendor`);
      if (`${identity.id}.json` !== name)
        throw new PlushlinkError('PLK_E_ID_MISMATCH', 'file name is not its id');
      vendors.push(identity);
    } catch (err) {
      problems.push({ file: name, error: err instanceof Error ? err.message : String(err) });
    }
  }
  if (names.length > MAX_TRUSTED_VENDORS)
    problems.push({ file: dir, error: `more than ${MAX_TRUSTED_VENDORS} vendors; the rest are ignored` });
  return { vendors, problems };
}

export interface FirmwareAdminOptions {
  /** Time of the action in ms (default Date.now()). */
  readonly now?: number;
  readonly crypto?: CryptoSuite;
}

/**
 * [PLK-13.3] `plushlink firmware trust`: the gateway of `dataDir` distributes releases signed by
 * this vendor from now on (a running gateway picks it up at its next scan). Audited.
 */
export async function trustVendor(
  dataDir: string,
  audit: AuditLog,
  vendor: PublicIdentity,
  opts?: FirmwareAdminOptions,
): Promise<{ vendor: EndpointId; file: string; created: boolean }> {
  if (vendor.role !== 'vendor')
    throw new PlushlinkError('PLK_E_KEY_FILE', `${vendor.id} is a ${vendor.role} identity, not a vendor`);
  const { vendors } = await readTrustedVendors(dataDir);
  const created = !vendors.some((v) => v.id === vendor.id);
  if (created && vendors.length >= MAX_TRUSTED_VENDORS)
    throw new AdminError('ADMIN_LIMIT', `already ${MAX_TRUSTED_VENDORS} trusted vendors`);
  const dir = firmwarePaths(dataDir).vendors;
  await mkdirPrivate(dir);
  const file = join(dir, `${vendor.id}.json`);
  await atomicWriteFile(file, identityToJson(vendor));
  await audit.append({
    at: Math.floor(opts?.now ?? Date.now()),
    kind: 'firmware.vendor_trusted',
    detail: { vendor: vendor.id, created },
  });
  return { vendor: vendor.id, file, created };
}

async function mkdirPrivate(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

/** What `publishRelease` did. */
export interface PublishedRelease {
  readonly model: string;
  readonly version: number;
  readonly minVersion: number;
  readonly vendor: EndpointId;
  readonly imageSha256: string;
  readonly imageSize: number;
  readonly file: string;
  /** False when exactly this release was published before (idempotent). */
  readonly created: boolean;
  /** True when it is now the highest version of its model (what the gateway distributes). */
  readonly latest: boolean;
}

/** The manifest's claims, for an audit row of a refused publish (only when it decodes; never trusted). */
function claims(manifest: Uint8Array): Record<string, string | number> {
  try {
    const m = decodeFirmwareManifest(manifest);
    return { vendor: m.vendorId, model: m.model, version: m.version };
  } catch {
    return {};
  }
}

/**
 * [PLK-13.3] `plushlink firmware publish`: verifies the release against the vendors this gateway
 * trusts (PLK_E_UNSIGNED, PLK_E_WRONG_VENDOR, PLK_E_BAD_SIGNATURE, PLK_E_IMAGE_MISMATCH — a refusal
 * is audited, then thrown) and writes DATA/firmware/releases/<model>@<version>.fw (0600) atomically.
 */
export async function publishRelease(
  dataDir: string,
  audit: AuditLog,
  manifestBytes: Uint8Array,
  image: Uint8Array,
  opts?: FirmwareAdminOptions,
): Promise<PublishedRelease> {
  const now = Math.floor(opts?.now ?? Date.now());
  const { vendors } = await readTrustedVendors(dataDir);
  let manifest: FirmwareManifest;
  let message: Uint8Array;
  try {
    manifest = verifyFirmwareManifest(manifestBytes, vendors, opts?.crypto ?? defaultCrypto());
    verifyFirmwareImage(manifest, image);
    message = encodeFirmwareMessage(manifestBytes, image);
  } catch (err) {
    const reason = err instanceof PlushlinkError ? err.code : 'error';
    await audit.append({
      at: now,
      kind: 'firmware.publish_refused',
      detail: { reason, ...claims(manifestBytes) },
    });
    throw err;
  }
  const { releases } = firmwarePaths(dataDir);
  await mkdirPrivate(releases);
  const name = releaseFileName(manifest.model, manifest.version);
  const file = join(releases, name);
  const names = await readdir(releases);
  const models = new Set(names.map((n) => RELEASE_RE.exec(n)?.[1]).filter((m) => m !== undefined));
  if (!models.has(manifest.model) && models.size >= MAX_FIRMWARE_MODELS)
    throw new AdminError('ADMIN_LIMIT', `already ${MAX_FIRMWARE_MODELS} models with releases`);
  let created = true;
  if (names.includes(name)) {
    const existing = await readBoundedFile(file, FIRMWARE_MESSAGE_MAX_BYTES, 'release');
    if (!bytesEqual(existing, message)) {
      await audit.append({
        at: now,
        kind: 'firmware.publish_refused',
        detail: { reason: 'release-exists', ...claims(manifestBytes) },
      });
      throw new AdminError(
        'ADMIN_RELEASE_EXISTS',
        `${manifest.model} version ${manifest.version} was published before with other bytes; release a new version`,
      );
    }
    created = false;
  } else {
    await atomicWriteFile(file, message);
    await audit.append({
      at: now,
      kind: 'firmware.published',
      detail: {
        vendor: manifest.vendorId,
        model: manifest.model,
        version: manifest.version,
        minVersion: manifest.minVersion,
        imageSize: manifest.imageSize,
        imageSha256: toHex(manifest.imageSha256),
      },
    });
  }
  const latest = !names.some((n) => {
    const m = RELEASE_RE.exec(n);
    return m?.[1] === manifest.model && Number(m[2]) > manifest.version;
  });
  return {
    model: manifest.model,
    version: manifest.version,
    minVersion: manifest.minVersion,
    vendor: manifest.vendorId,
    imageSha256: toHex(manifest.imageSha256),
    imageSize: manifest.imageSize,
    file,
    created,
    latest,
  };
}

// ---- distribution -----------------------------------------------------------------------------

/** A release being distributed: the latest valid one of its model. */
export interface LoadedRelease {
  readonly model: string;
  readonly version: number;
  readonly vendor: EndpointId;
  readonly imageSha256: string;
  /** The MSG.FIRMWARE message sent to inboxes: manifest ‖ image. */
  readonly message: Uint8Array;
  /** name:inode:size:mtime:vendors — unchanged means nothing to re-read. */
  readonly key: string;
}

export interface FirmwareDistributorOptions {
  /** The gateway's data directory (releases and trusted vendors live in DATA/firmware). */
  readonly dataDir: string;
  /** How often DATA/firmware is scanned for new releases and vendors; default 5 s (100 ms .. 10 min). */
  readonly pollMs?: number;
  readonly log: Logger;
  readonly audit: (event: AuditEvent) => Promise<void>;
  readonly clock: Clock;
  readonly crypto: CryptoSuite;
}

/**
 * [PLK-13.6] The gateway's firmware channel — the only source of MSG.FIRMWARE messages: endpoints
 * can publish only to their own clip, relay and rcpt topics [PLK-4.2], whose payloads must decode
 * as envelopes or receipts. It scans DATA/firmware every few seconds, re-verifies each release
 * against the trusted vendors (a file placed there by hand is checked like a published one), keeps
 * the latest valid release per model, and sends it to every connected toy's inbox: right after
 * the proof on each inbox subscription, and to every connected toy when a new one appears.
 */
export class FirmwareDistributor {
  private readonly releases = new Map<string, LoadedRelease>();
  private readonly toys = new Map<EndpointId, { client: Client; topic: string }>();
  /** Release files that failed their checks (by key), so they are audited once, not every scan. */
  private readonly refused = new Set<string>();
  private readonly warned = new Set<string>();
  /** Sends waiting for one of the FIRMWARE_SEND_CONCURRENCY slots (a toy that disconnects meanwhile is skipped). */
  private readonly sendQueue: { id: EndpointId; client: Client; topic: string; release: LoadedRelease }[] =
    [];
  private sending = 0;
  private readonly pollMs: number;
  private timer: NodeJS.Timeout | undefined;
  private scan: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly opts: FirmwareDistributorOptions) {
    const pollMs = opts.pollMs ?? DEFAULT_FIRMWARE_POLL_MS;
    if (!Number.isFinite(pollMs) || pollMs < 100 || pollMs > 600_000)
      throw new RangeError('firmware pollMs must be within 100 ms .. 10 min');
    this.pollMs = pollMs;
  }

  /** Loads the releases present now, then scans every pollMs. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.rescan();
    this.timer = setInterval(() => void this.rescan(), this.pollMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.toys.clear();
    this.sendQueue.length = 0;
  }

  /** The releases being distributed, one per model. */
  current(): LoadedRelease[] {
    return [...this.releases.values()];
  }

  /** subscribe.ts, after the proof: registers a toy's inbox and sends it the current release of every model. */
  onInboxOpened(client: Client, state: ConnState): void {
    if (this.stopped || state.endpoint.role !== 'toy') return;
    this.toys.set(state.endpoint.id, { client, topic: state.inbox.topic });
    for (const r of this.releases.values()) this.send(state.endpoint.id, client, state.inbox.topic, r);
  }

  /** Scans DATA/firmware now (one scan at a time; a request during a scan runs one more after it). */
  rescan(): Promise<void> {
    if (this.scan) {
      this.again = true;
      return this.scan;
    }
    this.scan = (async () => {
      try {
        do {
          this.again = false;
          await this.scanOnce();
        } while (this.again && !this.stopped);
      } catch (err) {
        this.opts.log.error({ err: String(err) }, 'firmware scan failed');
      } finally {
        this.scan = undefined;
      }
    })();
    return this.scan;
  }

  private warnOnce(key: string, msg: string, extra: Record<string, unknown> = {}): void {
    if (this.warned.has(key)) return;
    if (this.warned.size > MAX_RELEASE_FILES) this.warned.clear();
    this.warned.add(key);
    this.opts.log.warn({ event: 'firmware.warning', ...extra }, msg);
  }

  private async scanOnce(): Promise<void> {
    const { vendors, problems } = await readTrustedVendors(this.opts.dataDir);
    for (const p of problems)
      this.warnOnce(`vendor:${p.file}:${p.error}`, 'trusted vendor file ignored', { ...p });
    const vendorKey = vendors.map((v) => v.id).join(',');
    const dir = firmwarePaths(this.opts.dataDir).releases;
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => RELEASE_RE.test(n)).sort();
    } catch (err) {
      if (!isMissing(err)) throw err;
      names = [];
    }
    if (names.length > MAX_RELEASE_FILES) {
      this.warnOnce(
        `files:${names.length}`,
        `more than ${MAX_RELEASE_FILES} release files; the rest are ignored`,
      );
      names = names.slice(0, MAX_RELEASE_FILES);
    }
    const byModel = new Map<string, { name: string; version: number }[]>();
    for (const name of names) {
      const m = RELEASE_RE.exec(name)!;
      const list = byModel.get(m[1]!) ?? [];
      list.push({ name, version: Number(m[2]) });
      byModel.set(m[1]!, list);
    }
    const models = [...byModel.keys()].sort();
    if (models.length > MAX_FIRMWARE_MODELS)
      this.warnOnce(
        `models:${models.length}`,
        `more than ${MAX_FIRMWARE_MODELS} models; the rest are ignored`,
      );
    const next = new Map<string, LoadedRelease>();
    for (const model of models.slice(0, MAX_FIRMWARE_MODELS)) {
      const candidates = byModel.get(model)!.sort((a, b) => b.version - a.version);
      for (const c of candidates) {
        const loaded = await this.load(dir, c.name, model, c.version, vendors, vendorKey);
        if (loaded) {
          next.set(model, loaded);
          break;
        }
      }
    }
    if (this.stopped) return;
    const changed: LoadedRelease[] = [];
    for (const [model, r] of next) {
      const before = this.releases.get(model);
      if (!before || before.version !== r.version || before.imageSha256 !== r.imageSha256) changed.push(r);
    }
    for (const model of this.releases.keys()) {
      if (!next.has(model))
        this.opts.log.info({ event: 'firmware.release_withdrawn', model }, 'release withdrawn');
    }
    this.releases.clear();
    for (const [model, r] of next) this.releases.set(model, r);
    for (const [id, t] of this.toys) if (t.client.closed) this.toys.delete(id);
    for (const r of changed) {
      this.opts.log.info(
        { event: 'firmware.release_loaded', model: r.model, version: r.version, toys: this.toys.size },
        'firmware release loaded',
      );
      await this.opts.audit({
        at: this.opts.clock(),
        kind: 'firmware.release_loaded',
        detail: { model: r.model, version: r.version, vendor: r.vendor, toys: this.toys.size },
      });
      for (const [id, t] of this.toys) this.send(id, t.client, t.topic, r);
    }
  }

  /** Reads and checks one release file; undefined when it does not check out (audited once). */
  private async load(
    dir: string,
    name: string,
    model: string,
    version: number,
    vendors: readonly PublicIdentity[],
    vendorKey: string,
  ): Promise<LoadedRelease | undefined> {
    const path = join(dir, name);
    let key: string;
    try {
      const st = await stat(path);
      key = `${name}:${st.ino}:${st.size}:${st.mtimeMs}:${vendorKey}`;
    } catch {
      return undefined; // removed meanwhile
    }
    const have = this.releases.get(model);
    if (have?.key === key) return have;
    if (this.refused.has(key)) return undefined;
    try {
      const message = await readBoundedFile(path, FIRMWARE_MESSAGE_MAX_BYTES, 'release');
      const parts = decodeFirmwareMessage(message);
      const manifest = verifyFirmwareManifest(parts.manifestBytes, vendors, this.opts.crypto);
      verifyFirmwareImage(manifest, parts.image);
      if (manifest.model !== model || manifest.version !== version)
        throw new PlushlinkError('PLK_E_FIELD', `file name says ${model}@${version}`);
      return {
        model,
        version,
        vendor: manifest.vendorId,
        imageSha256: toHex(manifest.imageSha256),
        message,
        key,
      };
    } catch (err) {
      if (this.refused.size >= MAX_RELEASE_FILES) this.refused.clear();
      this.refused.add(key);
      const reason = err instanceof PlushlinkError ? err.code : 'unreadable';
      this.opts.log.warn(
        { event: 'firmware.release_refused', file: name, reason, err: String(err) },
        'firmware release not distributed',
      );
      await this.opts.audit({
        at: this.opts.clock(),
        kind: 'firmware.release_refused',
        detail: { file: name.slice(0, 80), reason },
      });
      return undefined;
    }
  }

  private send(id: EndpointId, client: Client, topic: string, release: LoadedRelease): void {
    this.sendQueue.push({ id, client, topic, release });
    this.pump();
  }

  /** Writes queued releases, at most FIRMWARE_SEND_CONCURRENCY at a time (each until its socket has drained). */
  private pump(): void {
    while (this.sending < FIRMWARE_SEND_CONCURRENCY && this.sendQueue.length > 0) {
      const job = this.sendQueue.shift()!;
      if (job.client.closed || this.stopped) continue;
      this.sending++;
      publishTo(job.client, job.topic, job.release.message)
        .then(
          () =>
            this.opts.log.debug(
              {
                event: 'firmware.sent',
                endpoint: job.id,
                model: job.release.model,
                version: job.release.version,
              },
              'firmware sent',
            ),
          () => {},
        )
        .finally(() => {
          this.sending--;
          this.pump();
        });
    }
  }
}
