// `npm run fuzz`: fixed-time, random-seed mutation fuzzing of every parser and of a live gateway over raw MQTT; only typed errors may escape.
/*
 * Usage: npm run fuzz -- [--seconds N] [--seed N] [--only a,b] [--input FILE --only T] [--list]
 *
 * Each target gets a share of the time budget (default 60 s, at most 3600). Inputs are valid seed
 * inputs mutated (bit flips, interesting bytes and words at length fields, truncation, extension,
 * insertion, deletion, duplication, splicing, dictionary tokens, target fix-ups such as re-signing
 * or CRC repair) plus random bytes. Input #k of a target depends only on --seed, the target's name
 * and k, so a run replays with the seed it prints first; a failing input is also saved to a file
 * that `--input FILE --only TARGET` runs alone.
 *
 * A failure is anything but the target's typed error escaping (PlushlinkError for the wire
 * protocol and key files, CodecError for Ogg/WAV, OutboxError for the outbox file, AttError for the
 * BLE phone, nothing at all for the BLE servers, the audit anchor reader and the gateway), a hang,
 * a crash of the in-process gateway, the gateway failing its legitimate endpoint (a toy that
 * connects and publishes a clip, a parent that receives and receipts it, checked every 2 s during
 * the MQTT targets and at the end), or RSS growing beyond RSS_GROWTH_LIMIT_MB. On failure it prints
 * the seed, target, input number, the input's hex prefix and the stack, and exits 1.
 *
 * To add a parser, add one entry to the list in `parserTargets()` below.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { readWav, readWavAsMono, writeWav } from '../device/audio/wav.ts';
import { Air, type BlePeripheral, bleAddress, type Connection } from '../device/ble/air.ts';
import { ATT_OP, AttError } from '../device/ble/att.ts';
import { COMMAND, HANDLES, type ToyBleHandlers, ToyGattServer } from '../device/ble/gatt.ts';
import { CID } from '../device/ble/link.ts';
import { type PairingUi, SmpInitiator, SmpResponder, type SmpSideOptions } from '../device/ble/pairing.ts';
import { generateP256KeyPair, type P256KeyPair } from '../device/ble/pairing-crypto.ts';
import { BlePhone } from '../device/ble/phone.ts';
import { SeededRandom } from '../device/ble/random.ts';
import { BleToy } from '../device/ble/toy.ts';
import { oggCrc32 } from '../device/codec/crc32.ts';
import { CodecError } from '../device/codec/errors.ts';
import { readOggOpus, writeOggOpus } from '../device/codec/ogg.ts';
import { Outbox, OutboxError } from '../device/outbox.ts';
import { connectEndpoint, type EndpointConnection } from '../device/transport/mqtt-connect.ts';
import { addFamilyMember, createFamily, provisionEndpoint } from '../gateway/admin.ts';
import { readAnchorFile } from '../gateway/audit.ts';
import { type EmbeddedGateway, startEmbeddedGateway } from '../gateway/embedded.ts';
import { readPrivateKey, writeKeyDir } from '../platform/keyfiles.ts';
import { toHex } from '../shared/bytes.ts';
import { defaultCrypto } from '../shared/crypto.ts';
import { decodeClip, openClip, sealClip } from '../shared/envelope.ts';
import { CodedError, PlushlinkError } from '../shared/errors.ts';
import {
  checkFirmwareMessage,
  createFirmwareManifest,
  decodeFirmwareManifest,
  encodeFirmwareMessage,
  type FirmwareDevice,
} from '../shared/firmware.ts';
import {
  generateIdentity,
  identityToJson,
  type PrivateIdentity,
  parseIdentityJson,
  parsePrivateKeyJson,
  privateKeyToJson,
  publicPart,
} from '../shared/identity.ts';
import { parseJson } from '../shared/json.ts';
import { CONTEXT, SIGNATURE_BYTES } from '../shared/limits.ts';
import { seededRandom } from '../shared/random.ts';
import { createReceipt, decodeReceipt, verifyReceipt } from '../shared/receipt.ts';
import { createRoster, decodeRoster, verifyRoster } from '../shared/roster.ts';
import { signBody } from '../shared/signed.ts';
import {
  createConnectToken,
  createGatewayProof,
  decodeConnectToken,
  decodeGatewayProof,
  verifyConnectToken,
  verifyGatewayProof,
} from '../shared/token.ts';
import { clipTopic, inboxTopic, receiptTopic, relayTopic } from '../shared/topics.ts';
import { generateRoster } from '../sim/roster.ts';
import { readRosterFiles, writeRosterFiles } from '../sim/roster-file.ts';

/**
 * Documented bounds, measured after a full GC: RSS after the last target may exceed RSS after
 * setup by at most RSS_GROWTH_LIMIT_MB, and the JS heap by at most HEAP_GROWTH_LIMIT_MB. Measured
 * on the 2-core reference box: RSS +20–80 MB and heap +0–10 MB for 30–120 s runs (RSS swings by
 * ~150 MB while 8 sockets at a time hammer the gateway: socket buffers and malloc, not the heap).
 * A leak of ~1 KB per MQTT session (what an uncapped replay cache costs) crosses the heap bound
 * within a 60 s run; one kept envelope per input crosses both within seconds.
 */
const RSS_GROWTH_LIMIT_MB = 256;
const HEAP_GROWTH_LIMIT_MB = 64;
/** An input that takes longer than this is a hang. */
const HANG_MS = 10_000;
const MAX_SECONDS = 3600;

// ---------------------------------------------------------------------------------------------- randomness

/** sfc32 (Chris Doty-Humphrey's Small Fast Chaotic generator): deterministic, fast, 32-bit. */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;
  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = seed >>> 0;
    for (let i = 0; i < 12; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

/** FNV-1a, to derive a target's stream from the run seed and its name. */
function hash32(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

// ---------------------------------------------------------------------------------------------- targets

/** One thing to fuzz: `run(bytes)` may return or throw its typed error (or a promise of either). */
export interface FuzzTarget {
  readonly name: string;
  readonly run: (bytes: Uint8Array) => unknown;
  /** Valid inputs to mutate (random bytes only when absent). */
  readonly seeds?: readonly Uint8Array[];
  /** The errors that may escape; default: PlushlinkError. */
  readonly expected?: (err: unknown) => boolean;
  /** Tokens inserted or written over the input (an AFL-style dictionary). */
  readonly dictionary?: readonly Uint8Array[];
  /** Offsets of length and count fields in the seeds: preferred places for word edits. */
  readonly lengthFields?: readonly number[];
  /** Inputs are cut to this many bytes. Default 4096 or the largest seed + 1024. */
  readonly maxLength?: number;
  /** Applied to half the mutated inputs: repairs what would stop a parser early (CRCs, signatures). */
  readonly fixup?: (bytes: Uint8Array, rng: Rng) => Uint8Array;
  /** A structure-aware mutation of a seed (e.g. one JSON value replaced by a hostile one), used for half the inputs. */
  readonly structured?: (seed: Uint8Array, rng: Rng) => Uint8Array;
  /** Share of the time budget; default 1. */
  readonly weight?: number;
  /** Inputs in flight at once (asynchronous targets); default 1. */
  readonly concurrency?: number;
  /** A liveness check run every 2 s while this target runs (and once after it). */
  readonly check?: () => Promise<void>;
}

const isPlushlinkError = (e: unknown): boolean => e instanceof PlushlinkError;
const isCodecError = (e: unknown): boolean => e instanceof CodecError;
const nothing = (): boolean => false;
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Sequences of PDUs in one input: [u16 LE length][pdu]... (a cut last PDU keeps what is there). */
function framesOf(bytes: Uint8Array, max = 64): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off + 2 <= bytes.length && out.length < max) {
    const n = bytes[off]! | (bytes[off + 1]! << 8);
    out.push(bytes.subarray(off + 2, Math.min(bytes.length, off + 2 + n)));
    off += 2 + n;
  }
  return out;
}

