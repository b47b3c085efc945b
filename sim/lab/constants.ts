// Protocol-lab constants (currents, timings, header sizes, codec and crypto costs) with two device profiles; every value's source is in docs/LAB.md §4.
import { configError } from './errors.ts';

/** Which toy the defaults describe: a BLE toy on an nRF52840, or a Wi-Fi toy on an ESP32. */
export type DeviceProfile = 'ble' | 'wifi';

export interface LabConstants {
  /** Battery-side supply voltage the currents are quoted at, V. */
  readonly supplyVolts: number;
  readonly battery: {
    /** Share of the rated capacity the toy can use (1 = all of it). */
    readonly usableFraction: number;
  };
  readonly mcu: {
    readonly clockMhz: number;
    /** CPU running (encoding, crypto), mA. */
    readonly activeMa: number;
    /** System ON sleep between events (BLE toys; a Wi-Fi toy's idle current is wifi.idleMa), µA. */
    readonly sleepUa: number;
    /** MCU cycles per host cycle for the same libopus work. */
    readonly cyclesPerHostCycle: number;
  };
  readonly codecCost: {
    /** Clock of the host the codec costs were measured on, MHz. */
    readonly hostClockMhz: number;
    /** Host CPU ms per second of 16 kHz audio, encoder at complexity 0..10 (11 values). */
    readonly encodeHostMsPerSecond: readonly number[];
    /** Host CPU ms per second of audio, decoder. */
    readonly decodeHostMsPerSecond: number;
  };
  readonly crypto: {
    /** One X25519 scalar multiplication on the MCU, cycles. */
    readonly x25519Cycles: number;
    /** Ed25519 signature without the hashing, cycles. */
    readonly ed25519SignCycles: number;
    /** Ed25519 verification without the hashing, cycles. */
    readonly ed25519VerifyCycles: number;
    readonly sha512CyclesPerByte: number;
    /** XSalsa20-Poly1305 (crypto_secretbox), cycles per byte. */
    readonly secretboxCyclesPerByte: number;
  };
  readonly audio: {
    /** Microphone while recording, mA. */
    readonly micMa: number;
    /** Amplifier and speaker while playing, mA. */
    readonly playbackMa: number;
  };
  readonly ble: {
    readonly txMa: number;
    readonly rxMa: number;
    /** Radio ramp-up per connection event (counted at rxMa), µs. */
    readonly eventOverheadUs: number;
  };
  readonly wifi: {
    readonly txMa: number;
    /** Receiving, and listening while a transfer waits for the network, mA. */
    readonly rxMa: number;
    /** Average current while associated and idle (auto light-sleep, DTIM beacons included), mA. */
    readonly idleMa: number;
    readonly beaconIntervalMs: number;
    readonly dtimPeriod: number;
    readonly slotUs: number;
    readonly sifsUs: number;
    readonly cwMin: number;
    /** HT-mixed PPDU preamble and headers, one spatial stream, µs. */
    readonly htPreambleUs: number;
    /** Legacy OFDM preamble and SIGNAL (control responses), µs. */
    readonly legacyPreambleUs: number;
    /** OFDM signal extension in the 2.4 GHz band, µs. */
    readonly signalExtensionUs: number;
    /** Data bits per 4 µs OFDM symbol of the 802.11 ACK (24 Mbit/s basic rate). */
    readonly ackDataBitsPerSymbol: number;
    /** 802.11 QoS data MAC header, CCMP header and MIC, LLC/SNAP and FCS per IP packet, bytes. */
    readonly macOverheadBytes: number;
    readonly ackFrameBytes: number;
  };
  readonly net: {
    readonly ipHeaderBytes: number;
    readonly tcpHeaderBytes: number;
    /** TCP timestamps option on every segment, bytes. */
    readonly tcpOptionsBytes: number;
    /** IP MTU of the path, bytes. */
    readonly mtuBytes: number;
    readonly initialCwndSegments: number;
    /** Segments per delayed ACK. */
    readonly delayedAckSegments: number;
    /** SYN and SYN-ACK with their options, bytes. */
    readonly synBytes: number;
    /** TLS 1.3 record header, content type and AEAD tag, bytes. */
    readonly tlsRecordOverheadBytes: number;
    readonly tlsMaxRecordBytes: number;
    /** TLS 1.3 full handshake, client → server and server → client, bytes (records included). */
    readonly tlsHandshakeClientBytes: number;
    readonly tlsHandshakeServerBytes: number;
  };
  readonly timing: {
    /** Gateway: verify, commit (fsync) and PUBACK one clip, ms. */
    readonly gatewayMs: number;
    /** Gateway: check a connect token and send proof and roster, ms. */
    readonly gatewayConnectMs: number;
    /** Phone: from the last BLE notification to the MQTT publish, ms. */
    readonly phoneRelayMs: number;
    /** Parent app: verify, open, start decoding, ms. */
    readonly parentOpenMs: number;
  };
}

