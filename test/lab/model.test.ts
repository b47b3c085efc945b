// Protocol lab model against hand-computed cases: BLE 30 kB at two link settings, TCP+TLS for a 20 kB clip, MQTT sizes vs mqtt-packet, energy, battery days, v1 byte parts.
import { readFileSync } from 'node:fs';
import { generate } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { synthesizeSpeech } from '../../device/audio/synth.ts';
import { SeededRandom } from '../../device/ble/random.ts';
import { fragment } from '../../device/ble/timing.ts';
import { encodePcmToOgg } from '../../device/codec/clip.ts';
import { decodeClip } from '../../shared/envelope.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { clipTopic } from '../../shared/topics.ts';
import { activeLinkParams, bleBurst, bleClipStream, packetOctets } from '../../sim/lab/ble.ts';
import { parseConfig } from '../../sim/lab/config.ts';
import { constantKeys, DEFAULT_CONSTANTS } from '../../sim/lab/constants.ts';
import { averageCurrentMa, batteryDays, encodeMcuMs, energyMj, hostToMcuMs } from '../../sim/lab/cost.ts';
import {
  connectBytes,
  PING_BYTES,
  PUBACK_BYTES,
  publishBytes,
  remainingLengthBytes,
  subscribeBytes,
} from '../../sim/lab/mqtt.ts';
import { protocolV1 } from '../../sim/lab/protocol-v1.ts';
import { tcpFlow, wifiAckFrameUs, wifiDataFrameUs } from '../../sim/lab/wifi.ts';

const C = DEFAULT_CONSTANTS.ble;
const noLoss = new SeededRandom(1);

function bleParams(over: Record<string, unknown>) {
  const cfg = parseConfig({ speech: 'synthetic', link: { kind: 'ble', ...over } });
  if (cfg.link.kind !== 'ble') throw new Error('ble');
  return activeLinkParams(cfg.link);
}

describe('BLE: a 30 000-byte payload (hand-computed, docs/BLE.md §5 formula)', () => {
  it('MTU 23, DL 27, 1M, 30 ms, 4 per event: 1500 PDUs, 1500 packets, 375 events', () => {
    const p = bleParams({ mtu: 23, dataLength: 27, phy: '1M', intervalMs: 30, perEvent: 4 });
    const f = fragment(30_000, p);
    const b = bleBurst(f.llPayloads, 30_000, f.attPdus.length, 'toy-to-phone', p, noLoss);
    // 20 bytes per ATT PDU (23 − 3); L2CAP 4 + ATT 3 + 20 = 27 = DL: one LL packet each.
    expect(b.attPdus).toBe(1500);
    expect(b.llPackets).toBe(1500);
    expect(b.attempts).toBe(1500);
    // Exchange: empty 10 octets (80 µs) + 150 + data 1+4+2+27+4+3 = 41 octets (328 µs) + 150 = 708 µs; 30 ms fits 42, 4 allowed.
    expect(b.events).toBe(375);
    expect(b.airtimeUs).toBe(1500 * 708);
    // 374 full intervals, 3 exchanges, then the last: 80 + 150 + 328.
    expect(b.durationUs).toBe(374 * 30_000 + 3 * 708 + 80 + 150 + 328);
    expect(b.onAirOctets).toBe(1500 * (41 + 10));
    expect(b.toyTxUs).toBe(1500 * 328);
    expect(b.toyRxUs).toBe(1500 * (80 + 300));
  });

  it('MTU 247, DL 251, 2M, 15 ms, 6 per event: 123 PDUs, 123 packets, 21 events', () => {
    const p = bleParams({ mtu: 247, dataLength: 251, phy: '2M', intervalMs: 15, perEvent: 6 });
    const f = fragment(30_000, p);
    const b = bleBurst(f.llPayloads, 30_000, f.attPdus.length, 'toy-to-phone', p, noLoss);
    // 244 per PDU: 122 full (L2CAP 251 = DL) and one of 232 (LL payload 239).
    expect(b.attPdus).toBe(123);
    expect(b.llPackets).toBe(123);
    expect(f.llPayloads.at(-1)).toBe(239);
    // 2M: empty (2+4+2+3) × 4 = 44 µs; 251 → (2+4+2+251+4+3) × 4 = 1064 µs; x = 1408 µs; 239 → 1016 µs, x = 1360.
    expect(b.events).toBe(21);
    expect(b.airtimeUs).toBe(122 * 1408 + 1360);
    expect(b.durationUs).toBe(20 * 15_000 + 2 * 1408 + 44 + 150 + 1016);
    expect(b.toyTxUs).toBe(122 * 1064 + 1016);
    // Energy of that transfer: TX at 6.4 mA, RX (+ 140 µs ramp per event) at 6.26 mA, 3 V.
    const tx = energyMj(C.ble.txMa, b.toyTxUs / 1000, C.supplyVolts);
    const rx = energyMj(C.ble.rxMa, (b.toyRxUs + b.events * C.ble.eventOverheadUs) / 1000, C.supplyVolts);
    expect(tx).toBeCloseTo((6.4 * 130.824 * 3) / 1000, 9);
    expect(rx).toBeCloseTo((6.26 * (123 * 0.344 + 21 * 0.14) * 3) / 1000, 9);
  });

  it('a clip stream carries the GATT length prefix; loss adds attempts and on-air octets, seeded', () => {
    const p = bleParams({ loss: 0.2 });
    const a = bleClipStream(10_000, 'toy-to-phone', p, new SeededRandom(7));
    const b = bleClipStream(10_000, 'toy-to-phone', p, new SeededRandom(7));
    expect(a).toEqual(b);
    expect(a.valueBytes).toBe(10_004);
    expect(a.attempts).toBeGreaterThan(a.llPackets);
    expect(a.onAirOctets).toBeGreaterThan(10_004);
    expect(packetOctets(0, p)).toBe(2 + 4 + 2 + 3);
  });
});