function frames(pdus: readonly Uint8Array[]): Uint8Array {
  const out: number[] = [];
  for (const p of pdus) out.push(p.length & 0xff, p.length >>> 8, ...p);
  return Uint8Array.from(out);
}

const microtasks = async (n = 4): Promise<void> => {
  for (let i = 0; i < n; i++) await null;
};

interface Fixtures {
  readonly dir: string;
  readonly toy: PrivateIdentity;
  readonly mom: PrivateIdentity;
  readonly dad: PrivateIdentity;
  readonly gateway: PrivateIdentity;
  readonly now: number;
}

function fixtures(dir: string): Fixtures {
  const rnd = seededRandom('plushlink-fuzz');
  return {
    dir,
    toy: generateIdentity('toy', rnd),
    mom: generateIdentity('parent', rnd),
    dad: generateIdentity('parent', rnd),
    gateway: generateIdentity('gateway', rnd),
    now: 1_767_225_600_000,
  };
}

/** Re-signs a signed object (last 64 bytes) so that verification passes and the checks behind it run. */
function resign(seed: Uint8Array, context: string): (b: Uint8Array) => Uint8Array {
  const crypto = defaultCrypto();
  return (b) => {
    if (b.length < SIGNATURE_BYTES + 2) return b;
    const out = Uint8Array.from(b);
    const body = out.subarray(0, out.length - SIGNATURE_BYTES);
    out.set(signBody(crypto, seed, context, body), out.length - SIGNATURE_BYTES);
    return out;
  };
}

/** Recomputes the CRC of every page whose header and segment table fit (Ogg CRCs would stop nearly every input). */
function fixOggCrcs(b: Uint8Array): Uint8Array {
  const out = Uint8Array.from(b);
  let off = 0;
  while (off + 27 <= out.length) {
    if (out[off] !== 0x4f || out[off + 1] !== 0x67 || out[off + 2] !== 0x67 || out[off + 3] !== 0x53) break;
    const nseg = out[off + 26]!;
    if (off + 27 + nseg > out.length) break;
    let len = 27 + nseg;
    for (let i = 0; i < nseg; i++) len += out[off + 27 + i]!;
    if (off + len > out.length) break;
    const page = out.subarray(off, off + len);
    page.fill(0, 22, 26);
    new DataView(page.buffer, page.byteOffset).setUint32(22, oggCrc32(page), true);
    off += len;
  }
  return out;
}

/** Values a hostile JSON file puts where a parser expects something else (as JSON text). */
const HOSTILE_JSON_VALUES = [
  '{"toString":0}',
  '{"valueOf":0}',
  '{"toString":0,"valueOf":0}',
  '{"__proto__":{"v":1,"plushlink":"identity"}}',
  '{"constructor":{"prototype":{"v":1}}}',
  '[]',
  '[1]',
  '{}',
  'null',
  'true',
  'false',
  '0',
  '-1',
  '1',
  '2',
  '0.5',
  '1e308',
  '9007199254740993',
  '1e400',
  '""',
  '"x"',
  '"\\ud800"',
  '"\\u0000"',
  `"${'a'.repeat(5000)}"`,
  `${'['.repeat(64)}${']'.repeat(64)}`,
];

/** Replaces one value of a JSON seed by a hostile one, or adds a hostile or duplicate key (text-level, so anything goes). */
function mutateJson(seed: Uint8Array, rng: Rng): Uint8Array {
  const src = text(seed);
  // Positions of values: after a colon, an opening bracket or a comma (good enough for our seeds).
  const starts: number[] = [];
  for (let i = 0; i < src.length; i++)
    if (src[i] === ':' || src[i] === '[' || src[i] === ',') starts.push(i + 1);
  if (starts.length === 0) return seed;
  const at = rng.pick(starts);
  let from = at;
  while (src[from] === ' ' || src[from] === '\n') from++;
  // The end of the value at `from`: a string, a balanced object/array or a bare token.
  let end = from;
  if (src[from] === '"') {
    end = from + 1;
    while (end < src.length && src[end] !== '"') end += src[end] === '\\' ? 2 : 1;
    end++;
  } else if (src[from] === '{' || src[from] === '[') {
    let depth = 0;
    for (; end < src.length; end++) {
      if (src[end] === '{' || src[end] === '[') depth++;
      else if (src[end] === '}' || src[end] === ']') depth--;
      if (depth === 0) break;
    }
    end++;
  } else {
    while (end < src.length && !',}]\n'.includes(src[end]!)) end++;
  }
  const value = rng.pick(HOSTILE_JSON_VALUES);
  switch (rng.int(4)) {
    case 0: {
      // a key of the document (or a hostile one) added again in front: duplicate or prototype key
      const key = rng.chance(0.5)
        ? rng.pick(['__proto__', 'constructor', 'prototype', 'toString'])
        : rng.pick(['plushlink', 'v', 'role', 'id']);
      const brace = src.indexOf('{');
      if (brace < 0) return seed;
      return utf8(`${src.slice(0, brace + 1)}"${key}":${value},${src.slice(brace + 1)}`);
    }
    default:
      return utf8(`${src.slice(0, from)}${value}${src.slice(end)}`);
  }
}

const JSON_DICTIONARY = [
  '{"toString":0}',
  '{"valueOf":0}',
  '"__proto__":',
  '"constructor":',
  '"prototype":',
  '1e400',
  '-1e400',
  '9007199254740993',
  '[[[[[[[[[[[[[[[[[[[[',
  '"\\ud800"',
  '"\\u0000"',
  '\ufeff',
  'null',
  'true',
  '[]',
  '{}',
  '"',
  ',',
  ':',
  '\\',
  '"v":1,',
  '"v":2,',
].map(utf8);

const toyFirmware = (): ToyBleHandlers => ({
  startRecording: () => undefined,
  stopRecording: () => new Uint8Array(300).fill(1),
  playClip: () => undefined,
  getStatus: () => ({ recording: false, batteryPercent: 80, clipsWaiting: 1 }),
});
const yes: PairingUi = { confirmNumericComparison: () => true };
const TOY_ADDRESS = bleAddress('c0:ff:ee:00:00:01');
const PHONE_ADDRESS = bleAddress('4a:11:ce:00:00:02');

/** A complete, successful numeric-comparison pairing, recorded PDU by PDU (fixed keys and seeded nonces). */
async function smpTranscript(
  keys: { phone: P256KeyPair; toy: P256KeyPair },
  seeds: { phone: number; toy: number },
): Promise<{ toToy: Uint8Array[]; toPhone: Uint8Array[] }> {
  const toToy: Uint8Array[] = [];
  const toPhone: Uint8Array[] = [];
  const queue: (() => Promise<void>)[] = [];
  const phone: SmpInitiator = new SmpInitiator(
    smpOptions('phone', keys.phone, seeds.phone, (p) => {
      toToy.push(p);
      queue.push(() => toy.handle(p));
    }),
  );
  const toy: SmpResponder = new SmpResponder(
    smpOptions('toy', keys.toy, seeds.toy, (p) => {
      toPhone.push(p);
      queue.push(() => phone.handle(p));
    }),
  );
  phone.start();
  for (let i = 0; i < 100 && (queue.length > 0 || !phone.finished || !toy.finished); i++) {
    await queue.shift()?.();
    await microtasks();
  }
  const [a, b] = await Promise.all([phone.outcome, toy.outcome]);
  if (!a.ok || !b.ok) throw new Error('fuzz setup: the recorded pairing did not succeed');
  return { toToy, toPhone };
}

function smpOptions(
  side: 'phone' | 'toy',
  keyPair: P256KeyPair,
  seed: number,
  send: (p: Uint8Array) => void,
): SmpSideOptions {
  return {
    random: new SeededRandom(seed).source,
    ui: yes,
    localAddress: side === 'phone' ? PHONE_ADDRESS : TOY_ADDRESS,
    peerAddress: side === 'phone' ? TOY_ADDRESS : PHONE_ADDRESS,
    send,
    keyPair,
  };
}

