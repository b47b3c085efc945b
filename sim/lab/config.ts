// Protocol-lab configuration: JSON in, a fully defaulted and validated LabConfig out; unknown keys and out-of-range values are refused naming the key (docs/LAB.md §2).
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type DeviceProfile, type LabConstants, resolveConstants, show } from './constants.ts';
import { configError, LabError } from './errors.ts';
import { protocolModule } from './protocols.ts';

export type FrameMs = 10 | 20 | 40 | 60;

export interface CodecConfig {
  /** Opus target bitrate, kbit/s (6..64: the project's encoder range). */
  readonly bitrateKbps: number;
  readonly complexity: number;
  readonly frameMs: FrameMs;
  readonly dtx: boolean;
  readonly fec: boolean;
  readonly packetLossPercent: number;
}

export interface BleLinkConfig {
  readonly kind: 'ble';
  readonly mtu: number;
  readonly dataLength: number;
  readonly phy: '1M' | '2M';
  /** Connection interval while a clip moves, ms. */
  readonly intervalMs: number;
  readonly perEvent: number;
  readonly loss: number;
  readonly encrypted: boolean;
  /** Connection interval while idle, ms. */
  readonly idleIntervalMs: number;
  /** Idle connection events the toy may skip (connPeripheralLatency). */
  readonly peripheralLatency: number;
}

export interface WifiLinkConfig {
  readonly kind: 'wifi';
  readonly tls: boolean;
  readonly rttMs: number;
  readonly lossRate: number;
  /** 802.11n MCS index, 20 MHz, long guard interval, one stream. */
  readonly mcs: number;
  readonly keepaliveS: number;
  readonly connectsPerDay: number;
}

export type LinkConfig = BleLinkConfig | WifiLinkConfig;

/** The parents' phones (and, for a BLE toy, the relaying phone): their Internet path to the gateway. */
export interface PhoneConfig {
  readonly rttMs: number;
  readonly lossRate: number;
  readonly tls: boolean;
  readonly mcs: number;
}

export interface UsageConfig {
  readonly clipsSentPerDay: number;
  readonly clipSeconds: number;
  readonly clipsReceivedPerDay: number;
  readonly receivedClipSeconds: number;
  /** Parent apps in the family: the recipients of the toy's clips. */
  readonly parents: number;
  readonly batteryMah: number;
  readonly activeFromHour: number;
  readonly activeToHour: number;
}

export interface ProtocolConfig {
  readonly version: number;
  /** The version module's own options (protocol.* besides version), defaulted by the module. */
  readonly options: Readonly<Record<string, number | boolean | string>>;
}

export interface LabConfig {
  readonly name: string;
  readonly seed: number;
  /** As written in the config: a WAV path, "synthetic", or undefined (bundled sample). */
  readonly speech: string | undefined;
  /** The WAV file to read, resolved against the config file's directory. */
  readonly speechPath: string | undefined;
  readonly codec: CodecConfig;
  readonly protocol: ProtocolConfig;
  readonly link: LinkConfig;
  readonly phone: PhoneConfig;
  readonly usage: UsageConfig;
  readonly constants: LabConstants;
  /** Also measure the host encoder's CPU time and use it (the output is then not reproducible). */
  readonly measureCpu: boolean;
}

/** Most audio one simulated day may encode (keeps a run well under 30 s). */
export const MAX_AUDIO_SECONDS_PER_DAY = 3600;

type Spec =
  | { readonly t: 'int'; readonly min: number; readonly max: number; readonly def: number }
  | {
      readonly t: 'num';
      readonly min: number;
      readonly max: number;
      readonly def: number;
      readonly step?: number;
    }
  | { readonly t: 'bool'; readonly def: boolean }
  | { readonly t: 'enum'; readonly values: readonly (string | number)[]; readonly def: string | number };

