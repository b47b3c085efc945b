// Protocol lab configuration: defaults, one-line refusals naming the key, the protocol-version registry, sweep edits.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CodedError } from '../../shared/errors.ts';
import { parseSet } from '../../sim/lab/compare.ts';
import { loadConfigFile, parseConfig, withValue } from '../../sim/lab/config.ts';
import { LabError } from '../../sim/lab/errors.ts';
import { type ProtocolModule, registeredVersions, registerProtocol } from '../../sim/lab/protocol.ts';
import { protocolV1 } from '../../sim/lab/protocol-v1.ts';

function refusal(raw: unknown): string {
  try {
    parseConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(LabError);
    expect(err).toBeInstanceOf(CodedError);
    expect((err as LabError).code).toBe('LAB_CONFIG');
    const msg = (err as Error).message;
    expect(msg.split('\n')).toHaveLength(1);
    return msg;
  }
  throw new Error(`accepted ${JSON.stringify(raw)}`);
}

const dir = mkdtempSync(join(tmpdir(), 'plushlink-lab-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('lab configuration', () => {
  it('fills every default (the issue example is valid as written)', () => {
    const c = parseConfig({
      name: 'baseline',
      seed: 1,
      speech: 'synthetic',
      codec: { bitrateKbps: 24, complexity: 10, frameMs: 20, dtx: false, fec: false },
      protocol: { version: 1 },
      link: { kind: 'ble', mtu: 247, dataLength: 251, phy: '2M', intervalMs: 15, perEvent: 6, loss: 0 },
      usage: { clipsSentPerDay: 20, clipSeconds: 8, clipsReceivedPerDay: 10, batteryMah: 1000 },
    });
    expect(c.link).toMatchObject({
      kind: 'ble',
      encrypted: true,
      idleIntervalMs: 1000,
      peripheralLatency: 0,
    });
    expect(c.usage.parents).toBe(2);
    expect(c.usage.receivedClipSeconds).toBe(8);
    expect(c.constants.supplyVolts).toBe(3);
    const w = parseConfig({ link: { kind: 'wifi' } });
    expect(w.link).toEqual({
      kind: 'wifi',
      tls: true,
      rttMs: 40,
      lossRate: 0,
      mcs: 7,
      keepaliveS: 30,
      connectsPerDay: 1,
    });
    expect(w.constants.supplyVolts).toBe(3.3); // the ESP32 profile
    expect(w.constants.wifi.idleMa).toBe(2.33);
  });

  it.each([
    [{ codec: { bitrateKbps: 1000 } }, 'lab: codec.bitrateKbps: must be 6..64, got 1000'],
    [{ codec: { bitrate: 24 } }, /^lab: codec\.bitrate: unknown key \(known: bitrateKbps, complexity/],
    [{ codec: { complexity: 3.5 } }, 'lab: codec.complexity: must be an integer, got 3.5'],
    [{ codec: { frameMs: 25 } }, 'lab: codec.frameMs: must be one of 10, 20, 40, 60, got 25'],
    [{ codec: { dtx: 'yes' } }, 'lab: codec.dtx: must be true or false, got "yes"'],
    [{ link: { kind: 'zigbee' } }, 'lab: link.kind: must be "ble" or "wifi", got "zigbee"'],
    [
      { link: { kind: 'ble', intervalMs: 8 } },
      'lab: link.intervalMs: must be 7.5..4000 in steps of 1.25, got 8',
    ],
    [{ link: { kind: 'ble', mtu: 600 } }, 'lab: link.mtu: must be 23..517, got 600'],
    [{ link: { kind: 'wifi', mtu: 247 } }, /^lab: link\.mtu: unknown key \(known: kind, tls, rttMs/],
    [{ link: { kind: 'ble', tls: true } }, /^lab: link\.tls: unknown key/],
    [{ link: { kind: 'wifi', lossRate: 0.9 } }, 'lab: link.lossRate: must be 0..0.5, got 0.9'],
    [
      { protocol: { version: 7 } },
      'lab: protocol.version: version 7 is not available in this lab (available: 1, 2)',
    ],
    [
      { protocol: { version: 1, chunkMs: 1000 } },
      'lab: protocol.chunkMs: unknown key (protocol version 1 has no options)',
    ],
    [{ usage: { clipSeconds: 301 } }, 'lab: usage.clipSeconds: must be 0.5..300, got 301'],
    [{ usage: { parents: 0 } }, 'lab: usage.parents: must be 1..15, got 0'],
    [
      { usage: { clipsSentPerDay: 100, clipSeconds: 60 } },
      /^lab: usage: at most 3600 s of audio per simulated day, got 6600 s \(clipsSentPerDay × clipSeconds/,
    ],
    [
      { usage: { activeFromHour: 20, activeToHour: 8 } },
      'lab: usage.activeToHour: must be after usage.activeFromHour (20), got 8',
    ],
    [{ colour: 'blue' }, /^lab: colour: unknown key \(known: name, seed, speech/],
    [{ seed: -1 }, 'lab: seed: must be an integer 0..4294967295, got -1'],
    [{ name: '' }, 'lab: name: must be a string of 1..64 printable characters, got ""'],
    [{ speech: 42 }, 'lab: speech: must be a path to a WAV file or "synthetic", got 42'],
    [{ measureCpu: 1 }, 'lab: measureCpu: must be true or false, got 1'],
    [{ constants: { ble: { txMa: -1 } } }, 'lab: constants.ble.txMa: must be > 0, got -1'],
    [
      { constants: { ble: { tx: 1 } } },
      /^lab: constants\.ble\.tx: unknown key \(known: txMa, rxMa, eventOverheadUs\)/,
    ],
    [{ constants: { radio: {} } }, /^lab: constants\.radio: unknown key \(known: supplyVolts, battery, mcu/],
    [
      { constants: { battery: { usableFraction: 1.5 } } },
      'lab: constants.battery.usableFraction: must be > 0 and ≤ 1, got 1.5',
    ],
    [
      { constants: { codecCost: { encodeHostMsPerSecond: [1, 2] } } },
      'lab: constants.codecCost.encodeHostMsPerSecond: must be a list of 11 numbers (complexity 0..10), got [1,2]',
    ],
    [[1, 2], 'lab: the configuration must be a JSON object, got [1,2]'],
  ] as const)('refuses %j', (raw, expected) => {
    const msg = refusal(raw);
    if (typeof expected === 'string') expect(msg).toBe(expected);
    else expect(msg).toMatch(expected);
  });

  it('overrides constants one by one, leaving the rest at the profile defaults', () => {
    const c = parseConfig({ constants: { supplyVolts: 3.7, ble: { txMa: 5 }, timing: { gatewayMs: 10 } } });
    expect(c.constants.supplyVolts).toBe(3.7);
    expect(c.constants.ble).toEqual({ txMa: 5, rxMa: 6.26, eventOverheadUs: 140 });
    expect(c.constants.timing.gatewayMs).toBe(10);
    expect(c.constants.mcu.clockMhz).toBe(64);
  });

  it('reads files: relative speech paths resolve against the config; bad JSON and missing files are one line', async () => {
    const file = join(dir, 'a.json');
    writeFileSync(file, JSON.stringify({ speech: 'voice.wav' }));
    expect((await loadConfigFile(file)).config.speechPath).toBe(join(dir, 'voice.wav'));
    writeFileSync(join(dir, 'bad.json'), '{ "name": ');
    await expect(loadConfigFile(join(dir, 'bad.json'))).rejects.toThrow(
      /^lab: .*bad\.json: not valid JSON \(/,
    );
    await expect(loadConfigFile(join(dir, 'none.json'))).rejects.toThrow(
      /^lab: cannot read configuration .*none\.json: no such file$/,
    );
  });

  it('sweep values: KEY=V1,V2 parsed as JSON where they parse, set on a copy, validated like any config', () => {
    expect(parseSet('codec.bitrateKbps=8,12,16')).toEqual({ key: 'codec.bitrateKbps', values: [8, 12, 16] });
    expect(parseSet('link.phy=1M,2M').values).toEqual(['1M', '2M']);
    expect(() => parseSet('bitrate')).toThrow(/^lab: --set must be KEY=V1,V2,\.\.\./);
    expect(() => parseSet('codec.bitrateKbps=8,,16')).toThrow(
      /^lab: codec\.bitrateKbps: --set needs a comma-separated list/,
    );
    const raw = { codec: { complexity: 5 } };
    const edited = withValue(raw, 'codec.bitrateKbps', 12);
    expect(edited).toEqual({ codec: { complexity: 5, bitrateKbps: 12 } });
    expect(raw).toEqual({ codec: { complexity: 5 } });
    expect(withValue({}, 'link.kind', 'wifi')).toEqual({ link: { kind: 'wifi' } });
    expect(() => withValue({}, '__proto__.x', 1)).toThrow(LabError);
    expect(refusal(withValue(raw, 'codec.bitrateKbps', 100))).toBe(
      'lab: codec.bitrateKbps: must be 6..64, got 100',
    );
  });
});

describe('LabError', () => {
  it('is a CodedError with a stable code, its own name and the cause it wraps', () => {
    const cause = new Error('root');
    const e = new LabError('LAB_SPEECH', 'lab: speech: x', { cause });
    expect(e).toBeInstanceOf(CodedError);
    expect(e.name).toBe('LabError');
    expect(e.code).toBe('LAB_SPEECH');
    expect(e.cause).toBe(cause);
  });
});

describe('protocol versions are modules in a registry', () => {
  it('v1 and v2 are registered; a module for another version lifts the refusal by registering itself', () => {
    expect(registeredVersions()).toEqual([1, 2]);
    expect(refusal({ protocol: { version: 9 } })).toMatch(
      /version 9 is not available in this lab \(available: 1, 2\)/,
    );
    const seen: unknown[] = [];
    const v9: ProtocolModule = {
      ...protocolV1,
      version: 9,
      label: 'test module',
      parseOptions(raw) {
        seen.push(raw);
        return { chunkMs: typeof raw.chunkMs === 'number' ? raw.chunkMs : 1000 };
      },
    };
    registerProtocol(v9);
    const c = parseConfig({ protocol: { version: 9, chunkMs: 500 } });
    expect(c.protocol).toEqual({ version: 9, options: { chunkMs: 500 } });
    expect(seen).toEqual([{ chunkMs: 500 }]);
    expect(registeredVersions()).toEqual([1, 2, 9]);
    expect(() => registerProtocol({ ...v9 })).toThrow(/already registered/);
  });
});