/** The phone's side of a toy that answers every ATT request with the input's next PDUs. */
class ScriptedToy implements BlePeripheral {
  readonly address = TOY_ADDRESS;
  constructor(private readonly replies: Uint8Array[]) {}
  acceptConnection(conn: Connection): void {
    conn.attach('peripheral', (frame) => {
      const att = frame.bytes.subarray(4);
      // Notifications are sent before the answer; the answer is the next PDU that is not one.
      for (let i = 0; i < 16; i++) {
        const pdu = this.replies.shift() ?? defaultAnswer(att[0] ?? 0);
        conn.send('peripheral', { llid: 'data', encrypted: false, bytes: l2cap(CID.ATT, pdu) });
        if (pdu[0] !== ATT_OP.HANDLE_VALUE_NTF) return;
      }
    });
  }
}

function defaultAnswer(requestOpcode: number): Uint8Array {
  if (requestOpcode === ATT_OP.EXCHANGE_MTU_REQ) return Uint8Array.of(ATT_OP.EXCHANGE_MTU_RSP, 247, 0);
  if (requestOpcode === ATT_OP.READ_REQ) return Uint8Array.of(ATT_OP.READ_RSP, 0, 80, 1, 0);
  return Uint8Array.of(ATT_OP.WRITE_RSP);
}

function l2cap(cid: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  out[0] = payload.length & 0xff;
  out[1] = payload.length >>> 8;
  out[2] = cid & 0xff;
  out[3] = cid >>> 8;
  out.set(payload, 4);
  return out;
}

/**
 * THE LIST OF PARSER TARGETS. To fuzz a new parser add one entry: `{ name, run }` at least, with
 * `seeds` (valid inputs) for depth and `expected` when its typed error is not PlushlinkError. The
 * two parsers being written now (shared/roster.ts, shared/firmware.ts) go at the end, e.g.
 *   { name: 'roster-message', seeds: [createRoster(...)], run: decodeRoster,
 *     fixup: resign(gateway.signSeed, CONTEXT.ROSTER) },  // re-signed: verifyRoster's checks run too
 *   { name: 'firmware-manifest', seeds: [createFirmwareManifest(...)], run: decodeFirmwareManifest },
 * An entry runs in `npm run fuzz` and in the smoke test (test/e2e/fuzz.test.ts) with no other change.
 */