const CODEC: Readonly<Record<string, Spec>> = {
  bitrateKbps: { t: 'num', min: 6, max: 64, def: 24, step: 0.001 },
  complexity: { t: 'int', min: 0, max: 10, def: 10 },
  frameMs: { t: 'enum', values: [10, 20, 40, 60], def: 20 },
  dtx: { t: 'bool', def: false },
  fec: { t: 'bool', def: false },
  packetLossPercent: { t: 'int', min: 0, max: 100, def: 0 },
};

const BLE: Readonly<Record<string, Spec>> = {
  mtu: { t: 'int', min: 23, max: 517, def: 247 },
  dataLength: { t: 'int', min: 27, max: 251, def: 251 },
  phy: { t: 'enum', values: ['1M', '2M'], def: '2M' },
  intervalMs: { t: 'num', min: 7.5, max: 4000, def: 15, step: 1.25 },
  perEvent: { t: 'int', min: 1, max: 1000, def: 6 },
  loss: { t: 'num', min: 0, max: 0.9, def: 0 },
  encrypted: { t: 'bool', def: true },
  idleIntervalMs: { t: 'num', min: 7.5, max: 4000, def: 1000, step: 1.25 },
  peripheralLatency: { t: 'int', min: 0, max: 499, def: 0 },
};

const WIFI: Readonly<Record<string, Spec>> = {
  tls: { t: 'bool', def: true },
  rttMs: { t: 'num', min: 0, max: 5000, def: 40 },
  lossRate: { t: 'num', min: 0, max: 0.5, def: 0 },
  mcs: { t: 'int', min: 0, max: 7, def: 7 },
  keepaliveS: { t: 'int', min: 5, max: 65535, def: 30 },
  connectsPerDay: { t: 'int', min: 1, max: 10000, def: 1 },
};

const PHONE: Readonly<Record<string, Spec>> = {
  rttMs: { t: 'num', min: 0, max: 5000, def: 60 },
  lossRate: { t: 'num', min: 0, max: 0.5, def: 0 },
  tls: { t: 'bool', def: true },
  mcs: { t: 'int', min: 0, max: 7, def: 7 },
};

const USAGE: Readonly<Record<string, Spec>> = {
  clipsSentPerDay: { t: 'int', min: 0, max: 1000, def: 20 },
  clipSeconds: { t: 'num', min: 0.5, max: 300, def: 8 },
  clipsReceivedPerDay: { t: 'int', min: 0, max: 1000, def: 10 },
  receivedClipSeconds: { t: 'num', min: 0.5, max: 300, def: 8 },
  parents: { t: 'int', min: 1, max: 15, def: 2 },
  batteryMah: { t: 'num', min: 1, max: 100_000, def: 1000 },
  activeFromHour: { t: 'num', min: 0, max: 24, def: 7 },
  activeToHour: { t: 'num', min: 0, max: 24, def: 20 },
};

const TOP_KEYS = [
  'name',
  'seed',
  'speech',
  'codec',
  'protocol',
  'link',
  'phone',
  'usage',
  'constants',
  'measureCpu',
] as const;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function value(key: string, spec: Spec, v: unknown): number | boolean | string {
  switch (spec.t) {
    case 'bool':
      if (typeof v !== 'boolean') throw configError(key, `must be true or false, got ${show(v)}`);
      return v;
    case 'enum':
      if (!spec.values.includes(v as string | number)) {
        throw configError(
          key,
          `must be one of ${spec.values.map((x) => show(x)).join(', ')}, got ${show(v)}`,
        );
      }
      return v as string | number;
    case 'int':
    case 'num': {
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw configError(key, `must be a number, got ${show(v)}`);
      if (v < spec.min || v > spec.max) throw configError(key, `must be ${spec.min}..${spec.max}, got ${v}`);
      if (spec.t === 'int' && !Number.isInteger(v)) throw configError(key, `must be an integer, got ${v}`);
      if (spec.t === 'num' && spec.step !== undefined) {
        const steps = v / spec.step;
        if (Math.abs(steps - Math.round(steps)) > 1e-9) {
          throw configError(
            key,
            spec.step === 1.25
              ? `must be ${spec.min}..${spec.max} in steps of 1.25, got ${v}`
              : `must have at most 3 decimals, got ${v}`,
          );
        }
      }
      return v;
    }
  }
}