describe('Wi-Fi: TCP + TLS 1.3 for a 20 000-byte clip (hand-computed)', () => {
  const topic = clipTopic(generateIdentity('toy', seededRandom('lab-wifi')).id);
  const path = { rttMs: 40, lossRate: 0, tls: true, mcs: 7 };

  it('PUBLISH 20 051 B, 2 TLS records (+22 each), 14 segments of 1448, 7 delayed ACKs, 2 slow-start rounds', () => {
    expect(topic.length).toBe(43);
    const mqtt = publishBytes(topic, 20_000);
    expect(mqtt).toBe(1 + 3 + 2 + 43 + 2 + 20_000); // measured: Node's TLS sends exactly 20 095 B for it
    const f = tcpFlow(path, [mqtt], DEFAULT_CONSTANTS.wifi, noLoss, { station: 'sender' });
    expect(f.appBytes).toBe(20_051);
    expect(f.tlsBytes).toBe(44);
    expect(f.segments).toBe(14); // ceil(20 095 / (1500 − 20 − 20 − 12))
    expect(f.tcpipBytes).toBe(14 * 52);
    expect(f.ackPackets).toBe(7);
    expect(f.ackBytes).toBe(7 * 52);
    expect(f.macBytes).toBe(21 * 54);
    expect(f.rounds).toBe(2); // initial window 10, then 4
    // Overhead on the wire beyond the MQTT bytes: 44 + 728 + 364 (+ 1134 of 802.11 framing).
    expect(f.tlsBytes + f.tcpipBytes + f.ackBytes).toBe(1136);
    // 802.11n MCS7: 13 frames of 1554 B (48 symbols: 234 µs), one of 1377 B (43 symbols: 214 µs), each
    // with DIFS 28 + backoff 67.5 + SIFS 10 + ACK 34 µs; then one RTT and a half.
    expect(wifiDataFrameUs(1554, 7, DEFAULT_CONSTANTS.wifi)).toBe(234);
    expect(wifiAckFrameUs(DEFAULT_CONSTANTS.wifi)).toBe(34);
    expect(f.durationUs).toBeCloseTo(40_000 + 20_000 + 13 * 373.5 + 353.5, 6);
    expect(f.stationTxUs).toBe(13 * 234 + 214 + 7 * 34);
  });

  it('without TLS: no record overhead; with loss the retransmissions are counted and seeded', () => {
    const plain = tcpFlow({ ...path, tls: false }, [20_051], DEFAULT_CONSTANTS.wifi, noLoss, {
      station: 'none',
    });
    expect(plain.tlsBytes).toBe(0);
    expect(plain.segments).toBe(14);
    expect(plain.macBytes).toBe(21 * 54); // the phone's Wi-Fi hop still frames every packet
    const lossy = (seed: number) =>
      tcpFlow({ ...path, lossRate: 0.2 }, [20_051], DEFAULT_CONSTANTS.wifi, new SeededRandom(seed), {
        station: 'sender',
      });
    expect(lossy(3)).toEqual(lossy(3));
    expect(lossy(3).retransmissions).toBeGreaterThan(0);
    expect(lossy(3).resentBytes).toBe(lossy(3).retransmissions * 1448);
  });
});