async function parserTargets(fx: Fixtures): Promise<FuzzTarget[]> {
  const { toy, mom, dad, gateway, now } = fx;
  const ogg = writeOggOpus(
    Array.from({ length: 6 }, (_, i) => Uint8Array.of(0x08, i, 1, 2, 3, 4, 5, 6)),
    { serial: 7, comments: ['title=fuzz'] },
  );
  readOggOpus(ogg); // the seed must be valid
  const envelope = (ogg2: Uint8Array, recipients: PrivateIdentity[], sequence: number): Uint8Array =>
    sealClip({ sender: toy, recipients, sequence, createdAt: now, durationMs: 120, ogg: ogg2 });
  const envelopes = [
    envelope(ogg, [mom], 1),
    envelope(ogg, [mom, dad], 2),
    envelope(new Uint8Array(3000), [dad], 3),
  ];
  const token = createConnectToken({ identity: toy, gatewayId: gateway.id, now });
  const proof = createGatewayProof({ gateway, endpointId: toy.id, nonce: token.nonce, now: now + 1 });
  const receipt = createReceipt({
    recipient: mom,
    sender: toy.id,
    clipId: decodeClip(envelopes[0]!).header.clipId,
    receivedAt: now + 2,
  });
  const wav = writeWav({
    sampleRate: 16000,
    channels: 1,
    samples: Int16Array.from({ length: 400 }, (_, i) => i * 37),
  });
  const wavStereo = writeWav({ sampleRate: 44100, channels: 2, samples: new Int16Array(300) });

  // Files behind the file-reading targets.
  const roster = generateRoster({ families: 2, toysPerFamily: 1, parentsPerFamily: 2, seed: 'fuzz' });
  const rosterDir = join(fx.dir, 'roster');
  await writeRosterFiles(rosterDir, roster);
  const rosterFile = join(rosterDir, 'fleet.keys');
  const outboxPath = join(fx.dir, 'outbox.json');
  const box = await Outbox.open({ path: outboxPath });
  for (const e of envelopes) {
    const h = decodeClip(e).header;
    await box.add({
      clipId: toHex(h.clipId),
      sequence: box.nextSequence(),
      createdAt: h.createdAt,
      durationMs: h.durationMs,
      recipients: h.recipients.map((r) => r.id),
      envelope: e,
    });
  }
  await box.flush();
  const anchorPath = join(fx.dir, 'audit.anchor');
  const keyDir = join(fx.dir, 'keys');
  await writeKeyDir(keyDir, mom);

  // BLE: fixed P-256 keys (key generation would dominate), a recorded successful pairing.
  const phoneKeys = generateP256KeyPair(new SeededRandom(101).source);
  const toyKeys = generateP256KeyPair(new SeededRandom(102).source);
  const transcript = await smpTranscript({ phone: phoneKeys, toy: toyKeys }, { phone: 11, toy: 12 });
  const att = (op: number, handle: number, ...value: number[]): Uint8Array =>
    Uint8Array.of(op, handle & 0xff, handle >>> 8, ...value);
  const gattSession = [
    Uint8Array.of(ATT_OP.EXCHANGE_MTU_REQ, 247, 0),
    att(ATT_OP.READ_REQ, HANDLES.DEVICE_NAME),
    att(ATT_OP.READ_REQ, HANDLES.STATUS),
    att(ATT_OP.WRITE_REQ, HANDLES.CLIP_OUT_CCCD, 1, 0),
    att(ATT_OP.WRITE_REQ, HANDLES.CONTROL_POINT, COMMAND.START_RECORDING),
    att(ATT_OP.WRITE_REQ, HANDLES.CONTROL_POINT, COMMAND.STOP_RECORDING),
    att(ATT_OP.WRITE_REQ, HANDLES.CONTROL_POINT, COMMAND.BEGIN_CLIP_IN, 8, 0, 0, 0),
    att(ATT_OP.WRITE_CMD, HANDLES.CLIP_IN, 1, 2, 3, 4),
    att(ATT_OP.WRITE_CMD, HANDLES.CLIP_IN, 5, 6, 7, 8),
    att(ATT_OP.WRITE_REQ, HANDLES.CONTROL_POINT, COMMAND.PLAY_CLIP),
  ];
  const firmware = toyFirmware();
  const resignClip = resign(toy.signSeed, CONTEXT.CLIP);
  const rosters = [
    createRoster({ gateway, version: 3, issuedAt: now, members: [publicPart(toy), publicPart(mom)] }),
    createRoster({ gateway, version: 4, issuedAt: now, members: [toy, mom, dad].map(publicPart) }),
  ];
  const vendor = generateIdentity('vendor', seededRandom('plushlink-fuzz/vendor'));
  const fwImage = new Uint8Array(512).fill(0x5a);
  const fwManifest = createFirmwareManifest({
    vendor,
    model: 'plushbear-1',
    version: 3,
    minVersion: 2,
    image: fwImage,
    releasedAt: now,
  });
  const fwMessage = encodeFirmwareMessage(fwManifest, fwImage);
  const fwDevice: FirmwareDevice = {
    model: 'plushbear-1',
    vendor: publicPart(vendor),
    version: 2,
    sha256: null,
    antiRollback: 1,
  };

  return [
    { name: 'envelope-decode', seeds: envelopes, run: decodeClip, lengthFields: [70, 95, 195, 295] },
    {
      name: 'envelope-open',
      seeds: envelopes,
      run: (b) => openClip(b, { recipient: mom, sender: toy }),
      lengthFields: [70, 95, 195],
      fixup: resignClip,
    },
    { name: 'connect-token-decode', seeds: [token.bytes], run: decodeConnectToken },
    {
      name: 'connect-token-verify',
      seeds: [token.bytes],
      run: (b) =>
        verifyConnectToken(b, {
          gatewayId: gateway.id,
          endpointId: toy.id,
          signPublicKey: toy.signPublicKey,
          now,
        }),
      fixup: resign(toy.signSeed, CONTEXT.TOKEN),
    },
    { name: 'gateway-proof-decode', seeds: [proof], run: decodeGatewayProof },
    {
      name: 'gateway-proof-verify',
      seeds: [proof],
      run: (b) =>
        verifyGatewayProof(b, {
          gatewayId: gateway.id,
          gatewaySignPublicKey: gateway.signPublicKey,
          endpointId: toy.id,
          nonce: token.nonce,
        }),
      fixup: resign(gateway.signSeed, CONTEXT.PROOF),
    },
    { name: 'receipt-decode', seeds: [receipt], run: decodeReceipt },
    { name: 'receipt-verify', seeds: [receipt], run: (b) => verifyReceipt(b, mom.signPublicKey) },
    {
      name: 'identity-json',
      seeds: [utf8(identityToJson(toy)), utf8(identityToJson(gateway))],
      run: (b) => parseIdentityJson(text(b)),
      dictionary: JSON_DICTIONARY,
      structured: mutateJson,
    },
    {
      name: 'private-key-json',
      seeds: [utf8(privateKeyToJson(toy))],
      run: (b) => parsePrivateKeyJson(text(b)),
      dictionary: JSON_DICTIONARY,
      structured: mutateJson,
    },
    {
      name: 'strict-json',
      seeds: [
        utf8(readFileSync(rosterFile, 'utf8').slice(0, 3000)),
        utf8('{"a":[1,-2.5e3,true,null,{"b":"\\u00e9\\n"}]}'),
      ],
      run: (b) => parseJson(text(b), { what: 'fuzz input', maxBytes: 8192, maxDepth: 8 }),
      dictionary: JSON_DICTIONARY,
      structured: mutateJson,
    },
    {
      name: 'fleet-keys-file',
      seeds: [readFileSync(rosterFile)],
      run: async (b) => {
        writeFileSync(rosterFile, b);
        return readRosterFiles(rosterDir);
      },
      dictionary: JSON_DICTIONARY,
      structured: mutateJson,
      weight: 0.7,
    },
    {
      name: 'private-key-file',
      seeds: [utf8(privateKeyToJson(mom))],
      run: async (b) => {
        writeFileSync(join(keyDir, 'endpoint.key'), b);
        return readPrivateKey(keyDir);
      },
      dictionary: JSON_DICTIONARY,
      structured: mutateJson,
      weight: 0.5,
    },
    {
      name: 'outbox-file',
      seeds: [readFileSync(outboxPath)],
      run: async (b) => {
        writeFileSync(outboxPath, b);
        return Outbox.open({ path: outboxPath });
      },
      expected: (e) => e instanceof OutboxError,
      dictionary: JSON_DICTIONARY,
      structured: mutateJson,
      maxLength: 16_384,
      weight: 0.7,
    },
    {
      name: 'audit-anchor-file',
      seeds: [
        utf8(
          `${JSON.stringify({ plushlink: 'audit-anchor', v: 1, seq: 12, hash: 'ab'.repeat(32), at: now, signature: 'cd'.repeat(64) })}\n`,
        ),
      ],
      run: (b) => {
        writeFileSync(anchorPath, b);
        return readAnchorFile(anchorPath);
      },
      expected: nothing, // undefined for anything malformed: nothing may escape
      dictionary: JSON_DICTIONARY,
      structured: mutateJson,
      weight: 0.5,
    },
    {
      name: 'ogg-opus',
      seeds: [ogg],
      run: (b) => readOggOpus(b),
      expected: isCodecError,
      fixup: fixOggCrcs,
      lengthFields: [26, 27, 28],
      maxLength: ogg.length + 2048,
    },
    {
      name: 'wav',
      seeds: [wav, wavStereo],
      run: (b) => {
        readWav(b);
        return readWavAsMono(b, 16000);
      },
      expected: isCodecError,
      lengthFields: [4, 16, 22, 24, 34, 40],
    },
    {
      name: 'ble-gatt-server',
      // First byte: bit 0 = link unencrypted (the security gate), then [u16 length][ATT PDU]...
      seeds: [Uint8Array.of(0, ...frames(gattSession)), Uint8Array.of(1, ...frames(gattSession))],
      run: async (b) => {
        const secure = ((b[0] ?? 0) & 1) === 0;
        const server = new ToyGattServer({
          name: 'fuzz toy',
          handlers: firmware,
          security: () => ({ encrypted: secure, authenticated: secure }),
          peerBonded: () => false,
          send: () => undefined,
          maxClipBytes: 65_536,
        });
        for (const pdu of framesOf(b.subarray(1))) await server.handle(pdu);
      },
      expected: nothing,
    },
    {
      name: 'ble-smp-responder',
      seeds: [frames(transcript.toToy)],
      run: async (b) => {
        const s = new SmpResponder(smpOptions('toy', toyKeys, 12, () => undefined));
        for (const pdu of framesOf(b)) {
          await s.handle(pdu);
          await microtasks();
        }
      },
      expected: nothing,
    },
    {
      name: 'ble-smp-initiator',
      seeds: [frames(transcript.toPhone)],
      run: async (b) => {
        const s = new SmpInitiator(smpOptions('phone', phoneKeys, 11, () => undefined));
        s.start();
        for (const pdu of framesOf(b)) {
          await s.handle(pdu);
          await microtasks();
        }
      },
      expected: nothing,
    },
    {
      name: 'ble-toy-air',
      // LL frames from an unpaired central in radio range: [flags][u16 length][frame]...; flags bit 0 = LL control.
      seeds: [
        frames([
          Uint8Array.of(0, ...l2cap(CID.ATT, gattSession[0]!)),
          Uint8Array.of(0, ...l2cap(CID.ATT, gattSession[1]!)),
          Uint8Array.of(0, ...l2cap(CID.ATT, gattSession[2]!)),
          Uint8Array.of(0, ...l2cap(CID.SMP, transcript.toToy[0]!)),
          Uint8Array.of(0, ...l2cap(CID.SMP, transcript.toToy[1]!)),
          Uint8Array.of(1, 0x03, ...new Uint8Array(22)), // LL_ENC_REQ without a bond
          Uint8Array.of(1, 0x02, 0x13), // LL_TERMINATE_IND
        ]),
      ],
      run: async (b) => {
        const air = new Air({ seed: 3 });
        const toyDevice = new BleToy({
          address: TOY_ADDRESS,
          handlers: firmware,
          pairingUi: yes,
          random: new SeededRandom(5).source,
          clock: air.clock,
        });
        toyDevice.pressPairingButton();
        const conn = air.connect(PHONE_ADDRESS, toyDevice);
        for (const f of framesOf(b, 32)) {
          if (f.length === 0) continue;
          conn.send('central', {
            llid: (f[0]! & 1) === 1 ? 'control' : 'data',
            encrypted: false,
            bytes: f.subarray(1),
          });
        }
        await air.settle();
        if (air.errors.length > 0) throw air.errors[0];
      },
      expected: nothing,
      weight: 0.7,
    },
    {
      name: 'ble-phone',
      // What a hostile toy answers to the phone's ATT requests (notifications included): [u16 length][ATT PDU]...
      seeds: [
        frames([
          Uint8Array.of(ATT_OP.EXCHANGE_MTU_RSP, 0xf7, 0),
          Uint8Array.of(ATT_OP.READ_RSP, 1, 80, 2, 0),
          Uint8Array.of(ATT_OP.ERROR_RSP, ATT_OP.READ_REQ, 3, 0, 0x05),
          Uint8Array.of(ATT_OP.HANDLE_VALUE_NTF, HANDLES.CLIP_OUT, 0, 6, 0, 0, 0, 1, 2, 3),
          Uint8Array.of(ATT_OP.HANDLE_VALUE_NTF, HANDLES.CLIP_OUT, 0, 4, 5, 6),
          Uint8Array.of(ATT_OP.WRITE_RSP),
        ]),
      ],
      run: async (b) => {
        const air = new Air({ seed: 4 });
        const phone = new BlePhone({
          address: PHONE_ADDRESS,
          air,
          random: new SeededRandom(6).source,
          pairingUi: yes,
        });
        const link = phone.connect(new ScriptedToy(framesOf(b, 32)));
        const ops: (() => Promise<unknown>)[] = [
          () => link.exchangeMtu(247),
          () => link.readStatus(),
          () => link.read(HANDLES.DEVICE_NAME),
          () => link.enableClipNotifications(),
          () => link.startRecording(),
          () => link.readStatus(),
        ];
        for (const op of ops) {
          try {
            await op();
          } catch (err) {
            if (!(err instanceof AttError)) throw err;
          }
        }
        await air.settle();
        link.disconnect();
        if (air.errors.length > 0) throw air.errors[0];
      },
      expected: (e) => e instanceof AttError,
      weight: 0.7,
    },
    {
      name: 'roster-decode',
      seeds: rosters,
      run: decodeRoster,
      lengthFields: [38],
    },
    {
      name: 'roster-verify',
      seeds: rosters,
      run: (b) => verifyRoster(b, { gateway: publicPart(gateway), endpointId: toy.id }),
      lengthFields: [38],
      fixup: resign(gateway.signSeed, CONTEXT.ROSTER),
    },
    {
      name: 'firmware-manifest',
      seeds: [fwManifest],
      run: decodeFirmwareManifest,
      lengthFields: [22],
      fixup: resign(vendor.signSeed, CONTEXT.FIRMWARE),
    },
    {
      name: 'firmware-message',
      seeds: [fwMessage],
      run: (b) => checkFirmwareMessage(fwDevice, b),
      lengthFields: [22],
    },
    // ← new parsers here.
  ];
}

