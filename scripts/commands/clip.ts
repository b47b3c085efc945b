// `plushlink clip seal|open|inspect`: end-to-end encrypted voice clip envelopes from the command line [PLK-5].
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { readIdentity } from '../../platform/keyfiles.ts';
import { toHex } from '../../shared/bytes.ts';
import { defaultCrypto } from '../../shared/crypto.ts';
import {
  type CodecParams,
  DEFAULT_CODEC,
  decodeClip,
  describeClip,
  openClip,
  sealClip,
  verifyClip,
} from '../../shared/envelope.ts';
import { PlushlinkError } from '../../shared/errors.ts';
import type { PublicIdentity } from '../../shared/identity.ts';
import { LIMITS, MSG, PROTOCOL_VERSION } from '../../shared/limits.ts';
import { decodeReceipt, describeReceipt, verifyReceipt } from '../../shared/receipt.ts';
import { decodeConnectToken, decodeGatewayProof } from '../../shared/token.ts';
import { clipVersion } from '../../shared/versions.ts';
import { action, CliError, checkOutFile, intOption, printJson, readKeyOption } from '../cli-util.ts';

/** Name of the per-sender sequence counter kept next to the private key [PLK-8.1]. */
export const SEQUENCE_FILE = 'sequence';
const OPUS_RATES = [8000, 12000, 16000, 24000, 48000];

/** Reads a whole file after checking its size, so an oversized input is refused before it is read. */
export async function readBounded(path: string, limit: number, what: string): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CliError(`${what} ${path} is not a regular file`);
    if (st.size > limit) {
      throw new PlushlinkError('PLK_E_LIMIT', `${what} ${path} is ${st.size} bytes, max ${limit}`);
    }
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const { bytesRead } = await fh.read(buf, off, st.size - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, off);
  } finally {
    await fh.close();
  }
}

/** An error about the temporary file, told about the file the user named (not `.1a2b3c.tmp`). */
function aboutTarget(err: unknown, path: string): unknown {
  if (err && typeof err === 'object' && 'code' in err) {
    const e = err as { code: unknown; message: unknown };
    return Object.assign(new Error(`cannot write ${path}: ${String(e.message)}`, { cause: err }), {
      code: e.code,
      path,
    });
  }
  return err;
}

/** Writes `data` to a temporary file in the same directory, then renames it over `path` (atomic). */
export async function writeAtomic(path: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(tmp, 'wx', mode);
  } catch (err) {
    throw aboutTarget(err, path);
  }
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw aboutTarget(err, path);
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw aboutTarget(err, path);
  }
}

export interface OggOpusSummary {
  readonly channels: number;
  readonly inputSampleRate: number;
  readonly preSkip: number;
  /** Last granule position (48 kHz samples, pre-skip included). */
  readonly lastGranule: bigint;
  readonly durationMs: number;
}

/**
 * Minimal Ogg Opus reader (RFC 3533 page chain + RFC 7845 OpusHead): walks the pages, keeps the last
 * granule position, and returns undefined when the bytes are not a well-formed Ogg Opus stream.
 */
export function summarizeOggOpus(bytes: Uint8Array): OggOpusSummary | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  let head: { channels: number; inputSampleRate: number; preSkip: number } | undefined;
  let lastGranule = -1n;
  while (off < bytes.length) {
    if (off + 27 > bytes.length) return undefined;
    if (dv.getUint32(off) !== 0x4f676753 /* 'OggS' */ || bytes[off + 4] !== 0) return undefined;
    const granule = dv.getBigInt64(off + 6, true);
    const segments = bytes[off + 26]!;
    if (off + 27 + segments > bytes.length) return undefined;
    let bodyLength = 0;
    for (let i = 0; i < segments; i++) bodyLength += bytes[off + 27 + i]!;
    const body = off + 27 + segments;
    if (body + bodyLength > bytes.length) return undefined;
    if (!head) {
      // The first page carries exactly the OpusHead packet (RFC 7845 §3).
      if (bodyLength < 19 || new TextDecoder().decode(bytes.subarray(body, body + 8)) !== 'OpusHead')
        return undefined;
      head = {
        channels: bytes[body + 9]!,
        preSkip: dv.getUint16(body + 10, true),
        inputSampleRate: dv.getUint32(body + 12, true),
      };
    }
    if (granule !== -1n) lastGranule = granule;
    off = body + bodyLength;
  }
  if (!head || lastGranule < 0n) return undefined;
  const samples = lastGranule - BigInt(head.preSkip);
  const durationMs = samples > 0n ? Math.round(Number(samples) / 48) : 0;
  return { ...head, lastGranule, durationMs };
}