/** Validates one section against its specs (defaults filled); `skip` keys are the caller's. */
function section(
  path: string,
  raw: unknown,
  specs: Readonly<Record<string, Spec>>,
  skip: readonly string[] = [],
): Record<string, number | boolean | string> {
  if (raw === undefined) raw = {};
  if (!isObject(raw)) throw configError(path, `must be an object, got ${show(raw)}`);
  for (const k of Object.keys(raw)) {
    if (!(k in specs) && !skip.includes(k)) {
      throw configError(
        `${path}.${k}`,
        `unknown key (known: ${[...skip, ...Object.keys(specs)].join(', ')})`,
      );
    }
  }
  const out: Record<string, number | boolean | string> = {};
  for (const [k, spec] of Object.entries(specs)) {
    out[k] = raw[k] === undefined ? spec.def : value(`${path}.${k}`, spec, raw[k]);
  }
  return out;
}

export interface ParseOptions {
  /** Directory a relative `speech` path is resolved against (the config file's). */
  readonly baseDir?: string;
}

/** Validates a parsed JSON configuration; throws LabError (`lab: KEY: problem`) on the first problem. */
export function parseConfig(raw: unknown, opts: ParseOptions = {}): LabConfig {
  if (!isObject(raw))
    throw new LabError('LAB_CONFIG', `lab: the configuration must be a JSON object, got ${show(raw)}`);
  for (const k of Object.keys(raw)) {
    if (!(TOP_KEYS as readonly string[]).includes(k)) {
      throw configError(k, `unknown key (known: ${TOP_KEYS.join(', ')})`);
    }
  }
  const name = raw.name ?? 'lab';
  if (typeof name !== 'string' || name.length < 1 || name.length > 64 || /[\p{Cc}]/u.test(name)) {
    throw configError('name', `must be a string of 1..64 printable characters, got ${show(name)}`);
  }
  const seed = raw.seed ?? 1;
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw configError('seed', `must be an integer 0..4294967295, got ${show(seed)}`);
  }
  const speech = raw.speech;
  if (speech !== undefined && (typeof speech !== 'string' || speech.length === 0 || speech.length > 4096)) {
    throw configError('speech', `must be a path to a WAV file or "synthetic", got ${show(speech)}`);
  }
  const speechPath =
    speech === undefined || speech === 'synthetic' ? undefined : resolve(opts.baseDir ?? '.', speech);

  const codec = section('codec', raw.codec, CODEC) as unknown as CodecConfig;

  const rawProtocol = raw.protocol ?? {};
  if (!isObject(rawProtocol)) throw configError('protocol', `must be an object, got ${show(rawProtocol)}`);
  const version = rawProtocol.version ?? 1;
  if (typeof version !== 'number' || !Number.isInteger(version)) {
    throw configError('protocol.version', `must be an integer, got ${show(version)}`);
  }
  const module = protocolModule(version); // refuses versions no module registered for
  const { version: _v, ...protocolRest } = rawProtocol;
  const protocol: ProtocolConfig = { version, options: module.parseOptions(protocolRest) };

  const rawLink = raw.link ?? {};
  if (!isObject(rawLink)) throw configError('link', `must be an object, got ${show(rawLink)}`);
  const kind = rawLink.kind ?? 'ble';
  if (kind !== 'ble' && kind !== 'wifi')
    throw configError('link.kind', `must be "ble" or "wifi", got ${show(kind)}`);
  const link = (
    kind === 'ble'
      ? { kind, ...section('link', rawLink, BLE, ['kind']) }
      : { kind, ...section('link', rawLink, WIFI, ['kind']) }
  ) as LinkConfig;

  const phone = section('phone', raw.phone, PHONE) as unknown as PhoneConfig;
  const rawUsage = raw.usage;
  const usageIn = section('usage', rawUsage, USAGE);
  if (!(isObject(rawUsage) && rawUsage.receivedClipSeconds !== undefined)) {
    usageIn.receivedClipSeconds = usageIn.clipSeconds as number;
  }
  const usage = usageIn as unknown as UsageConfig;
  if (usage.activeToHour <= usage.activeFromHour) {
    throw configError(
      'usage.activeToHour',
      `must be after usage.activeFromHour (${usage.activeFromHour}), got ${usage.activeToHour}`,
    );
  }
  const audio =
    usage.clipsSentPerDay * usage.clipSeconds + usage.clipsReceivedPerDay * usage.receivedClipSeconds;
  if (audio > MAX_AUDIO_SECONDS_PER_DAY) {
    throw configError(
      'usage',
      `at most ${MAX_AUDIO_SECONDS_PER_DAY} s of audio per simulated day, got ${Math.round(audio)} s (clipsSentPerDay × clipSeconds + clipsReceivedPerDay × receivedClipSeconds)`,
    );
  }
  const measureCpu = raw.measureCpu ?? false;
  if (typeof measureCpu !== 'boolean')
    throw configError('measureCpu', `must be true or false, got ${show(measureCpu)}`);
  const profile: DeviceProfile = link.kind;
  const constants = resolveConstants(profile, raw.constants);
  return { name, seed, speech, speechPath, codec, protocol, link, phone, usage, constants, measureCpu };
}