// ---------------------------------------------------------------------------------------------- MQTT

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function mqttPacket(first: number, ...parts: (Uint8Array | number[])[]): Uint8Array {
  const body = Buffer.concat(parts.map((p) => Buffer.from(p)));
  return Uint8Array.from([first, ...varint(body.length), ...body]);
}

function mqttString(s: string | Uint8Array): Uint8Array {
  const b = typeof s === 'string' ? Buffer.from(s) : Buffer.from(s);
  return Uint8Array.from([b.length >> 8, b.length & 0xff, ...b]);
}

function connectPacket(o: {
  clientId: string;
  username?: string;
  password?: Uint8Array;
  clean?: boolean;
  will?: boolean;
  level?: number;
  keepalive?: number;
}): Uint8Array {
  const flags =
    (o.username !== undefined ? 0x80 : 0) |
    (o.password !== undefined ? 0x40 : 0) |
    (o.will ? 0x0c : 0) |
    (o.clean === false ? 0 : 0x02);
  const keepalive = o.keepalive ?? 30;
  return mqttPacket(
    0x10,
    mqttString('MQTT'),
    [o.level ?? 4, flags, keepalive >> 8, keepalive & 0xff],
    mqttString(o.clientId),
    ...(o.will ? [mqttString('plk/1/will'), mqttString('bye')] : []),
    ...(o.username !== undefined ? [mqttString(o.username)] : []),
    ...(o.password !== undefined ? [mqttString(o.password)] : []),
  );
}

function publishPacket(
  topic: string,
  payload: Uint8Array,
  o: { qos?: number; retain?: boolean; dup?: boolean; id?: number } = {},
): Uint8Array {
  const qos = o.qos ?? 1;
  const first = 0x30 | (o.dup ? 8 : 0) | (qos << 1) | (o.retain ? 1 : 0);
  const id = o.id ?? 1;
  return mqttPacket(first, mqttString(topic), qos > 0 ? [id >> 8, id & 0xff] : [], payload);
}

const subscribePacket = (id: number, ...topics: string[]): Uint8Array =>
  mqttPacket(0x82, [id >> 8, id & 0xff], ...topics.flatMap((t) => [mqttString(t), [1]]));
const unsubscribePacket = (id: number, ...topics: string[]): Uint8Array =>
  mqttPacket(0xa2, [id >> 8, id & 0xff], ...topics.map((t) => mqttString(t)));
const idPacket = (first: number, id: number): Uint8Array => mqttPacket(first, [id >> 8, id & 0xff]);

/** Fuzz families (a toy and a parent each): sessions spread over them, so no endpoint exceeds its replay-cache share. */
const FUZZ_FAMILIES = 32;

interface FuzzFamily {
  readonly toy: PrivateIdentity;
  readonly parent: PrivateIdentity;
}

/** A live embedded gateway, fuzz families and one legitimate family, raw sockets. */
class MqttFuzz {
  private legitSeq = 0;
  checks = 0;
  lastCheckMs = 0;
  refusedSessions = 0;
  /** Why authenticated sessions were refused: CONNACK return code, or "closed" before any CONNACK. */
  readonly refusals = new Map<string, number>();

  private constructor(
    readonly gw: EmbeddedGateway,
    readonly families: readonly FuzzFamily[],
    readonly legitToy: PrivateIdentity,
    readonly legitParent: PrivateIdentity,
  ) {}

  get fuzzToy(): PrivateIdentity {
    return this.families[0]!.toy;
  }

  static async start(dir: string): Promise<MqttFuzz> {
    const gw = await startEmbeddedGateway({
      dataDir: join(dir, 'gateway'),
      // Raised so that fuzz inputs reach the checks behind the limiters (their own tests test them).
      limits: {
        connectPerSecond: 1_000_000,
        clipsPerSecond: 10_000,
        clipBurst: 10_000,
        bytesPerSecond: 1e9,
        receiptsPerSecond: 10_000,
        receiptBurst: 10_000,
      },
      // The replay cache holds every nonce until its token expires: a short token window (tokens
      // are made just before they are sent, on one clock) and a small cache keep it at a few MB,
      // so that RSS measures the gateway and not ~1000 fresh nonces a second.
      nonceCapacity: 20_000,
      gateway: { retentionIntervalMs: 0, tokenWindowMs: 2_000 },
    });
    // Provisioned through the admin API, as an operator would: keys written to disk, then read back.
    let n = 0;
    const provision = async (role: 'toy' | 'parent'): Promise<PrivateIdentity> => {
      const keyDir = join(dir, `endpoint-${n++}`);
      await provisionEndpoint(gw.store, gw.audit, role, keyDir);
      return readPrivateKey(keyDir);
    };
    const family = async (): Promise<FuzzFamily> => {
      const f = { toy: await provision('toy'), parent: await provision('parent') };
      const id = await createFamily(gw.store, gw.audit);
      for (const m of [f.toy, f.parent]) await addFamilyMember(gw.store, gw.audit, id, m.id);
      return f;
    };
    const families: FuzzFamily[] = [];
    for (let i = 0; i < FUZZ_FAMILIES; i++) families.push(await family());
    const legit = await family();
    return new MqttFuzz(gw, families, legit.toy, legit.parent);
  }

  private connectFor(identity: PrivateIdentity, o: { clean?: boolean; will?: boolean } = {}): Uint8Array {
    const token = createConnectToken({ identity, gatewayId: this.gw.identity.id, now: Date.now() });
    return connectPacket({ clientId: identity.id, username: identity.id, password: token.bytes, ...o });
  }

  /**
   * Who a session connects as: the fuzz endpoint whose id appears first in the input (seeds are
   * built per family, so a mutated seed keeps its own topics and signed clip), else one chosen by
   * the input's length.
   */
  private identityFor(bytes: Uint8Array): PrivateIdentity {
    const haystack = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
    let best: PrivateIdentity | undefined;
    let at = Number.POSITIVE_INFINITY;
    for (const f of this.families) {
      for (const m of [f.toy, f.parent]) {
        const i = haystack.indexOf(m.id);
        if (i >= 0 && i < at) {
          at = i;
          best = m;
        }
      }
    }
    if (best) return best;
    const f = this.families[bytes.length % this.families.length]!;
    return bytes.length & 1 ? f.parent : f.toy;
  }

