// The protocol lab's day: one toy's clips through the real encoder and envelope code, over the BLE or Wi-Fi model, to bytes, airtime, latency, energy, battery and quality — in virtual time.
import { SeededRandom } from '../../device/ble/random.ts';
import type { LinkParams } from '../../device/ble/timing.ts';
import { decodeOggToPcm, type EncodedClip, encodePcmToOgg } from '../../device/codec/clip.ts';
import { speechQuality } from '../../device/codec/quality.ts';
import { generateIdentity, type PrivateIdentity, publicPart } from '../../shared/identity.ts';
import { RECEIPT_BYTES } from '../../shared/limits.ts';
import { seededRandom } from '../../shared/random.ts';
import {
  activeLinkParams,
  type BleBurst,
  bleClipStream,
  bleCommand,
  bleIdle,
  packetOctets,
  sumBursts,
} from './ble.ts';
import { configToJson, type LabConfig } from './config.ts';
import type { LabConstants } from './constants.ts';
import {
  averageCurrentMa,
  batteryDays,
  decodeMcuMs,
  encodeMcuMs,
  energyMj,
  openMcuMs,
  sealMcuMs,
  signMcuMs,
  verifyMcuMs,
} from './cost.ts';
import {
  connectBytes,
  PING_BYTES,
  PUBACK_BYTES,
  publishBytes,
  SUBACK_ONE_BYTES,
  subscribeBytes,
} from './mqtt.ts';
import { type ByteParts, PART_NAMES, type ProtocolModule, type SealedClip } from './protocol.ts';
import { protocolModule } from './protocols.ts';
import { LAB_SAMPLE_RATE, loadSpeech, type SpeechSource } from './speech.ts';
import { type FlowResult, flowOverhead, type NetPath, sumFlows, tcpFlow } from './wifi.ts';

/** Version of the report's JSON layout. */
export const LAB_REPORT_FORMAT = 1;
const DAY_MS = 86_400_000;
/** Virtual midnight of the simulated day (2024-01-01T00:00:00Z): creation times in envelopes. */
const DAY0 = 1_704_067_200_000;
/** GATT control point commands (docs/BLE.md §4): value sizes. */
const CMD_START_STOP_BYTES = 1;
const CMD_BEGIN_CLIP_IN_BYTES = 5;
const CMD_PLAY_BYTES = 1;

export type ByteCategory = keyof ByteParts | 'receipts' | 'mqtt' | 'transport';
export const BYTE_CATEGORIES: readonly ByteCategory[] = [...PART_NAMES, 'receipts', 'mqtt', 'transport'];
export type Bytes = Readonly<Record<ByteCategory | 'total', number>>;

export interface SentClipReport {
  readonly index: number;
  /** Recording start, ms after midnight (virtual). */
  readonly atMs: number;
  readonly durationMs: number;
  readonly messages: number;
  readonly envelopeBytes: number;
  /** Everything it takes to get the clip from the toy into the gateway (and the receipts back). */
  readonly bytes: Bytes;
  /** The transport bytes by layer. */
  readonly transport: Readonly<Record<string, number>>;
  /** Gateway → every parent's inbox (MQTT + transport), not the toy's cost. */
  readonly deliveryBytes: number;
  /** The toy radio's channel time. */
  readonly airtimeMs: number;
  /** The toy's link busy with this clip. */
  readonly linkMs: number;
  readonly latencyMs: Readonly<Record<string, number>>;
  readonly energyMj: Readonly<Record<string, number>>;
  readonly quality: { readonly lsdDb: number; readonly score: number };
}

export interface ReceivedClipReport {
  readonly index: number;
  readonly atMs: number;
  readonly durationMs: number;
  readonly fromParent: number;
  readonly messages: number;
  readonly envelopeBytes: number;
  /** Everything the toy's link carries for it: the clip in, the receipt out. */
  readonly bytes: Bytes;
  readonly transport: Readonly<Record<string, number>>;
  readonly airtimeMs: number;
  readonly linkMs: number;
  readonly latencyMs: Readonly<Record<string, number>>;
  readonly energyMj: Readonly<Record<string, number>>;
}

export interface LabReport {
  readonly format: number;
  readonly name: string;
  readonly seed: number;
  readonly protocol: { readonly version: number; readonly label: string };
  readonly speech: { readonly source: string; readonly sha256?: string; readonly seconds?: number };
  readonly config: Record<string, unknown>;
  readonly constants: LabConstants;
  readonly sent: readonly SentClipReport[];
  readonly received: readonly ReceivedClipReport[];
  readonly day: DayReport;
  readonly measured?: Readonly<Record<string, number>>;
  readonly notes: readonly string[];
}

export interface DayReport {
  readonly clipsSent: number;
  readonly clipsReceived: number;
  /** Per sent clip on average. */
  readonly perClip: {
    readonly bytes: Bytes;
    readonly envelopeBytes: number;
    readonly airtimeMs: number;
    readonly latencyMs: number;
    readonly firstAudioMs: number;
    /** From the start of the recording to the first audio on the parent (what streaming shortens). */
    readonly firstAudioFromStartMs: number;
    readonly energyMj: number;
  };
  readonly bytesSent: Bytes;
  readonly bytesReceived: Bytes;
  /** Every byte the toy's link carries in the day (clips, receipts, keepalives, connects, idle). */
  readonly linkBytes: number;
  readonly airtimeMs: number;
  readonly latencyMs: {
    readonly sentMean: number;
    readonly sentMax: number;
    readonly firstAudioMean: number;
    readonly receivedMean: number;
  };
  readonly energyMj: Readonly<Record<string, number>>;
  readonly dailyEnergyMj: number;
  readonly averageCurrentMa: number;
  readonly batteryDays: number;
  readonly quality: { readonly lsdDb: number; readonly score: number };
}

