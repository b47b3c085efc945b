// `plushlink firmware keygen|sign|inspect|trust|publish`: vendor keys, signed release manifests, and releases a gateway distributes to toys [PLK-13].
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { type AdminHandles, openAdmin } from '../../gateway/admin.ts';
import { publishRelease, readBoundedFile, trustVendor } from '../../gateway/firmware.ts';
import { atomicWriteFile } from '../../platform/files.ts';
import { PRIVATE_KEY_FILE, readIdentity, readPrivateKey, writeKeyDir } from '../../platform/keyfiles.ts';
import { toHex } from '../../shared/bytes.ts';
import { PlushlinkError } from '../../shared/errors.ts';
import {
  createFirmwareManifest,
  decodeFirmwareManifest,
  decodeFirmwareMessage,
  describeFirmwareManifest,
  FIRMWARE_MANIFEST_MAX_BYTES,
  FIRMWARE_MAX_VERSION,
  FIRMWARE_MESSAGE_MAX_BYTES,
  type FirmwareManifest,
  isFirmwareModel,
  verifyFirmwareImage,
  verifyFirmwareManifest,
} from '../../shared/firmware.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { LIMITS } from '../../shared/limits.ts';
import { action, CliError, intOption, printJson } from '../cli-util.ts';

const DATA_HELP = 'gateway data directory (releases go to DATA/firmware, audited in DATA/audit.db)';
const KEY_HELP =
  'gateway key directory (signs audit anchors) or its identity.json; default DATA/gateway if present';

interface KeygenOptions {
  out: string;
  json?: boolean;
}

interface SignOptions {
  key: string;
  model: string;
  version: number;
  minVersion: number;
  image: string;
  out: string;
  releasedAt?: number;
  json?: boolean;
}

interface InspectOptions {
  image?: string;
  vendor?: string;
  json?: boolean;
}

interface DataOptions {
  data: string;
  gatewayKey?: string;
  json?: boolean;
}

interface PublishOptions extends DataOptions {
  manifest: string;
  image: string;
}

function modelOption(value: string): string {
  const shown = value.slice(0, 40);
  if (!isFirmwareModel(value)) {
    throw new InvalidArgumentError(
      `--model must be 1..${LIMITS.maxFirmwareModelChars} characters of [a-z0-9._-] starting with a letter or digit, got "${shown}"`,
    );
  }
  return value;
}

function timeOption(value: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > LIMITS.maxTimestampMs)
    throw new InvalidArgumentError(
      `--released-at must be an ISO 8601 time or ms since the epoch, got "${value}"`,
    );
  return ms;
}

function readImage(path: string): Promise<Uint8Array> {
  return readBoundedFile(path, LIMITS.maxFirmwareImageBytes, 'firmware image');
}