/** The configuration as plain JSON (what `lab run --json` echoes; speechPath left out: it is machine-specific). */
export function configToJson(c: LabConfig): Record<string, unknown> {
  return {
    name: c.name,
    seed: c.seed,
    ...(c.speech !== undefined ? { speech: c.speech } : {}),
    codec: c.codec,
    protocol: { version: c.protocol.version, ...c.protocol.options },
    link: c.link,
    phone: c.phone,
    usage: c.usage,
    measureCpu: c.measureCpu,
  };
}

/** Reads and validates a configuration file: `lab: FILE: ...` for unreadable or invalid JSON. */
export async function loadConfigFile(path: string): Promise<{ raw: unknown; config: LabConfig }> {
  const raw = await readConfigJson(path);
  return { raw, config: parseConfig(raw, { baseDir: dirname(resolve(path)) }) };
}

/** Reads a configuration file as JSON without validating it (sweep edits it first). */
export async function readConfigJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'EACCES'
            ? 'permission denied'
            : String(code ?? err);
    throw new LabError('LAB_CONFIG', `lab: cannot read configuration ${path}: ${why}`, { cause: err });
  }
  if (text.length > 1_000_000)
    throw new LabError('LAB_CONFIG', `lab: configuration ${path} is larger than 1 MB`);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new LabError('LAB_CONFIG', `lab: ${path}: not valid JSON (${msg})`, { cause: err });
  }
}

/**
 * A copy of `raw` with the dotted `key` set to `v` (`lab sweep --set codec.bitrateKbps=8,...`);
 * intermediate objects are created. The result is validated by parseConfig like any config.
 */
export function withValue(raw: unknown, key: string, v: unknown): Record<string, unknown> {
  if (!isObject(raw)) throw new LabError('LAB_CONFIG', 'lab: the configuration must be a JSON object');
  const parts = key.split('.');
  if (parts.some((p) => p === '' || p === '__proto__' || p === 'constructor' || p === 'prototype')) {
    throw configError(key, 'is not a configuration key');
  }
  const copy = structuredClone(raw) as Record<string, unknown>;
  let node: Record<string, unknown> = copy;
  for (const p of parts.slice(0, -1)) {
    const next = node[p];
    if (next === undefined) node[p] = {};
    else if (!isObject(next)) throw configError(key, `${p} is not an object`);
    node = node[p] as Record<string, unknown>;
  }
  node[parts.at(-1)!] = v;
  return copy;
}