export interface RunOptions {
  /** Called after each clip with (done, total). */
  readonly onProgress?: (done: number, total: number) => void;
}

/** Rounded for the report: the same config and seed give the same bytes of JSON on every platform. */
const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const r1 = (x: number): number => Math.round(x * 10) / 10;
const usToMs = (us: number): number => us / 1000;

function u32From(random: (n: number) => Uint8Array): number {
  const b = random(4);
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

/** Sorted, seeded times within the active hours. */
function schedule(count: number, from: number, to: number, rng: SeededRandom): number[] {
  const lo = from * 3_600_000;
  const hi = to * 3_600_000;
  return Array.from({ length: count }, () => Math.floor(lo + rng.nextFloat() * (hi - lo))).sort(
    (a, b) => a - b,
  );
}

function emptyBytes(): Record<ByteCategory | 'total', number> {
  const b = {} as Record<ByteCategory | 'total', number>;
  for (const k of BYTE_CATEGORIES) b[k] = 0;
  b.total = 0;
  return b;
}

function withTotal(b: Record<ByteCategory | 'total', number>): Bytes {
  b.total = BYTE_CATEGORIES.reduce((s, k) => s + b[k], 0);
  return b;
}

function addInto(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

function roundAll(o: Readonly<Record<string, number>>, f = r3): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) out[k] = f(v);
  return out;
}

function partsOf(clip: SealedClip): ByteParts {
  const p = { opus: 0, ogg: 0, header: 0, sealedKeys: 0, signature: 0, padding: 0 };
  for (const m of clip.messages) for (const k of PART_NAMES) p[k] += m.parts[k];
  return p;
}