/** Opens the gateway data directory's audit log (and store), runs `fn`, always closes (anchoring the audit head). */
async function withAudit(opts: DataOptions, fn: (h: AdminHandles) => Promise<void>): Promise<void> {
  const defaultKey = join(opts.data, 'gateway');
  const gatewayKey =
    opts.gatewayKey ?? (existsSync(join(defaultKey, PRIVATE_KEY_FILE)) ? defaultKey : undefined);
  const h = await openAdmin(opts.data, gatewayKey ? { gatewayKey } : {});
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

/** A manifest file, or a release file (manifest ‖ image) such as DATA/firmware/releases/*.fw. */
async function readManifestOrRelease(
  path: string,
): Promise<{ manifest: FirmwareManifest; bytes: Uint8Array; image?: Uint8Array }> {
  const bytes = await readBoundedFile(path, FIRMWARE_MESSAGE_MAX_BYTES, 'manifest');
  if (bytes.length <= FIRMWARE_MANIFEST_MAX_BYTES) {
    try {
      return { manifest: decodeFirmwareManifest(bytes), bytes };
    } catch (err) {
      if (!(err instanceof PlushlinkError) || err.code !== 'PLK_E_TRAILING') throw err;
    }
  }
  const parts = decodeFirmwareMessage(bytes);
  return { manifest: parts.manifest, bytes: parts.manifestBytes, image: parts.image };
}

export function registerFirmwareCommands(program: Command): void {
  const fw = program
    .command('firmware')
    .description('vendor-signed firmware updates: vendor keys, signed manifests, releases for a gateway');

  fw.command('keygen')
    .description(
      'create a vendor key directory: endpoint.key (0600, signs releases) and identity.json (what toys pin and gateways trust)',
    )
    .requiredOption('--out <dir>', 'key directory (created 0700; an existing key is never overwritten)')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: KeygenOptions) => {
        const vendor = generateIdentity('vendor');
        const files = await writeKeyDir(opts.out, vendor);
        if (opts.json) {
          printJson({
            id: vendor.id,
            role: vendor.role,
            signPublicKey: toHex(vendor.signPublicKey),
            keyFile: files.keyFile,
            identityFile: files.identityFile,
          });
        } else process.stdout.write(`${vendor.id}\n`);
      }),
    );

  fw.command('sign')
    .description('sign a manifest for a firmware image with the vendor key [PLK-13.1]')
    .requiredOption('--key <dir>', 'vendor key directory (or its endpoint.key)')
    .requiredOption('--model <model>', 'toy model the image is for', modelOption)
    .requiredOption(
      '--version <n>',
      'firmware version (1..4294967295)',
      intOption('--version', 1, FIRMWARE_MAX_VERSION),
    )
    .requiredOption(
      '--min-version <k>',
      'minimum version ≤ N (anti-rollback): once installed, no release with a lower minimum version — so no version below K — installs again',
      intOption('--min-version', 0, FIRMWARE_MAX_VERSION),
    )
    .requiredOption('--image <file>', `firmware image (at most ${LIMITS.maxFirmwareImageBytes} bytes)`)
    .requiredOption('--out <manifest>', 'manifest file to write')
    .option('--released-at <time>', 'release time, ISO 8601 or ms (default: now)', timeOption)
    .option('--json', 'print the manifest as JSON')
    .action(
      action(async (opts: SignOptions) => {
        if (opts.minVersion > opts.version)
          throw new CliError(`--min-version ${opts.minVersion} is above --version ${opts.version}`, 2);
        const vendor = await readPrivateKey(opts.key);
        if (vendor.role !== 'vendor')
          throw new CliError(
            `${opts.key} holds a ${vendor.role} key, not a vendor key (plushlink firmware keygen)`,
          );
        const image = await readImage(opts.image);
        const manifest = createFirmwareManifest({
          vendor,
          model: opts.model,
          version: opts.version,
          minVersion: opts.minVersion,
          image,
          releasedAt: opts.releasedAt ?? Date.now(),
        });
        await atomicWriteFile(opts.out, manifest);
        const m = decodeFirmwareManifest(manifest);
        if (opts.json) printJson({ ...describeFirmwareManifest(m), file: opts.out });
        else
          process.stdout.write(
            `signed ${m.model} version ${m.version} (minimum ${m.minVersion}), image ${m.imageSize} bytes sha256 ${toHex(m.imageSha256)} → ${opts.out}\n`,
          );
      }),
    );

  fw.command('inspect')
    .description('print a manifest (or a release file: manifest ‖ image) as JSON; checks it when asked')
    .argument('<manifest>', 'manifest file, or a DATA/firmware/releases/*.fw release')
    .option('--vendor <identity>', 'verify the signature with this vendor identity.json (or key directory)')
    .option('--image <file>', 'check this image against the manifest size and SHA-256')
    .option('--json', 'JSON output (the default; kept for symmetry with other commands)')
    .action(
      action(async (path: string, opts: InspectOptions) => {
        const read = await readManifestOrRelease(path);
        const out: Record<string, unknown> = describeFirmwareManifest(read.manifest);
        if (opts.vendor) {
          verifyFirmwareManifest(read.bytes, await readIdentity(opts.vendor));
          out.signatureCheck = 'valid';
        } else out.signatureCheck = 'not verified';
        const image = opts.image ? await readImage(opts.image) : read.image;
        if (image) {
          verifyFirmwareImage(read.manifest, image);
          out.imageCheck = 'matches';
        }
        printJson(out);
      }),
    );

  fw.command('trust')
    .description(
      "trust a vendor's identity for a gateway: it distributes releases signed by this key [PLK-13.3]",
    )
    .argument('<vendor-identity>', 'the vendor identity.json (or its key directory)')
    .option('--data <dir>', DATA_HELP, './data')
    .option('--gateway-key <path>', KEY_HELP)
    .option('--json', 'print the result as JSON')
    .action(
      action(async (path: string, opts: DataOptions) => {
        const vendor = await readIdentity(path);
        if (vendor.role !== 'vendor')
          throw new CliError(
            `${path} is a ${vendor.role} identity, not a vendor identity (plushlink firmware keygen)`,
          );
        await withAudit(opts, async (h) => {
          const r = await trustVendor(opts.data, h.audit, vendor);
          if (opts.json) printJson(r);
          else process.stdout.write(`${r.created ? 'trusted' : 'already trusted'}: vendor ${r.vendor}\n`);
        });
      }),
    );

  fw.command('publish')
    .description(
      'verify a release against the trusted vendors and put it in DATA/firmware for the gateway to distribute [PLK-13.3]',
    )
    .requiredOption('--manifest <file>', 'manifest signed with plushlink firmware sign')
    .requiredOption('--image <file>', 'the firmware image the manifest describes')
    .option('--data <dir>', DATA_HELP, './data')
    .option('--gateway-key <path>', KEY_HELP)
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: PublishOptions) => {
        const manifest = await readBoundedFile(opts.manifest, FIRMWARE_MANIFEST_MAX_BYTES, 'manifest');
        const image = await readImage(opts.image);
        await withAudit(opts, async (h) => {
          const r = await publishRelease(opts.data, h.audit, manifest, image);
          if (opts.json) printJson(r);
          else {
            const what = r.created ? 'published' : 'already published';
            const note = r.latest ? '' : ' (a higher version of this model is already published)';
            process.stdout.write(`${what}: ${r.model} version ${r.version} → ${r.file}${note}\n`);
          }
        });
      }),
    );
}