  /** Packets a client could send after CONNECT: every type, valid and invalid, for each fuzz family. */
  sessionSeeds(): Uint8Array[] {
    return this.families.flatMap((f) => this.familySeeds(f));
  }

  private familySeeds({ toy: t, parent: p }: FuzzFamily): Uint8Array[] {
    const clip = sealClip({
      sender: t,
      recipients: [p],
      sequence: 1,
      createdAt: Date.now(),
      durationMs: 100,
      ogg: new Uint8Array(200).fill(3),
    });
    const receipt = createReceipt({
      recipient: p,
      sender: t.id,
      clipId: decodeClip(clip).header.clipId,
      receivedAt: Date.now(),
    });
    const cat = (...ps: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(ps));
    return [
      subscribePacket(1, inboxTopic(t.id)),
      subscribePacket(1, inboxTopic(p.id)),
      subscribePacket(2, '#'),
      subscribePacket(3, '$SYS/#'),
      subscribePacket(4, 'plk/1/+/inbox', inboxTopic(t.id)),
      cat(subscribePacket(1, inboxTopic(t.id)), publishPacket(clipTopic(t.id), clip, { id: 2 })),
      publishPacket(clipTopic(t.id), clip),
      publishPacket(relayTopic(p.id), clip),
      publishPacket(receiptTopic(p.id), receipt),
      publishPacket(clipTopic(t.id), clip, { qos: 0 }),
      publishPacket(clipTopic(t.id), clip, { qos: 2 }),
      publishPacket(clipTopic(t.id), clip, { retain: true }),
      publishPacket(clipTopic(t.id), clip, { qos: 3, dup: true }),
      publishPacket(inboxTopic(t.id), clip),
      publishPacket(clipTopic(p.id), clip),
      publishPacket('$SYS/x', new Uint8Array(4)),
      unsubscribePacket(5, inboxTopic(t.id)),
      Uint8Array.of(0xc0, 0), // PINGREQ
      Uint8Array.of(0xe0, 0), // DISCONNECT
      idPacket(0x40, 1), // PUBACK
      idPacket(0x50, 1), // PUBREC
      idPacket(0x62, 1), // PUBREL
      idPacket(0x70, 1), // PUBCOMP
      Uint8Array.of(0x20, 2, 0, 0), // CONNACK (a server packet)
      Uint8Array.of(0x90, 3, 0, 1, 0), // SUBACK
      Uint8Array.of(0xb0, 2, 0, 1), // UNSUBACK
      Uint8Array.of(0xd0, 0), // PINGRESP
      Uint8Array.of(0x00, 0), // reserved 0
      Uint8Array.of(0xf0, 0), // reserved 15
      this.connectFor(t), // a second CONNECT
      Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0x7f), // 256 MiB announced
      Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0xff, 0x01), // five-byte remaining length
      Uint8Array.of(0x82, 0x80, 0x80, 0x80, 0x80), // unterminated remaining length
      Uint8Array.of(0x30, 5, 0, 10, 0x61), // topic longer than the packet
    ];
  }

  preauthSeeds(): Uint8Array[] {
    const t = this.fuzzToy;
    return [
      this.connectFor(t),
      this.connectFor(t, { clean: false }),
      this.connectFor(t, { will: true }),
      connectPacket({ clientId: t.id }),
      connectPacket({ clientId: t.id, username: t.id, password: new Uint8Array(130) }),
      connectPacket({ clientId: 'x', username: t.id, password: utf8('base64url?') }),
      connectPacket({ clientId: t.id, username: t.id, password: new Uint8Array(2000) }),
      connectPacket({ clientId: t.id, level: 5 }),
      connectPacket({ clientId: t.id, level: 3 }),
      Uint8Array.from(Buffer.concat([this.connectFor(t), subscribePacket(1, inboxTopic(t.id))])),
      subscribePacket(1, '#'),
      Uint8Array.of(0xc0, 0),
      Uint8Array.of(0xe0, 0),
      Uint8Array.of(0x00, 0),
      Uint8Array.of(0x10, 0xff, 0xff, 0xff, 0x7f),
      Uint8Array.of(0x10, 0x80, 0x80, 0x80),
    ];
  }

  /** One TCP connection: (an authenticated CONNECT, then) the input; ends when the gateway closes or goes quiet. */
  async session(bytes: Uint8Array, authenticated: boolean): Promise<void> {
    const sock = tcpConnect(this.gw.port, '127.0.0.1');
    sock.setNoDelay(true);
    let closed = false;
    let received = Buffer.alloc(0);
    let lastActivity = Date.now();
    sock.on('data', (d: Buffer) => {
      if (received.length < 64) received = Buffer.concat([received, d]);
      lastActivity = Date.now();
    });
    sock.on('close', () => {
      closed = true;
    });
    sock.on('error', () => undefined); // resets are expected: the gateway closes on violations
    try {
      await once(sock, 'connect');
    } catch (err) {
      throw new Error(`gateway refused a TCP connection (down?): ${(err as Error).message}`);
    }
    const until = async (cond: () => boolean, ms: number): Promise<void> => {
      const end = Date.now() + ms;
      while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
    };
    if (authenticated) {
      sock.write(this.connectFor(this.identityFor(bytes)));
      await until(() => closed || received.length >= 4, 3000);
      if (received[0] !== 0x20 || received[3] !== 0) {
        this.refusedSessions++;
        const why = received[0] === 0x20 ? `CONNACK ${received[3]}` : 'closed';
        this.refusals.set(why, (this.refusals.get(why) ?? 0) + 1);
        sock.destroy();
        return;
      }
    }
    sock.write(bytes);
    lastActivity = Date.now();
    const start = Date.now();
    await until(() => closed || Date.now() - lastActivity > 20 || Date.now() - start > 2000, 2500);
    sock.destroy();
  }

  /** The legitimate endpoints: a parent subscribes, a toy connects and publishes a clip, the parent receives and receipts it. */
  async check(): Promise<void> {
    const t0 = Date.now();
    const opts = { url: this.gw.url, gateway: this.gw.identity, timeoutMs: 10_000 };
    let parent: EndpointConnection | undefined;
    let toy: EndpointConnection | undefined;
    try {
      parent = await connectEndpoint({ ...opts, identity: this.legitParent });
      const got = new Promise<Uint8Array>((resolve) =>
        parent!.onInbox((kind, bytes) => {
          if (kind === 'clip') resolve(bytes);
        }),
      );
      toy = await connectEndpoint({ ...opts, identity: this.legitToy });
      const clip = sealClip({
        sender: this.legitToy,
        recipients: [this.legitParent],
        sequence: ++this.legitSeq,
        createdAt: Date.now(),
        durationMs: 200,
        ogg: new Uint8Array(1500).fill(this.legitSeq & 0xff),
      });
      await toy.publishClip(clip);
      const delivered = await Promise.race([
        got,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000)),
      ]);
      if (!delivered) throw new Error('the parent did not receive the legitimate clip within 10 s');
      const opened = openClip(delivered, { recipient: this.legitParent, sender: this.legitToy });
      await parent.publishReceipt(
        createReceipt({
          recipient: this.legitParent,
          sender: this.legitToy.id,
          clipId: opened.header.clipId,
          receivedAt: Date.now(),
        }),
      );
    } catch (err) {
      throw new Error(`the gateway failed its legitimate endpoint: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      await toy?.close().catch(() => undefined);
      await parent?.close().catch(() => undefined);
    }
    this.checks++;
    this.lastCheckMs = Date.now() - t0;
  }

  targets(): FuzzTarget[] {
    const check = (): Promise<void> => this.check();
    return [
      {
        name: 'mqtt-preauth',
        seeds: this.preauthSeeds(),
        run: (b) => this.session(b, false),
        expected: nothing,
        concurrency: 8,
        maxLength: 4096,
        lengthFields: [1, 2, 3],
        check,
        weight: 2,
      },
      {
        name: 'mqtt-session',
        seeds: this.sessionSeeds(),
        run: (b) => this.session(b, true),
        expected: nothing,
        concurrency: 16,
        maxLength: 8192,
        lengthFields: [1, 2, 3, 4],
        check,
        weight: 3,
      },
    ];
  }
}

// ---------------------------------------------------------------------------------------------- mutation

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40];
const INTERESTING_32 = [
  0, 1, 2, 16, 17, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
];

function mutate(t: FuzzTarget, rng: Rng, maxLength: number): Uint8Array {
  const seeds = t.seeds ?? [];
  if (seeds.length === 0 || rng.chance(0.06)) {
    return rng.bytes(rng.chance(0.7) ? rng.int(64) : rng.int(maxLength + 1));
  }
  let b: Uint8Array = Uint8Array.from(rng.pick(seeds));
  if (t.structured && rng.chance(0.5)) {
    b = t.structured(b, rng);
    if (rng.chance(0.7)) return b.length > maxLength ? b.subarray(0, maxLength) : b;
  }
  const rounds = 1 + rng.int(rng.chance(0.5) ? 2 : 8);
  for (let r = 0; r < rounds; r++) {
    const at = (): number => rng.int(b.length + 1);
    switch (rng.int(12)) {
      case 0: {
        if (b.length === 0) break;
        const i = rng.int(b.length);
        b[i] = b[i]! ^ (1 << rng.int(8));
        break;
      }
      case 1:
        if (b.length > 0) b[rng.int(b.length)] = rng.pick(INTERESTING_8);
        break;
      case 2:
        if (b.length > 0) b[rng.int(b.length)] = rng.u32() & 0xff;
        break;
      case 3: {
        // a word at a length field (or anywhere), big- or little-endian, interesting or off by one
        const fields = t.lengthFields ?? [];
        const off = fields.length > 0 && rng.chance(0.6) ? rng.pick(fields) : rng.int(b.length);
        const width = rng.pick([1, 2, 4]);
        if (off + width > b.length) break;
        const dv = new DataView(b.buffer, b.byteOffset, b.length);
        const le = rng.chance(0.5);
        const old =
          width === 1 ? dv.getUint8(off) : width === 2 ? dv.getUint16(off, le) : dv.getUint32(off, le);
        const v = rng.chance(0.5) ? rng.pick(INTERESTING_32) : old + rng.int(33) - 16;
        if (width === 1) dv.setUint8(off, v & 0xff);
        else if (width === 2) dv.setUint16(off, v & 0xffff, le);
        else dv.setUint32(off, v >>> 0, le);
        break;
      }
      case 4:
        b = b.subarray(0, at()); // truncation
        break;
      case 5:
        b = Uint8Array.from([...b, ...rng.bytes(1 + rng.int(rng.chance(0.8) ? 16 : 1024))]); // extension
        break;
      case 6: {
        const i = at();
        b = Uint8Array.from([...b.subarray(0, i), ...rng.bytes(1 + rng.int(32)), ...b.subarray(i)]);
        break;
      }
      case 7: {
        const i = at();
        b = Uint8Array.from([...b.subarray(0, i), ...b.subarray(Math.min(b.length, i + 1 + rng.int(64)))]);
        break;
      }
      case 8: {
        // duplicate a chunk in place (repeated fields, repeated packets)
        const i = rng.int(b.length);
        const chunk = b.subarray(i, i + 1 + rng.int(128));
        const j = at();
        b = Uint8Array.from([...b.subarray(0, j), ...chunk, ...b.subarray(j)]);
        break;
      }
      case 9: {
        // splice: a prefix of this input with a suffix of another seed
        const other = rng.pick(seeds);
        b = Uint8Array.from([...b.subarray(0, at()), ...other.subarray(rng.int(other.length + 1))]);
        break;
      }
      case 10: {
        const dict = t.dictionary ?? [];
        if (dict.length === 0) break;
        const tok = rng.pick(dict);
        const i = at();
        b = rng.chance(0.5)
          ? Uint8Array.from([...b.subarray(0, i), ...tok, ...b.subarray(i)])
          : Uint8Array.from([...b.subarray(0, i), ...tok, ...b.subarray(Math.min(b.length, i + tok.length))]);
        break;
      }
      default: {
        // swap two bytes
        if (b.length < 2) break;
        const i = rng.int(b.length);
        const j = rng.int(b.length);
        const x = b[i]!;
        b[i] = b[j]!;
        b[j] = x;
      }
    }
    if (b.length > maxLength) b = b.subarray(0, maxLength);
  }
  if (t.fixup && rng.chance(0.5)) b = t.fixup(b, rng);
  return b.length > maxLength ? b.subarray(0, maxLength) : b;
}

// ---------------------------------------------------------------------------------------------- engine

interface TargetReport {
  readonly name: string;
  readonly execs: number;
  readonly seconds: number;
  readonly typedErrors: number;
  readonly rssStartMb: number;
  readonly rssEndMb: number;
  /** JS heap in use after a full GC at the end (a leak shows here first). */
  readonly heapEndMb: number;
}

/** An input that never finished (the one error class of the fuzzer itself). */
class FuzzHang extends CodedError<'FUZZ_HANG'> {}

const mb = (n: number): number => Math.round((n / 1048576) * 10) / 10;
let forceGc: () => void = () => undefined;
try {
  setFlagsFromString('--expose-gc');
  forceGc = runInNewContext('gc') as () => void;
} catch {
  // without a GC hook RSS figures are noisier but still bounded
}
function rss(): number {
  forceGc();
  return process.memoryUsage().rss;
}

/** What is being run right now (for crashes reported by process-level handlers). */
const inFlight = new Map<number, { target: string; k: number; input: Uint8Array }>();
let runSeed = 0;
/** The run's temporary directory (removed on success and on failure). */
let runDir: string | undefined;

function failure(target: string, k: number, input: Uint8Array, err: unknown, why: string): never {
  const file = join(tmpdir(), `plushlink-fuzz-${target}-${runSeed}-${k}.bin`);
  try {
    writeFileSync(file, input);
  } catch {
    /* best effort */
  }
  const stack = err instanceof Error ? (err.stack ?? err.message) : `thrown value of type ${typeof err}`;
  process.stderr.write(
    [
      '',
      `FUZZ FAILURE: ${why}`,
      `  target: ${target}   seed: ${runSeed}   input #${k} (${input.length} bytes)`,
      `  input hex (first 64 bytes): ${Buffer.from(input.subarray(0, 64)).toString('hex')}`,
      `  saved to ${file}`,
      `  replay: npm run fuzz -- --only ${target} --input ${file}`,
      `  ${stack.split('\n').join('\n  ')}`,
      '',
    ].join('\n'),
  );
  if (runDir) rmSync(runDir, { recursive: true, force: true });
  process.exit(1);
}