function concatPcm(parts: readonly Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Everything one run needs, built once. */
interface Ctx {
  readonly config: LabConfig;
  readonly c: LabConstants;
  readonly module: ProtocolModule;
  readonly speech: SpeechSource;
  readonly toy: PrivateIdentity;
  readonly parents: readonly PrivateIdentity[];
  readonly gateway: PrivateIdentity;
  readonly ble?: LinkParams;
  readonly toyPath?: NetPath;
  readonly phonePath: NetPath;
  readonly linkRng: SeededRandom;
  readonly phoneRng: SeededRandom;
  readonly random: (label: string) => (n: number) => Uint8Array;
  hostEncodeMs: number;
  encodedAudioMs: number;
}

function encoderFor(
  ctx: Ctx,
  serialSeed: string,
): (pcm: Int16Array, opts?: { readonly pageMs?: number }) => EncodedClip {
  const codec = ctx.config.codec;
  const random = ctx.random(serialSeed);
  return (pcm, opts) => {
    const t = process.cpuUsage();
    const e = encodePcmToOgg(pcm, {
      ...(opts?.pageMs !== undefined ? { maxPageDurationMs: opts.pageMs } : {}),
      serial: u32From(random),
      settings: {
        sampleRate: LAB_SAMPLE_RATE,
        bitrate: Math.round(codec.bitrateKbps * 1000),
        complexity: codec.complexity,
        frameMs: codec.frameMs,
        dtx: codec.dtx,
        fec: codec.fec,
        packetLossPercent: codec.packetLossPercent,
      },
    });
    const u = process.cpuUsage(t);
    ctx.hostEncodeMs += (u.user + u.system) / 1000;
    ctx.encodedAudioMs += e.durationMs;
    return e;
  };
}

/** A PUBLISH of `bytes` and its PUBACK over a TCP path; `station` is the toy's side, if the toy is on it. */
function publishExchange(
  path: NetPath,
  topic: string,
  bytes: number,
  c: LabConstants,
  rng: SeededRandom,
  toyIs: 'publisher' | 'subscriber' | 'none',
): { publish: FlowResult; puback: FlowResult } {
  const publish = tcpFlow(path, [publishBytes(topic, bytes)], c, rng, {
    station: toyIs === 'publisher' ? 'sender' : toyIs === 'subscriber' ? 'receiver' : 'none',
  });
  const puback = tcpFlow(path, [PUBACK_BYTES], c, rng, {
    station: toyIs === 'publisher' ? 'receiver' : toyIs === 'subscriber' ? 'sender' : 'none',
  });
  return { publish, puback };
}

/** Radio energy of a Wi-Fi toy awake for `awakeUs`, transmitting `txUs` of it. */
function wifiRadioMj(awakeUs: number, txUs: number, c: LabConstants): number {
  const rx = Math.max(0, awakeUs - txUs);
  return (
    energyMj(c.wifi.txMa, usToMs(txUs), c.supplyVolts) + energyMj(c.wifi.rxMa, usToMs(rx), c.supplyVolts)
  );
}

/** Radio energy of BLE bursts: TX and RX time, and the ramp-up of every connection event. */
function bleRadioMj(b: BleBurst, c: LabConstants): number {
  const v = c.supplyVolts;
  return (
    energyMj(c.ble.txMa, usToMs(b.toyTxUs), v) +
    energyMj(c.ble.rxMa, usToMs(b.toyRxUs + b.events * c.ble.eventOverheadUs), v)
  );
}

function flowTransport(prefix: string, f: FlowResult): Record<string, number> {
  return {
    [`${prefix}Tls`]: f.tlsBytes,
    [`${prefix}TcpIp`]: f.tcpipBytes + f.ackBytes,
    [`${prefix}Mac`]: f.macBytes,
    [`${prefix}Resent`]: f.resentBytes,
  };
}

/** How many receipts one parent returns for `sealed` (v1: one; chunked: one per chunk). */
function receiptsPerClip(module: Ctx['module'], sealed: SealedClip, ctx: Ctx): number {
  return module.receipts(sealed, ctx.parents[0]!, ctx.toy.id, DAY0).length;
}

/** One sent clip, from the end of recording to the start of playback on the first parent. */
function simulateSent(ctx: Ctx, index: number, atMs: number, linkFreeAt: { ms: number }): SentClipReport {
  const { config, c, module } = ctx;
  const durationMs = config.usage.clipSeconds * 1000;
  const pcm = ctx.speech.clip(index, durationMs, 'sent');
  const hostBefore = ctx.hostEncodeMs;
  const sealed = module.sealClip({
    pcm,
    sampleRate: LAB_SAMPLE_RATE,
    durationMs,
    encode: encoderFor(ctx, `ogg-serial/sent/${index}`),
    sender: ctx.toy,
    recipients: ctx.parents.map(publicPart),
    sequence: index + 1,
    createdAt: DAY0 + atMs,
    random: ctx.random(`seal/sent/${index}`),
    options: config.protocol.options,
  });
  const hostMs = ctx.hostEncodeMs - hostBefore;
  // Quality: open as the first parent (everything verified), decode, compare with what was recorded.
  const oggs = module.openClip(sealed, ctx.parents[0]!, publicPart(ctx.toy));
  const decoded = concatPcm(oggs.map((o) => decodeOggToPcm(o).samples));
  const q = speechQuality(pcm, decoded, LAB_SAMPLE_RATE);

  const parts = partsOf(sealed);
  const envelopeBytes = sealed.messages.reduce((s, m) => s + m.bytes.length, 0);
  const bytes = emptyBytes();
  for (const k of PART_NAMES) bytes[k] = parts[k];
  const transport: Record<string, number> = {};

  // The toy's MCU: streaming encoder (done frameMs after the input if it keeps up), then seal.
  const encMs = encodeMcuMs(
    durationMs,
    config.codec.complexity,
    c,
    config.measureCpu ? (hostMs * 1000) / durationMs : undefined,
  );
  const frameCost = (encMs * config.codec.frameMs) / durationMs;
  const encodeTail = Math.max(frameCost, encMs + config.codec.frameMs - durationMs);
  const sealMs = sealed.messages.reduce((s, m) => s + sealMcuMs(m.work, c), 0);
  const endAt = atMs + durationMs;
  // When each message can leave: its audio recorded, encoded (the streaming encoder's tail) and
  // sealed. v1: the whole clip, then the one envelope; a chunked version: chunk by chunk.
  const msgReadyAt: number[] = [];
  {
    let sealDone = 0;
    for (const m of sealed.messages) {
      const audioDone = atMs + m.readyAfterMs + encodeTail;
      sealDone = Math.max(sealDone, audioDone) + sealMcuMs(m.work, c);
      msgReadyAt.push(sealDone);
    }
  }
  const readyAt = msgReadyAt[0]!;
  const start = Math.max(readyAt, linkFreeAt.ms);
  const queueMs = start - readyAt;

  const v = c.supplyVolts;
  const energy = {
    microphone: energyMj(c.audio.micMa, durationMs, v),
    encode: energyMj(c.mcu.activeMa, encMs, v),
    crypto: energyMj(c.mcu.activeMa, sealMs, v),
    radio: 0,
  };
  let airUs = 0;
  let linkUs = 0;
  let deliveryBytes = 0;
  /** Per message: when it is at the gateway, committed. */
  const atGateway: number[] = [];
  let phoneMs = 0;
  let uplinkMs = 0;
  let toyLinkMs = 0;

  if (config.link.kind === 'ble') {
    const p = ctx.ble!;
    const intervalMs = config.link.intervalMs;
    // The phone starts and stops the recording with control-point writes (START/STOP_RECORDING).
    const commands = [
      ...bleCommand(CMD_START_STOP_BYTES, p, ctx.linkRng),
      ...bleCommand(CMD_START_STOP_BYTES, p, ctx.linkRng),
    ];
    const streams = sealed.messages.map((m) => bleClipStream(m.bytes.length, 'toy-to-phone', p, ctx.linkRng));
    const all = sumBursts([...commands, ...streams]);
    // On-air bytes beyond the envelope: LL/L2CAP/ATT headers, MICs, CRCs, empty packets, GATT framing and commands.
    bytes.transport += all.onAirOctets - envelopeBytes;
    addInto(transport, { ble: all.onAirOctets - envelopeBytes });
    energy.radio += bleRadioMj(all, c);
    airUs += all.airtimeUs;
    let t = start;
    const phone = ctx.parents[0]!;
    for (const [i, m] of sealed.messages.entries()) {
      const s = streams[i]!;
      t = Math.max(t, msgReadyAt[i]!);
      // On average the next connection event anchor is half an interval away.
      const linkMs = intervalMs / 2 + usToMs(s.durationUs);
      t += linkMs;
      toyLinkMs += linkMs;
      const ex = publishExchange(
        ctx.phonePath,
        module.topics.relay(phone.id),
        m.bytes.length,
        c,
        ctx.phoneRng,
        'none',
      );
      bytes.mqtt +=
        publishBytes(module.topics.relay(phone.id), m.bytes.length) - m.bytes.length + PUBACK_BYTES;
      const over = flowOverhead(ex.publish) + flowOverhead(ex.puback);
      bytes.transport += over;
      addInto(transport, flowTransport('phone', sumFlows([ex.publish, ex.puback])));
      const up = usToMs(ex.publish.durationUs);
      phoneMs += c.timing.phoneRelayMs;
      uplinkMs += up;
      t += c.timing.phoneRelayMs + up;
      atGateway.push(t + c.timing.gatewayMs);
    }
    linkUs = toyLinkMs * 1000;
  } else {
    const path = ctx.toyPath!;
    let t = start;
    let awakeUs = 0;
    let txUs = 0;
    for (const [i, m] of sealed.messages.entries()) {
      t = Math.max(t, msgReadyAt[i]!);
      const topic = module.topics.clip(ctx.toy.id);
      const ex = publishExchange(path, topic, m.bytes.length, c, ctx.linkRng, 'publisher');
      bytes.mqtt += publishBytes(topic, m.bytes.length) - m.bytes.length + PUBACK_BYTES;
      bytes.transport += flowOverhead(ex.publish) + flowOverhead(ex.puback);
      addInto(transport, flowTransport('wifi', sumFlows([ex.publish, ex.puback])));
      const up = usToMs(ex.publish.durationUs);
      t += up;
      uplinkMs += up;
      atGateway.push(t + c.timing.gatewayMs);
      // The radio stays on until the PUBACK: the gateway commits first [PLK-12.3].
      awakeUs += ex.publish.durationUs + c.timing.gatewayMs * 1000 + ex.puback.durationUs;
      txUs += ex.publish.stationTxUs + ex.puback.stationTxUs;
      airUs += ex.publish.airtimeUs + ex.puback.airtimeUs;
    }
    toyLinkMs = uplinkMs;
    // Each parent's receipts (v1: one per clip; chunked: one per chunk) come back to the toy's
    // inbox later (PLK-6.2), buffered by the AP to a DTIM beacon.
    const receiptsBack = ctx.parents.length * receiptsPerClip(module, sealed, ctx);
    for (let i = 0; i < receiptsBack; i++) {
      const ex = publishExchange(
        path,
        module.topics.inbox(ctx.toy.id),
        RECEIPT_BYTES,
        c,
        ctx.linkRng,
        'subscriber',
      );
      bytes.receipts += RECEIPT_BYTES;
      bytes.mqtt +=
        publishBytes(module.topics.inbox(ctx.toy.id), RECEIPT_BYTES) - RECEIPT_BYTES + PUBACK_BYTES;
      bytes.transport += flowOverhead(ex.publish) + flowOverhead(ex.puback);
      addInto(transport, flowTransport('wifi', sumFlows([ex.publish, ex.puback])));
      awakeUs += ex.publish.durationUs + ex.puback.durationUs;
      txUs += ex.publish.stationTxUs + ex.puback.stationTxUs;
      airUs += ex.publish.airtimeUs + ex.puback.airtimeUs;
      energy.crypto += energyMj(c.mcu.activeMa, verifyMcuMs(RECEIPT_BYTES, c), v);
    }
    energy.radio += wifiRadioMj(awakeUs, txUs, c);
    linkUs = awakeUs;
  }
  linkFreeAt.ms = start + usToMs(linkUs);

  // Delivery: the gateway forwards each message to every parent's inbox [PLK-12.4].
  let firstAudioAt = Number.POSITIVE_INFINITY;
  let fullAt = 0;
  let deliveryMs = 0;
  for (const [i, m] of sealed.messages.entries()) {
    let arrival = 0;
    for (const parent of ctx.parents) {
      const topic = module.topics.inbox(parent.id);
      const ex = publishExchange(ctx.phonePath, topic, m.bytes.length, c, ctx.phoneRng, 'none');
      deliveryBytes +=
        ex.publish.appBytes + ex.puback.appBytes + flowOverhead(ex.publish) + flowOverhead(ex.puback);
      if (parent === ctx.parents[0]) {
        arrival = atGateway[i]! + usToMs(ex.publish.durationUs);
        if (i === sealed.messages.length - 1) deliveryMs = usToMs(ex.publish.durationUs);
      }
    }
    const playable = arrival + c.timing.parentOpenMs;
    if (m.playableMs > 0) firstAudioAt = Math.min(firstAudioAt, playable);
    fullAt = Math.max(fullAt, playable);
  }
  const energyTotal = Object.values(energy).reduce((s, x) => s + x, 0);
  const latency = {
    encodeMs: encodeTail,
    sealMs,
    queueMs,
    toyLinkMs,
    phoneMs,
    uplinkMs,
    gatewayMs: c.timing.gatewayMs,
    deliveryMs,
    openMs: c.timing.parentOpenMs,
    firstAudioMs: firstAudioAt - endAt,
    // From the first word: v1 waits for the whole recording; a chunked clip plays while it goes on.
    firstAudioFromStartMs: firstAudioAt - atMs,
    fullClipMs: fullAt - endAt,
  };
  return {
    index,
    atMs,
    durationMs,
    messages: sealed.messages.length,
    envelopeBytes,
    bytes: withTotal(bytes),
    transport,
    deliveryBytes,
    airtimeMs: r3(usToMs(airUs)),
    linkMs: r3(usToMs(linkUs)),
    latencyMs: roundAll(latency),
    energyMj: roundAll({ ...energy, total: energyTotal }),
    quality: { lsdDb: r3(q.lsdDb), score: r3(q.score) },
  };
}

/** One clip a parent sends to the toy, from the end of its recording to the start of playback on the toy. */
function simulateReceived(
  ctx: Ctx,
  index: number,
  atMs: number,
  linkFreeAt: { ms: number },
): ReceivedClipReport {
  const { config, c, module } = ctx;
  const durationMs = config.usage.receivedClipSeconds * 1000;
  const from = index % ctx.parents.length;
  const sender = ctx.parents[from]!;
  const pcm = ctx.speech.clip(config.usage.clipsSentPerDay + index, durationMs, 'received');
  // A parent seals to the rest of the family: the toy and the other parents.
  const recipients = [ctx.toy, ...ctx.parents.filter((p) => p !== sender)].map(publicPart);
  const sealed = module.sealClip({
    pcm,
    sampleRate: LAB_SAMPLE_RATE,
    durationMs,
    encode: encoderFor(ctx, `ogg-serial/received/${index}`),
    sender,
    recipients,
    sequence: index + 1,
    createdAt: DAY0 + atMs,
    random: ctx.random(`seal/received/${index}`),
    options: config.protocol.options,
  });
  // The toy opens what it gets: the real bytes must verify and decrypt.
  module.openClip(sealed, ctx.toy, publicPart(sender));
  const receiptMsgs = module.receipts(sealed, ctx.toy, sender.id, DAY0 + atMs + durationMs);
  const receiptBytes = receiptMsgs.reduce((n, r) => n + r.length, 0);

  const parts = partsOf(sealed);
  const envelopeBytes = sealed.messages.reduce((s, m) => s + m.bytes.length, 0);
  const bytes = emptyBytes();
  for (const k of PART_NAMES) bytes[k] = parts[k];
  bytes.receipts = receiptBytes;
  const transport: Record<string, number> = {};
  const v = c.supplyVolts;
  const openMs = sealed.messages.reduce((s, m) => s + openMcuMs(m.work, c), 0);
  const decodeMs = decodeMcuMs(durationMs, c);
  const firstFrameDecodeMs = (decodeMs * config.codec.frameMs) / durationMs;
  const energy = {
    radio: 0,
    crypto: energyMj(
      c.mcu.activeMa,
      openMs + receiptMsgs.reduce((ms, r) => ms + signMcuMs(r.length, c), 0),
      v,
    ),
    decode: energyMj(c.mcu.activeMa, decodeMs, v),
    playback: energyMj(c.audio.playbackMa, durationMs, v),
  };
  const endAt = atMs + durationMs;
  // Parent's phone: seal, publish to its clip topic, gateway commit.
  let t = endAt + c.timing.parentOpenMs;
  let uplinkMs = 0;
  for (const m of sealed.messages) {
    const ex = publishExchange(
      ctx.phonePath,
      module.topics.clip(sender.id),
      m.bytes.length,
      c,
      ctx.phoneRng,
      'none',
    );
    uplinkMs += usToMs(ex.publish.durationUs);
  }
  t += uplinkMs + c.timing.gatewayMs;
  let waitMs = 0;
  let linkMs = 0;
  let airUs = 0;
  let busyUs = 0;
  let phoneMs = 0;
  if (config.link.kind === 'ble') {
    const p = ctx.ble!;
    const relay = ctx.parents[0]!;
    // Gateway → the relaying phone's inbox, then over BLE to the toy (Clip in), then PLAY_CLIP.
    for (const m of sealed.messages) {
      const ex = publishExchange(
        ctx.phonePath,
        module.topics.inbox(relay.id),
        m.bytes.length,
        c,
        ctx.phoneRng,
        'none',
      );
      phoneMs += usToMs(ex.publish.durationUs) + c.timing.phoneRelayMs;
      bytes.mqtt +=
        publishBytes(module.topics.inbox(relay.id), m.bytes.length) - m.bytes.length + PUBACK_BYTES;
      bytes.transport += flowOverhead(ex.publish) + flowOverhead(ex.puback);
      addInto(transport, flowTransport('phone', sumFlows([ex.publish, ex.puback])));
    }
    t += phoneMs;
    // The toy listens at one idle event in (peripheralLatency + 1): half that period on average.
    waitMs = (config.link.idleIntervalMs * (config.link.peripheralLatency + 1)) / 2;
    t = Math.max(t + waitMs, linkFreeAt.ms);
    const begin = bleCommand(CMD_BEGIN_CLIP_IN_BYTES, p, ctx.linkRng);
    const streams = sealed.messages.map((m) => bleClipStream(m.bytes.length, 'phone-to-toy', p, ctx.linkRng));
    const play = bleCommand(CMD_PLAY_BYTES, p, ctx.linkRng);
    const receiptsOut = receiptMsgs.map((r) => bleClipStream(r.length, 'toy-to-phone', p, ctx.linkRng));
    const all = sumBursts([...begin, ...streams, ...play, ...receiptsOut]);
    bytes.transport += all.onAirOctets - envelopeBytes - receiptBytes;
    addInto(transport, { ble: all.onAirOctets - envelopeBytes - receiptBytes });
    energy.radio += bleRadioMj(all, c);
    airUs += all.airtimeUs;
    const intervalMs = config.link.intervalMs;
    // Each command waits for its Write Response in the next event; the stream starts at an anchor.
    linkMs =
      2 * intervalMs +
      usToMs(sumBursts([...begin, ...play]).durationUs) +
      streams.reduce((s, b) => s + intervalMs / 2 + usToMs(b.durationUs), 0);
    busyUs = (linkMs + receiptsOut.reduce((ms, r) => ms + intervalMs / 2 + usToMs(r.durationUs), 0)) * 1000;
    t += linkMs;
    // The receipts leave through the phone (not defined by v1 for a BLE-only toy: see notes).
    for (const r of receiptMsgs) {
      const rex = publishExchange(
        ctx.phonePath,
        module.topics.relay(relay.id),
        r.length,
        c,
        ctx.phoneRng,
        'none',
      );
      bytes.mqtt += publishBytes(module.topics.relay(relay.id), r.length) - r.length + PUBACK_BYTES;
      bytes.transport += flowOverhead(rex.publish) + flowOverhead(rex.puback);
      addInto(transport, flowTransport('phone', sumFlows([rex.publish, rex.puback])));
    }
  } else {
    const path = ctx.toyPath!;
    // In power save the AP holds the frames until the next DTIM beacon the toy wakes for.
    waitMs = (c.wifi.beaconIntervalMs * c.wifi.dtimPeriod) / 2;
    t = Math.max(t + waitMs, linkFreeAt.ms);
    let awakeUs = 0;
    let txUs = 0;
    for (const m of sealed.messages) {
      const topic = module.topics.inbox(ctx.toy.id);
      const ex = publishExchange(path, topic, m.bytes.length, c, ctx.linkRng, 'subscriber');
      bytes.mqtt += publishBytes(topic, m.bytes.length) - m.bytes.length + PUBACK_BYTES;
      bytes.transport += flowOverhead(ex.publish) + flowOverhead(ex.puback);
      addInto(transport, flowTransport('wifi', sumFlows([ex.publish, ex.puback])));
      linkMs += usToMs(ex.publish.durationUs);
      awakeUs += ex.publish.durationUs + ex.puback.durationUs;
      txUs += ex.publish.stationTxUs + ex.puback.stationTxUs;
      airUs += ex.publish.airtimeUs + ex.puback.airtimeUs;
    }
    t += linkMs;
    // The toy's receipts to its rcpt topic [PLK-6.1].
    const rtopic = module.topics.receipt(ctx.toy.id);
    for (const r of receiptMsgs) {
      const rex = publishExchange(path, rtopic, r.length, c, ctx.linkRng, 'publisher');
      bytes.mqtt += publishBytes(rtopic, r.length) - r.length + PUBACK_BYTES;
      bytes.transport += flowOverhead(rex.publish) + flowOverhead(rex.puback);
      addInto(transport, flowTransport('wifi', sumFlows([rex.publish, rex.puback])));
      awakeUs += rex.publish.durationUs + c.timing.gatewayMs * 1000 + rex.puback.durationUs;
      txUs += rex.publish.stationTxUs + rex.puback.stationTxUs;
      airUs += rex.publish.airtimeUs + rex.puback.airtimeUs;
    }
    energy.radio += wifiRadioMj(awakeUs, txUs, c);
    busyUs = awakeUs;
  }
  linkFreeAt.ms = t - linkMs + usToMs(busyUs);
  const startPlay = t + openMs + firstFrameDecodeMs;
  const energyTotal = Object.values(energy).reduce((s, x) => s + x, 0);
  return {
    index,
    atMs,
    durationMs,
    fromParent: from,
    messages: sealed.messages.length,
    envelopeBytes,
    bytes: withTotal(bytes),
    transport,
    airtimeMs: r3(usToMs(airUs)),
    linkMs: r3(linkMs),
    latencyMs: roundAll({
      parentMs: c.timing.parentOpenMs,
      uplinkMs,
      gatewayMs: c.timing.gatewayMs,
      phoneMs,
      waitMs,
      toyLinkMs: linkMs,
      openMs: openMs + firstFrameDecodeMs,
      firstAudioMs: startPlay - endAt,
    }),
    energyMj: roundAll({ ...energy, total: energyTotal }),
  };
}

/** Idle-time costs of the day: the BLE idle connection, or Wi-Fi keepalives and (re)connects. */
function dayOverheads(
  ctx: Ctx,
  busyMs: number,
): { energy: Record<string, number>; linkBytes: number; airUs: number } {
  const { config, c } = ctx;
  const v = c.supplyVolts;
  const idleMs = Math.max(0, DAY_MS - busyMs);
  if (config.link.kind === 'ble') {
    const idle = bleIdle(config.link, idleMs);
    const p = ctx.ble!;
    const rxUs = idle.rxUs + c.ble.eventOverheadUs;
    return {
      energy: {
        sleep: energyMj(c.mcu.sleepUa / 1000, DAY_MS, v),
        idleLink:
          idle.eventsPerDay *
          (energyMj(c.ble.txMa, usToMs(idle.txUs), v) + energyMj(c.ble.rxMa, usToMs(rxUs), v)),
      },
      linkBytes: idle.eventsPerDay * 2 * packetOctets(0, p),
      airUs: idle.eventsPerDay * (idle.txUs + idle.rxUs),
    };
  }
  const path = ctx.toyPath!;
  const link = config.link;
  // Keepalive: PINGREQ out, PINGRESP in, once per keepalive period with nothing else sent [MQTT 3.1.1 §3.1.2.10].
  const pings = Math.floor(idleMs / (link.keepaliveS * 1000));
  const rng = new SeededRandom(config.seed ^ 0x6b65_6570);
  const req = tcpFlow(path, [PING_BYTES], c, rng, { station: 'sender' });
  const rsp = tcpFlow(path, [PING_BYTES], c, rng, { station: 'receiver' });
  const ping = sumFlows([req, rsp]);
  const pingMj = wifiRadioMj(ping.durationUs, ping.stationTxUs, c);
  // A connect [PLK-3]: TCP handshake, TLS 1.3, CONNECT/CONNACK, SUBSCRIBE/SUBACK, proof and roster in, PUBACKs out.
  const msgs = ctx.module.connectMessages({
    endpoint: ctx.toy,
    gateway: ctx.gateway,
    family: [
      { identity: publicPart(ctx.toy), role: 'toy' as const },
      ...ctx.parents.map((p) => ({ identity: publicPart(p), role: 'parent' as const })),
    ],
    now: DAY0,
    random: ctx.random('connect'),
  });
  const inbox = ctx.module.topics.inbox(ctx.toy.id);
  const flows: FlowResult[] = [];
  const handshakeRng = new SeededRandom(config.seed ^ 0x636f_6e6e);
  const out = (packets: number[], framed = false): void => {
    flows.push(tcpFlow(path, packets, c, handshakeRng, { station: 'sender', framed }));
  };
  const inn = (packets: number[], framed = false): void => {
    flows.push(tcpFlow(path, packets, c, handshakeRng, { station: 'receiver', framed }));
  };
  const synPayload = c.net.synBytes - c.net.ipHeaderBytes - c.net.tcpHeaderBytes - c.net.tcpOptionsBytes;
  out([Math.max(0, synPayload)], true);
  inn([Math.max(0, synPayload)], true);
  if (path.tls) {
    out([c.net.tlsHandshakeClientBytes], true);
    inn([c.net.tlsHandshakeServerBytes], true);
  }
  out([connectBytes(ctx.toy.id, ctx.toy.id, msgs.token.length)]);
  inn([4]);
  out([subscribeBytes(inbox)]);
  inn([SUBACK_ONE_BYTES, publishBytes(inbox, msgs.proof.length), publishBytes(inbox, msgs.roster.length)]);
  out([PUBACK_BYTES, PUBACK_BYTES]);
  const connect = sumFlows(flows);
  const connectAwakeUs = connect.durationUs + c.timing.gatewayConnectMs * 1000;
  const connectCpuMs =
    signMcuMs(msgs.token.length, c) + verifyMcuMs(msgs.proof.length, c) + verifyMcuMs(msgs.roster.length, c);
  const connects = link.connectsPerDay;
  const wire = (f: FlowResult): number => f.appBytes + flowOverhead(f);
  return {
    energy: {
      idle: energyMj(c.wifi.idleMa, idleMs, v),
      keepalive: pings * pingMj,
      connects:
        connects *
        (wifiRadioMj(connectAwakeUs, connect.stationTxUs, c) + energyMj(c.mcu.activeMa, connectCpuMs, v)),
    },
    linkBytes: pings * wire(ping) + connects * wire(connect),
    airUs: pings * ping.airtimeUs + connects * connect.airtimeUs,
  };
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : 0);

function sumBytes(list: readonly { bytes: Bytes }[]): Bytes {
  const b = emptyBytes();
  for (const x of list) for (const k of BYTE_CATEGORIES) b[k] += x.bytes[k];
  return withTotal(b);
}

function meanBytes(list: readonly { bytes: Bytes }[]): Bytes {
  const s = sumBytes(list);
  const b = emptyBytes();
  for (const k of BYTE_CATEGORIES) b[k] = list.length ? Math.round(s[k] / list.length) : 0;
  return withTotal(b);
}

/** Runs one configuration's simulated day. Deterministic unless `measureCpu` is set. */
export async function runLab(config: LabConfig, opts: RunOptions = {}): Promise<LabReport> {
  const module = protocolModule(config.protocol.version);
  const c = config.constants;
  const random = (label: string) => seededRandom(`plushlink/lab/${config.seed}/${label}`);
  const link = config.link;
  const ctx: Ctx = {
    config,
    c,
    module,
    speech: loadSpeech(config.speech, config.speechPath, config.seed),
    toy: generateIdentity('toy', random('identity/toy')),
    parents: Array.from({ length: config.usage.parents }, (_, i) =>
      generateIdentity('parent', random(`identity/parent/${i}`)),
    ),
    gateway: generateIdentity('gateway', random('identity/gateway')),
    ...(link.kind === 'ble'
      ? { ble: activeLinkParams(link) }
      : { toyPath: { rttMs: link.rttMs, lossRate: link.lossRate, tls: link.tls, mcs: link.mcs } }),
    phonePath: config.phone,
    linkRng: new SeededRandom(config.seed ^ 0x6c69_6e6b),
    phoneRng: new SeededRandom(config.seed ^ 0x7068_6f6e),
    random,
    hostEncodeMs: 0,
    encodedAudioMs: 0,
  };
  const scheduleRng = new SeededRandom(config.seed ^ 0x7363_6865);
  const u = config.usage;
  const sentAt = schedule(u.clipsSentPerDay, u.activeFromHour, u.activeToHour, scheduleRng);
  const receivedAt = schedule(u.clipsReceivedPerDay, u.activeFromHour, u.activeToHour, scheduleRng);
  const events = [
    ...sentAt.map((at, i) => ({ at, kind: 'sent' as const, i })),
    ...receivedAt.map((at, i) => ({ at, kind: 'received' as const, i })),
  ].sort((a, b) => a.at - b.at || (a.kind === b.kind ? a.i - b.i : a.kind === 'sent' ? -1 : 1));
  const sent: SentClipReport[] = [];
  const received: ReceivedClipReport[] = [];
  const linkFreeAt = { ms: 0 };
  for (const [n, e] of events.entries()) {
    if (e.kind === 'sent') sent.push(simulateSent(ctx, e.i, e.at, linkFreeAt));
    else received.push(simulateReceived(ctx, e.i, e.at, linkFreeAt));
    opts.onProgress?.(n + 1, events.length);
    // Let the event loop breathe between clips (progress output, Ctrl-C).
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  sent.sort((a, b) => a.index - b.index);
  received.sort((a, b) => a.index - b.index);

  const busyMs = [...sent, ...received].reduce((s, x) => s + x.linkMs, 0);
  const over = dayOverheads(ctx, busyMs);
  const energy: Record<string, number> = { ...over.energy };
  const sentEnergy: Record<string, number> = {};
  for (const s of sent) addInto(sentEnergy, s.energyMj);
  const recvEnergy: Record<string, number> = {};
  for (const r of received) addInto(recvEnergy, r.energyMj);
  energy.record = sentEnergy.microphone ?? 0;
  energy.encode = sentEnergy.encode ?? 0;
  energy.crypto = (sentEnergy.crypto ?? 0) + (recvEnergy.crypto ?? 0);
  energy.radio = (sentEnergy.radio ?? 0) + (recvEnergy.radio ?? 0);
  energy.decode = recvEnergy.decode ?? 0;
  energy.playback = recvEnergy.playback ?? 0;
  const dailyEnergyMj = Object.values(energy).reduce((s, x) => s + x, 0);
  const bytesSent = sumBytes(sent);
  const bytesReceived = sumBytes(received);
  const airtimeMs =
    sent.reduce((s, x) => s + x.airtimeMs, 0) +
    received.reduce((s, x) => s + x.airtimeMs, 0) +
    usToMs(over.airUs);
  // Quality over every sent clip, each weighted equally.
  const lsd = mean(sent.map((s) => s.quality.lsdDb));
  const notes: string[] = [];
  if (link.kind === 'ble') {
    notes.push(
      'BLE toy: v1 defines no way for a BLE-only toy to get clips and receipts from its inbox or to send receipts (PLK-4.5 covers relayed envelopes only); the lab counts them as if the phone relayed them.',
    );
  }
  if (config.measureCpu)
    notes.push(
      "measureCpu: encode costs come from this host's CPU time, so this report is not reproducible.",
    );
  const hostMsPerSecond = ctx.encodedAudioMs > 0 ? (ctx.hostEncodeMs * 1000) / ctx.encodedAudioMs : 0;
  const report: LabReport = {
    format: LAB_REPORT_FORMAT,
    name: config.name,
    seed: config.seed,
    protocol: { version: module.version, label: module.label },
    speech: {
      source: ctx.speech.label,
      ...(ctx.speech.sha256 ? { sha256: ctx.speech.sha256 } : {}),
      ...(ctx.speech.seconds !== undefined ? { seconds: r3(ctx.speech.seconds) } : {}),
    },
    config: configToJson(config),
    constants: c,
    sent,
    received,
    day: {
      clipsSent: sent.length,
      clipsReceived: received.length,
      perClip: {
        bytes: meanBytes(sent),
        envelopeBytes: Math.round(mean(sent.map((s) => s.envelopeBytes))),
        airtimeMs: r3(mean(sent.map((s) => s.airtimeMs))),
        latencyMs: r3(mean(sent.map((s) => s.latencyMs.fullClipMs ?? 0))),
        firstAudioMs: r3(mean(sent.map((s) => s.latencyMs.firstAudioMs ?? 0))),
        firstAudioFromStartMs: r3(mean(sent.map((s) => s.latencyMs.firstAudioFromStartMs ?? 0))),
        energyMj: r3(mean(sent.map((s) => s.energyMj.total ?? 0))),
      },
      bytesSent,
      bytesReceived,
      linkBytes: Math.round(bytesSent.total + bytesReceived.total + over.linkBytes),
      airtimeMs: r3(airtimeMs),
      latencyMs: {
        sentMean: r3(mean(sent.map((s) => s.latencyMs.fullClipMs ?? 0))),
        sentMax: r3(Math.max(0, ...sent.map((s) => s.latencyMs.fullClipMs ?? 0))),
        firstAudioMean: r3(mean(sent.map((s) => s.latencyMs.firstAudioMs ?? 0))),
        receivedMean: r3(mean(received.map((r) => r.latencyMs.firstAudioMs ?? 0))),
      },
      energyMj: roundAll(energy),
      dailyEnergyMj: r3(dailyEnergyMj),
      averageCurrentMa: r3(averageCurrentMa(dailyEnergyMj, c)),
      batteryDays: r1(batteryDays(u.batteryMah, dailyEnergyMj, c)),
      quality: { lsdDb: r3(lsd), score: r3(Math.max(0, 1 - lsd / 20)) },
    },
    ...(config.measureCpu
      ? {
          measured: {
            hostEncodeMsPerAudioSecond: r3(hostMsPerSecond),
            calibrationHostEncodeMsPerAudioSecond:
              c.codecCost.encodeHostMsPerSecond[config.codec.complexity] ?? 0,
          },
        }
      : {}),
    notes,
  };
  return report;
}