/** Reads DIR/sequence (0 when absent): the last sequence number this sender used. */
export async function readLastSequence(keyDir: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(join(keyDir, SEQUENCE_FILE), 'utf8');
  } catch (err) {
    if (err && typeof err === 'object' && 'code' in err && err.code === 'ENOENT') return 0;
    throw err;
  }
  const trimmed = text.trim();
  if (!/^\d{1,16}$/.test(trimmed) || !Number.isSafeInteger(Number(trimmed))) {
    throw new CliError(`${join(keyDir, SEQUENCE_FILE)} is malformed (expected a decimal integer)`);
  }
  return Number(trimmed);
}

/** Lock file that serializes concurrent `clip seal` runs with the same key. */
export const SEQUENCE_LOCK = 'sequence.lock';
const LOCK_WAIT_MS = 5000;

async function withSequenceLock<T>(keyDir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(keyDir, SEQUENCE_LOCK);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await (await open(lock, 'wx', 0o600)).close();
      break;
    } catch (err) {
      const busy = err && typeof err === 'object' && 'code' in err && err.code === 'EEXIST';
      if (!busy) throw err;
      if (Date.now() > deadline) {
        throw new CliError(
          `${lock} is held by another seal (or left by a crash: remove it if no seal is running)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 30));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

/**
 * Reserves the next sequence number (or checks an explicit one) and records it atomically before the
 * envelope is written, so a crash can skip a number but never reuse one [PLK-8.1]. Concurrent seals
 * with the same key are serialized by DIR/sequence.lock.
 */
export async function reserveSequence(keyDir: string, explicit?: number): Promise<number> {
  return withSequenceLock(keyDir, async () => {
    const last = await readLastSequence(keyDir);
    const seq = explicit ?? last + 1;
    if (seq <= last) {
      throw new CliError(`--seq ${seq} is not above the last sequence number used by this key (${last})`);
    }
    if (seq > LIMITS.maxSequence) throw new CliError(`sequence number ${seq} is out of range`);
    await writeAtomic(join(keyDir, SEQUENCE_FILE), `${seq}\n`, 0o600);
    return seq;
  });
}

async function keyDirOf(keyPath: string): Promise<string> {
  return (await stat(keyPath)).isDirectory() ? keyPath : dirname(keyPath);
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

interface SealOptions {
  key: string;
  to: string[];
  in: string;
  out: string;
  seq?: number;
  durationMs?: number;
  bitrate?: number;
  json?: boolean;
}

interface OpenOptions {
  key: string;
  from: string;
  in: string;
  out: string;
  json?: boolean;
}

interface InspectOptions {
  json?: boolean;
  from?: string;
}

async function sealCommand(opts: SealOptions): Promise<void> {
  // Before any work, and before a sequence number is spent on an envelope that could not be written.
  await checkOutFile(opts.out, '--out');
  const sender = await readKeyOption(opts.key);
  const recipients: PublicIdentity[] = [];
  for (const path of opts.to) recipients.push(await readIdentity(path));
  const ogg = await readBounded(opts.in, LIMITS.maxClipPlaintextBytes, 'clip');
  const info = summarizeOggOpus(ogg);
  let durationMs = opts.durationMs;
  if (durationMs === undefined) {
    if (!info) throw new CliError(`${opts.in} is not an Ogg Opus file: pass --duration-ms`);
    durationMs = info.durationMs;
  }
  if (durationMs > LIMITS.maxDurationMs) {
    throw new PlushlinkError('PLK_E_LIMIT', `duration ${durationMs} ms, max ${LIMITS.maxDurationMs}`);
  }
  let codec: CodecParams = { ...DEFAULT_CODEC, bitrate: opts.bitrate ?? DEFAULT_CODEC.bitrate };
  if (info) {
    if (info.channels !== 1 && info.channels !== 2) {
      throw new CliError(`${opts.in} has ${info.channels} channels; PlushLink clips are mono or stereo`);
    }
    codec = {
      ...codec,
      channels: info.channels,
      sampleRate: OPUS_RATES.includes(info.inputSampleRate) ? info.inputSampleRate : DEFAULT_CODEC.sampleRate,
    };
  }
  const sequence = await reserveSequence(await keyDirOf(opts.key), opts.seq);
  const envelope = sealClip({ sender, recipients, sequence, createdAt: Date.now(), durationMs, codec, ogg });
  await writeAtomic(opts.out, envelope);
  const described = describeClip(decodeClip(envelope));
  if (opts.json) printJson(described);
  else {
    process.stdout.write(
      `sealed clip ${String(described.clipId)} seq ${sequence} (${durationMs} ms, ${envelope.length} bytes) to ${recipients.length} recipient(s)\n`,
    );
  }
}

async function openCommand(opts: OpenOptions): Promise<void> {
  await checkOutFile(opts.out, '--out');
  const recipient = await readKeyOption(opts.key);
  const sender = await readIdentity(opts.from);
  const bytes = await readBounded(opts.in, LIMITS.maxEnvelopeBytes, 'envelope');
  const opened = openClip(bytes, { recipient, sender });
  await writeAtomic(opts.out, opened.ogg, 0o600); // a child's voice: readable by its owner only
  if (opts.json) {
    printJson({
      sender: opened.header.sender,
      clipId: toHex(opened.header.clipId),
      sequence: opened.header.sequence,
      durationMs: opened.header.durationMs,
      bytes: opened.ogg.length,
    });
  } else {
    process.stdout.write(
      `opened clip ${toHex(opened.header.clipId)} from ${opened.header.sender} seq ${opened.header.sequence} (${opened.ogg.length} bytes)\n`,
    );
  }
}

/** Describes any PlushLink wire object by its first byte [PLK-2.2]; verifies it when `signer` is given. */
export function inspectBytes(bytes: Uint8Array, signer?: PublicIdentity): Record<string, unknown> {
  if (bytes.length === 0) throw new PlushlinkError('PLK_E_TRUNCATED', 'empty input');
  const verified = signer ? { signature: 'valid', signer: signer.id } : { signature: 'not verified' };
  switch (bytes[0]) {
    case MSG.CLIP: {
      // [PLK-14.1] clip objects of another known version (a v2 chunk) through their module.
      const module = clipVersion(bytes[1] ?? 0);
      if (module && module.version !== PROTOCOL_VERSION) {
        const obj = module.decode(bytes);
        if (signer) {
          if (obj.header.sender !== signer.id)
            throw new PlushlinkError(
              'PLK_E_WRONG_ENDPOINT',
              `clip is from ${obj.header.sender}, not ${signer.id}`,
            );
          module.verify(obj, signer.signPublicKey, defaultCrypto());
        }
        return { ...module.describe(obj), ...verified };
      }
      const clip = decodeClip(bytes);
      if (signer) {
        if (clip.header.sender !== signer.id) {
          throw new PlushlinkError(
            'PLK_E_WRONG_ENDPOINT',
            `clip is from ${clip.header.sender}, not ${signer.id}`,
          );
        }
        verifyClip(clip, signer.signPublicKey);
      }
      return { ...describeClip(clip), ...verified };
    }
    case MSG.RECEIPT: {
      const receipt = signer ? verifyReceipt(bytes, signer.signPublicKey) : decodeReceipt(bytes);
      if (signer && receipt.recipient !== signer.id) {
        throw new PlushlinkError(
          'PLK_E_WRONG_ENDPOINT',
          `receipt is from ${receipt.recipient}, not ${signer.id}`,
        );
      }
      return { ...describeReceipt(receipt), size: bytes.length, ...verified };
    }
    case MSG.TOKEN: {
      const t = decodeConnectToken(bytes);
      if (signer)
        throw new CliError('--from is not supported for connect tokens (use the gateway to verify them)');
      return {
        type: 'connect-token',
        gatewayId: t.gatewayId,
        endpointId: t.endpointId,
        timestamp: new Date(t.timestamp).toISOString(),
        nonce: toHex(t.nonce),
        size: bytes.length,
        ...verified,
      };
    }
    case MSG.PROOF: {
      const p = decodeGatewayProof(bytes);
      if (signer) throw new CliError('--from is not supported for gateway proofs');
      return {
        type: 'gateway-proof',
        gatewayId: p.gatewayId,
        endpointId: p.endpointId,
        nonce: toHex(p.nonce),
        timestamp: new Date(p.timestamp).toISOString(),
        size: bytes.length,
        ...verified,
      };
    }
    default:
      throw new PlushlinkError(
        'PLK_E_MSG_TYPE',
        `unknown first byte 0x${bytes[0]!.toString(16).padStart(2, '0')}`,
      );
  }
}

function printFields(fields: Record<string, unknown>): void {
  const lines = Object.entries(fields).map(([k, v]) => {
    const text = typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
    return `${k}: ${text}`;
  });
  process.stdout.write(`${lines.join('\n')}\n`);
}

function positiveInt(name: string, max: number): (value: string) => number {
  return intOption(name, 0, max);
}

export function registerClipCommands(program: Command): void {
  const clip = program.command('clip').description('seal, open and inspect end-to-end encrypted voice clips');

  clip
    .command('seal')
    .description('encrypt an Ogg Opus clip to one or more recipients and sign it with the sender key')
    .requiredOption('--key <dir>', 'sender key directory (or endpoint.key)')
    .requiredOption('--to <identity>', 'recipient identity.json or key directory (repeatable)', collect)
    .requiredOption('--in <clip>', 'Ogg Opus input file')
    .requiredOption('--out <envelope>', 'envelope output file')
    .option(
      '--seq <n>',
      'sequence number (default: last used + 1, kept in DIR/sequence)',
      positiveInt('--seq', LIMITS.maxSequence),
    )
    .option(
      '--duration-ms <n>',
      'clip duration (default: read from the Ogg Opus granule positions)',
      positiveInt('--duration-ms', LIMITS.maxDurationMs),
    )
    .option('--bitrate <bps>', 'codec bitrate recorded in the header', intOption('--bitrate', 500, 512_000))
    .option('--json', 'print the sealed header as JSON')
    .action(action(sealCommand));

  clip
    .command('open')
    .description('verify an envelope against its sender, decrypt it with our key and write the Ogg Opus clip')
    .requiredOption('--key <dir>', 'recipient key directory (or endpoint.key)')
    .requiredOption('--from <identity>', 'sender identity.json or key directory')
    .requiredOption('--in <envelope>', 'envelope file')
    .requiredOption('--out <clip>', 'Ogg Opus output file (written with mode 0600)')
    .option('--json', 'print a summary as JSON')
    .action(action(openCommand));

  clip
    .command('inspect')
    .description('print the header of an envelope (or receipt, connect token, gateway proof); never secrets')
    .argument('<file>', 'wire object file')
    .option('--from <identity>', 'also verify the signature against this identity (clips and receipts)')
    .option('--json', 'print as JSON')
    .action(
      action(async (file: string, opts: InspectOptions) => {
        const bytes = await readBounded(file, LIMITS.maxEnvelopeBytes, 'input');
        const signer = opts.from ? await readIdentity(opts.from) : undefined;
        const fields = inspectBytes(bytes, signer);
        if (opts.json) printJson(fields);
        else printFields(fields);
      }),
    );
}