async function runOne(
  t: FuzzTarget,
  k: number,
  input: Uint8Array,
  expected: (e: unknown) => boolean,
): Promise<boolean> {
  const id = k;
  inFlight.set(id, { target: t.name, k, input });
  let timer: NodeJS.Timeout | undefined;
  try {
    const out = t.run(input);
    if (out instanceof Promise) {
      await Promise.race([
        out,
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new FuzzHang('FUZZ_HANG', `no result after ${HANG_MS} ms`)),
            HANG_MS,
          );
        }),
      ]);
    }
    return false;
  } catch (err) {
    if (err instanceof FuzzHang) failure(t.name, k, input, err, 'hang');
    if (!expected(err)) failure(t.name, k, input, err, 'an untyped error escaped');
    return true;
  } finally {
    if (timer) clearTimeout(timer);
    inFlight.delete(id);
  }
}

async function fuzzTarget(t: FuzzTarget, budgetMs: number, seed: number): Promise<TargetReport> {
  const rng = new Rng(hash32(t.name, seed));
  const expected = t.expected ?? isPlushlinkError;
  const maxLength = t.maxLength ?? Math.max(4096, ...(t.seeds ?? []).map((s) => s.length + 1024));
  const rssStart = rss();
  const start = performance.now();
  const deadline = start + budgetMs;
  let execs = 0;
  let typed = 0;
  let lastYield = start;
  let lastCheck = start;
  const concurrency = t.concurrency ?? 1;
  if (concurrency <= 1) {
    while (performance.now() < deadline) {
      for (let i = 0; i < 16; i++) {
        if (await runOne(t, execs, mutate(t, rng, maxLength), expected)) typed++;
        execs++;
      }
      const now = performance.now();
      if (now - lastYield > 50) {
        await new Promise((r) => setImmediate(r)); // let timers and sockets run
        lastYield = now;
      }
    }
  } else {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (performance.now() < deadline) {
        const k = next++;
        if (await runOne(t, k, mutate(t, rng, maxLength), expected)) typed++;
        execs++;
      }
    };
    const checker = async (): Promise<void> => {
      while (t.check && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        if (performance.now() - lastCheck > 2000) {
          await t.check();
          lastCheck = performance.now();
        }
      }
    };
    await Promise.all([...Array.from({ length: concurrency }, worker), checker()]);
  }
  if (t.check) await t.check();
  const seconds = (performance.now() - start) / 1000;
  const rssEnd = rss();
  return {
    name: t.name,
    execs,
    seconds,
    typedErrors: typed,
    rssStartMb: mb(rssStart),
    rssEndMb: mb(rssEnd),
    heapEndMb: mb(process.memoryUsage().heapUsed),
  };
}