describe('MQTT packet sizes equal mqtt-packet generate()', () => {
  it.each([0, 1, 60, 16_000, 16_384, 20_000, 2_097_100, 2_100_000])('PUBLISH with %i payload bytes', (n) => {
    const topic = 'plk/1/abcdefghijklmnopqrstuvwxyz234567/clip';
    const g = generate({
      cmd: 'publish',
      topic,
      payload: Buffer.alloc(n),
      qos: 1,
      messageId: 1,
      dup: false,
      retain: false,
    });
    expect(publishBytes(topic, n)).toBe(g.length);
  });

  it('CONNECT, SUBSCRIBE, PUBACK, PINGREQ', () => {
    const id = 'abcdefghijklmnopqrstuvwxyz234567';
    const c = generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      clientId: id,
      keepalive: 30,
      username: id,
      password: Buffer.alloc(130),
    });
    expect(connectBytes(id, id, 130)).toBe(c.length);
    const s = generate({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: `plk/1/${id}/inbox`, qos: 1 }],
    });
    expect(subscribeBytes(`plk/1/${id}/inbox`)).toBe(s.length);
    expect(generate({ cmd: 'puback', messageId: 1 }).length).toBe(PUBACK_BYTES);
    expect(generate({ cmd: 'pingreq' }).length).toBe(PING_BYTES);
    expect(remainingLengthBytes(127)).toBe(1);
    expect(remainingLengthBytes(128)).toBe(2);
    expect(() => remainingLengthBytes(268_435_456)).toThrow(RangeError);
  });
});

describe('energy and battery arithmetic', () => {
  it('energy = current × time × voltage: 10 mA for 1 s at 3 V is 30 mJ; 100 ms of TX at 6.4 mA is 1.92 mJ', () => {
    expect(energyMj(10, 1000, 3)).toBe(30);
    expect(energyMj(C.ble.txMa, 100, C.supplyVolts)).toBeCloseTo(1.92, 12);
  });

  it('battery days = capacity / daily energy: 1000 mAh at 3 V = 10.8 kJ; 108 J/day → 100 days', () => {
    expect(batteryDays(1000, 108_000, C)).toBeCloseTo(100, 9);
    expect(averageCurrentMa(108_000, C)).toBeCloseTo(1000 / 2400, 9); // 1000 mAh over 100 days of 24 h
    const half = { ...C, battery: { usableFraction: 0.5 } };
    expect(batteryDays(1000, 108_000, half)).toBeCloseTo(50, 9);
  });

  it('the encoder cost scales the host calibration by clocks and the cycle ratio', () => {
    // cx 10: 10.82 host ms per audio second × 2596 MHz × 10 / 64 MHz = 4388.8 MCU ms per second.
    expect(encodeMcuMs(1000, 10, C)).toBeCloseTo((10.82 * 2596 * 10) / 64, 9);
    expect(hostToMcuMs(1, DEFAULT_CONSTANTS.wifi)).toBeCloseTo((2596 * 10) / 240, 9);
    expect(encodeMcuMs(1000, 0, C)).toBeLessThan(encodeMcuMs(1000, 10, C));
  });
});

describe('v1 byte parts come from the real envelope', () => {
  it('opus + ogg + header + sealed keys + signature + padding = the envelope, laid out as PLK-5.1 says', () => {
    const toy = generateIdentity('toy', seededRandom('parts/toy'));
    const parents = [0, 1, 2].map((i) => generateIdentity('parent', seededRandom(`parts/p${i}`)));
    const pcm = synthesizeSpeech({ seed: 5, durationMs: 1500 });
    const sealed = protocolV1.sealClip({
      pcm,
      sampleRate: 16000,
      durationMs: 1500,
      encode: (x) => encodePcmToOgg(x, { serial: 9, settings: { bitrate: 16000, complexity: 0 } }),
      sender: toy,
      recipients: parents.map(publicPart),
      sequence: 1,
      createdAt: 1_704_067_200_000,
      random: seededRandom('parts/seal'),
      options: {},
    });
    const [m] = sealed.messages;
    const p = m!.parts;
    expect(p.opus + p.ogg + p.header + p.sealedKeys + p.signature + p.padding).toBe(m!.bytes.length);
    const d = decodeClip(m!.bytes);
    expect(m!.bytes.length).toBe(163 + 100 * 3 + d.body.length); // PLK-5.1 total size
    expect(p.sealedKeys).toBe(3 * 80);
    expect(p.signature).toBe(64);
    // header: 99 + 20n fixed bytes (PLK-5.1 offsets) + the body MAC (16) + the padded length field (4).
    expect(p.header).toBe(99 + 20 * 3 + 16 + 4);
    expect(m!.playableMs).toBe(1500);
    const [ogg] = protocolV1.openClip(sealed, parents[2]!, publicPart(toy));
    expect(ogg!.length).toBe(p.opus + p.ogg);
  });
});

describe('docs/LAB.md documents every constant', () => {
  it('names each constant of constants.ts', () => {
    const doc = readFileSync(new URL('../../docs/LAB.md', import.meta.url), 'utf8');
    const missing = constantKeys().filter((k) => !doc.includes(`\`${k}\``));
    expect(missing).toEqual([]);
  });
});