/** Host codec costs measured here (docs/LAB.md §4.3): ms of CPU per second of audio. */
const HOST_ENCODE_MS = [2.11, 2.4, 3.61, 4.17, 5.12, 5.13, 7.15, 8.14, 10.86, 10.59, 10.82] as const;

const SHARED = {
  battery: { usableFraction: 1 },
  codecCost: { hostClockMhz: 2596, encodeHostMsPerSecond: HOST_ENCODE_MS, decodeHostMsPerSecond: 0.75 },
  crypto: {
    x25519Cycles: 907_240,
    ed25519SignCycles: 907_240,
    ed25519VerifyCycles: 1_814_480,
    sha512CyclesPerByte: 80,
    secretboxCyclesPerByte: 20,
  },
  audio: { micMa: 0.6, playbackMa: 11.5 },
  ble: { txMa: 6.4, rxMa: 6.26, eventOverheadUs: 140 },
  wifi: {
    txMa: 180,
    rxMa: 95,
    idleMa: 2.33,
    beaconIntervalMs: 102.4,
    dtimPeriod: 3,
    slotUs: 9,
    sifsUs: 10,
    cwMin: 15,
    htPreambleUs: 36,
    legacyPreambleUs: 20,
    signalExtensionUs: 6,
    ackDataBitsPerSymbol: 96,
    macOverheadBytes: 54,
    ackFrameBytes: 14,
  },
  net: {
    ipHeaderBytes: 20,
    tcpHeaderBytes: 20,
    tcpOptionsBytes: 12,
    mtuBytes: 1500,
    initialCwndSegments: 10,
    delayedAckSegments: 2,
    synBytes: 60,
    tlsRecordOverheadBytes: 22,
    tlsMaxRecordBytes: 16384,
    tlsHandshakeClientBytes: 447,
    tlsHandshakeServerBytes: 1359,
  },
  timing: { gatewayMs: 3.6, gatewayConnectMs: 3.6, phoneRelayMs: 5, parentOpenMs: 1 },
} as const;

/** nRF52840 (BLE toy) and ESP32 (Wi-Fi toy) defaults. */
export const DEFAULT_CONSTANTS: Readonly<Record<DeviceProfile, LabConstants>> = Object.freeze({
  ble: {
    supplyVolts: 3.0,
    ...SHARED,
    mcu: { clockMhz: 64, activeMa: 3.3, sleepUa: 3.16, cyclesPerHostCycle: 10 },
  },
  wifi: {
    supplyVolts: 3.3,
    ...SHARED,
    mcu: { clockMhz: 240, activeMa: 50, sleepUa: 800, cyclesPerHostCycle: 10 },
  },
});

type Group = Exclude<keyof LabConstants, 'supplyVolts'>;
const GROUPS: readonly Group[] = [
  'battery',
  'mcu',
  'codecCost',
  'crypto',
  'audio',
  'ble',
  'wifi',
  'net',
  'timing',
];