function parseOptions(): {
  seconds: number;
  seed: number;
  only: string[] | undefined;
  input?: string;
  list: boolean;
} {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      seed: { type: 'string' },
      only: { type: 'string' },
      input: { type: 'string' },
      list: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > MAX_SECONDS)
    throw new Error(`--seconds must be a number in 1..${MAX_SECONDS}, got "${values.seconds}"`);
  let seed: number;
  if (values.seed !== undefined) {
    if (!/^\d{1,10}$/.test(values.seed) || Number(values.seed) > 0xffffffff)
      throw new Error(`--seed must be an integer in 0..4294967295, got "${values.seed}"`);
    seed = Number(values.seed);
  } else {
    seed = randomBytes(4).readUInt32LE(0);
  }
  return {
    seconds,
    seed,
    only: values.only
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    ...(values.input !== undefined ? { input: values.input } : {}),
    list: values.list ?? false,
  };
}

/** Names of the targets that need the live gateway (built once it runs). */
const MQTT_TARGETS = ['mqtt-preauth', 'mqtt-session'];

async function main(): Promise<void> {
  let opts: ReturnType<typeof parseOptions>;
  try {
    opts = parseOptions();
  } catch (err) {
    process.stderr.write(`plushlink fuzz: ${(err as Error).message}\n`);
    process.exit(2);
  }
  runSeed = opts.seed;
  const dir = mkdtempSync(join(tmpdir(), 'plk-fuzz-'));
  runDir = dir;
  mkdirSync(join(dir, 'gateway'), { mode: 0o700 });
  const crash = (kind: string) => (err: unknown) => {
    const current = [...inFlight.values()][0];
    failure(current?.target ?? 'none', current?.k ?? -1, current?.input ?? new Uint8Array(0), err, kind);
  };
  process.on('uncaughtException', crash('uncaught exception (the process would have crashed)'));
  process.on('unhandledRejection', crash('unhandled promise rejection'));

  const fx = fixtures(dir);
  const parsers = await parserTargets(fx);
  const names = [...parsers.map((t) => t.name), ...MQTT_TARGETS];
  if (opts.list) {
    process.stdout.write(`${names.join('\n')}\n`);
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  const unknown = (opts.only ?? []).filter((n) => !names.includes(n));
  if (unknown.length > 0) {
    rmSync(dir, { recursive: true, force: true });
    process.stderr.write(`plushlink fuzz: unknown target(s): ${unknown.join(', ')} (see --list)\n`);
    process.exit(2);
  }
  const wanted = (name: string): boolean => !opts.only || opts.only.includes(name);
  process.stdout.write(
    `plushlink fuzz: seed ${opts.seed} (replay with --seed ${opts.seed}), ${opts.seconds} s\n`,
  );
  const mqtt = MQTT_TARGETS.some(wanted) ? await MqttFuzz.start(dir) : undefined;
  const targets = [...parsers, ...(mqtt ? mqtt.targets() : [])].filter((t) => wanted(t.name));

  if (opts.input) {
    // Replay one saved input against one target.
    const t = targets[0];
    if (!t || targets.length !== 1) throw new Error('--input needs exactly one --only target');
    const input = new Uint8Array(readFileSync(opts.input));
    const typed = await runOne(t, 0, input, t.expected ?? isPlushlinkError);
    process.stdout.write(`${t.name}: ${typed ? 'typed error' : 'accepted'} — no failure\n`);
    await mqtt?.gw.close();
    rmSync(dir, { recursive: true, force: true });
    return;
  }

  if (mqtt) await mqtt.check(); // the legitimate endpoint works before any fuzzing
  const rssBaseline = rss();
  const heapBaseline = process.memoryUsage().heapUsed;
  const totalWeight = targets.reduce((n, t) => n + (t.weight ?? 1), 0);
  const budget = opts.seconds * 1000;
  const reports: TargetReport[] = [];
  for (const t of targets) {
    const r = await fuzzTarget(t, (budget * (t.weight ?? 1)) / totalWeight, opts.seed);
    reports.push(r);
    process.stdout.write(
      `  ${r.name.padEnd(22)} ${String(r.execs).padStart(8)} execs ${String(Math.round(r.execs / r.seconds)).padStart(7)}/s` +
        `  typed errors ${String(Math.round((100 * r.typedErrors) / Math.max(1, r.execs))).padStart(3)} %` +
        `  RSS ${r.rssStartMb} → ${r.rssEndMb} MB (heap ${r.heapEndMb} MB)\n`,
    );
  }
  if (mqtt) {
    await mqtt.check(); // and after
    process.stdout.write(
      `  gateway: ${mqtt.checks} legitimate clip round trips passed (last ${mqtt.lastCheckMs} ms), ` +
        `${mqtt.refusedSessions} fuzz sessions refused at CONNECT` +
        (mqtt.refusals.size > 0 ? ` (${[...mqtt.refusals].map(([k, n]) => `${k}: ${n}`).join(', ')})` : '') +
        '\n',
    );
    await mqtt.gw.close();
  }
  const rssEnd = rss();
  const growth = mb(rssEnd - rssBaseline);
  const heapGrowth = mb(process.memoryUsage().heapUsed - heapBaseline);
  process.stdout.write(
    `RSS: ${mb(rssBaseline)} MB after setup, ${mb(rssEnd)} MB at the end (growth ${growth} MB, bound ${RSS_GROWTH_LIMIT_MB} MB); ` +
      `heap growth ${heapGrowth} MB (bound ${HEAP_GROWTH_LIMIT_MB} MB)\n`,
  );
  rmSync(dir, { recursive: true, force: true });
  if (growth > RSS_GROWTH_LIMIT_MB || heapGrowth > HEAP_GROWTH_LIMIT_MB) {
    process.stderr.write(
      `FUZZ FAILURE: memory grew by ${growth} MB RSS / ${heapGrowth} MB heap (bounds ${RSS_GROWTH_LIMIT_MB} / ${HEAP_GROWTH_LIMIT_MB} MB), seed ${opts.seed}\n`,
    );
    process.exit(1);
  }
  const total = reports.reduce((n, r) => n + r.execs, 0);
  process.stdout.write(
    `ok: ${total} inputs over ${reports.length} targets, no untyped error, seed ${opts.seed}\n`,
  );
  process.exit(0); // MQTT.js and Aedes keep timers; the verdict is in
}

main().catch((err: unknown) => {
  process.stderr.write(`plushlink fuzz: ${err instanceof Error ? (err.stack ?? err.message) : 'failed'}\n`);
  if (runDir) rmSync(runDir, { recursive: true, force: true });
  process.exit(2);
});