/** Keys that must be integers, and the ones allowed to be 0 (the rest must be > 0). */
const INTEGER_KEYS = new Set([
  'dtimPeriod',
  'cwMin',
  'ackDataBitsPerSymbol',
  'macOverheadBytes',
  'ackFrameBytes',
  'ipHeaderBytes',
  'tcpHeaderBytes',
  'tcpOptionsBytes',
  'mtuBytes',
  'initialCwndSegments',
  'delayedAckSegments',
  'synBytes',
  'tlsRecordOverheadBytes',
  'tlsMaxRecordBytes',
  'tlsHandshakeClientBytes',
  'tlsHandshakeServerBytes',
]);
const ZERO_OK = new Set([
  'tcpOptionsBytes',
  'eventOverheadUs',
  'signalExtensionUs',
  'micMa',
  'playbackMa',
  'sleepUa',
  'gatewayMs',
  'gatewayConnectMs',
  'phoneRelayMs',
  'parentOpenMs',
  'sha512CyclesPerByte',
  'secretboxCyclesPerByte',
  'x25519Cycles',
  'ed25519SignCycles',
  'ed25519VerifyCycles',
  'cwMin',
]);
const UPPER: Readonly<Record<string, number>> = { usableFraction: 1, mtuBytes: 9000, supplyVolts: 24 };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function checkNumber(key: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw configError(key, `must be a number, got ${show(v)}`);
  const min = ZERO_OK.has(name) ? 0 : Number.MIN_VALUE;
  const max = UPPER[name] ?? 1e12;
  if (v < min || v > max) {
    throw configError(
      key,
      `must be ${min === 0 ? '≥ 0' : '> 0'}${UPPER[name] ? ` and ≤ ${max}` : ''}, got ${v}`,
    );
  }
  if (INTEGER_KEYS.has(name) && !Number.isInteger(v)) throw configError(key, `must be an integer, got ${v}`);
  return v;
}

/** A value for messages: strings quoted, everything else as JSON. */
export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** The profile's constants with `overrides` (config key `constants`) applied; unknown keys refused. */
export function resolveConstants(profile: DeviceProfile, overrides: unknown): LabConstants {
  const base = DEFAULT_CONSTANTS[profile];
  if (overrides === undefined) return base;
  if (!isObject(overrides)) throw configError('constants', `must be an object, got ${show(overrides)}`);
  const out: Record<string, unknown> = { ...base };
  for (const [group, value] of Object.entries(overrides)) {
    if (group === 'supplyVolts') {
      out.supplyVolts = checkNumber('constants.supplyVolts', 'supplyVolts', value);
      continue;
    }
    if (!(GROUPS as readonly string[]).includes(group)) {
      throw configError(`constants.${group}`, `unknown key (known: supplyVolts, ${GROUPS.join(', ')})`);
    }
    const defaults = base[group as Group] as Readonly<Record<string, unknown>>;
    if (!isObject(value)) throw configError(`constants.${group}`, `must be an object, got ${show(value)}`);
    const merged: Record<string, unknown> = { ...defaults };
    for (const [name, v] of Object.entries(value)) {
      const key = `constants.${group}.${name}`;
      if (!(name in defaults)) {
        throw configError(key, `unknown key (known: ${Object.keys(defaults).join(', ')})`);
      }
      if (name === 'encodeHostMsPerSecond') {
        if (!Array.isArray(v) || v.length !== 11) {
          throw configError(key, `must be a list of 11 numbers (complexity 0..10), got ${show(v)}`);
        }
        merged[name] = v.map((x, i) => checkNumber(`${key}[${i}]`, name, x));
      } else merged[name] = checkNumber(key, name, v);
    }
    out[group] = merged;
  }
  return out as unknown as LabConstants;
}

/** Every constant as `group.name` (for the docs-sync test and the report). */
export function constantKeys(): string[] {
  const c = DEFAULT_CONSTANTS.ble;
  const keys = ['supplyVolts'];
  for (const g of GROUPS) for (const k of Object.keys(c[g])) keys.push(`${g}.${k}`);
  return keys;
}
