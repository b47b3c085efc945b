// The lab's IP path model: TLS 1.3 records, TCP segments, slow start and ACKs, 802.11n frames and airtime, for the toy's Wi-Fi and the phones' uplinks (docs/LAB.md §3.3).
import type { SeededRandom } from '../../device/ble/random.ts';
import type { LabConstants } from './constants.ts';

/** A TCP (optionally TLS) path between an endpoint and the gateway. */
export interface NetPath {
  readonly rttMs: number;
  readonly lossRate: number;
  readonly tls: boolean;
  /** 802.11n MCS of the endpoint's Wi-Fi hop. */
  readonly mcs: number;
}

/** Data bits per 4 µs OFDM symbol, 802.11n MCS 0..7, 20 MHz, 800 ns guard interval, one stream (IEEE 802.11-2020 Table 19-27). */
export const HT_DATA_BITS_PER_SYMBOL: readonly number[] = [26, 52, 78, 104, 156, 208, 234, 260];

/** PPDU duration (µs) of an HT-mixed data frame carrying an `mpduBytes` MPDU: preamble, SERVICE (16) + data + tail (6) bits in 4 µs symbols, signal extension. */
export function wifiDataFrameUs(mpduBytes: number, mcs: number, c: LabConstants): number {
  const ndbps = HT_DATA_BITS_PER_SYMBOL[mcs];
  if (ndbps === undefined) throw new RangeError(`mcs must be 0..7, got ${mcs}`);
  return c.wifi.htPreambleUs + 4 * Math.ceil((16 + 8 * mpduBytes + 6) / ndbps) + c.wifi.signalExtensionUs;
}

/** The 802.11 ACK control frame at the 24 Mbit/s basic rate (legacy OFDM preamble). */
export function wifiAckFrameUs(c: LabConstants): number {
  return (
    c.wifi.legacyPreambleUs +
    4 * Math.ceil((16 + 8 * c.wifi.ackFrameBytes + 6) / c.wifi.ackDataBitsPerSymbol) +
    c.wifi.signalExtensionUs
  );
}

/** Channel access before a data frame: DIFS (SIFS + 2 slots) and the mean backoff of CWmin/2 slots. */
export function channelAccessUs(c: LabConstants): number {
  return c.wifi.sifsUs + 2 * c.wifi.slotUs + (c.wifi.cwMin / 2) * c.wifi.slotUs;
}

/** One data frame and its 802.11 ACK: access, PPDU, SIFS, ACK. */
export function wifiExchangeUs(mpduBytes: number, mcs: number, c: LabConstants): number {
  return channelAccessUs(c) + wifiDataFrameUs(mpduBytes, mcs, c) + c.wifi.sifsUs + wifiAckFrameUs(c);
}

/** TLS 1.3 records for one application write: at most tlsMaxRecordBytes of plaintext each (RFC 8446 §5.1, §5.2). */
export function tlsRecords(appBytes: number, c: LabConstants): number {
  return Math.max(1, Math.ceil(appBytes / c.net.tlsMaxRecordBytes));
}

/** Payload bytes of one TCP segment: MTU − IPv4 − TCP − options. */
export function segmentPayload(c: LabConstants): number {
  return c.net.mtuBytes - c.net.ipHeaderBytes - c.net.tcpHeaderBytes - c.net.tcpOptionsBytes;
}

export const packetHeaderBytes = (c: LabConstants): number =>
  c.net.ipHeaderBytes + c.net.tcpHeaderBytes + c.net.tcpOptionsBytes;

/** Which side of a flow is the endpoint whose radio the lab accounts (the toy on Wi-Fi), if any. */
export type Station = 'sender' | 'receiver' | 'none';

export interface FlowResult {
  /** Application bytes (MQTT packets, or handshake bytes already framed). */
  readonly appBytes: number;
  readonly tlsBytes: number;
  /** IP and TCP headers of the data segments, retransmissions included. */
  readonly tcpipBytes: number;
  /** Pure ACKs of the receiver, IP and TCP headers. */
  readonly ackBytes: number;
  /** 802.11 MAC/CCMP/LLC/FCS of every packet on the endpoint's Wi-Fi hop. */
  readonly macBytes: number;
  /** Payload of retransmitted segments (counted at full size). */
  readonly resentBytes: number;
  readonly segments: number;
  readonly retransmissions: number;
  readonly ackPackets: number;
  readonly rounds: number;
  /** From the first byte sent to the last byte received, µs. */
  readonly durationUs: number;
  /** Channel time of the station's frames (data, ACKs, access, IFS), µs. */
  readonly airtimeUs: number;
  readonly stationTxUs: number;
  readonly stationRxUs: number;
}

export interface FlowOptions {
  /** The bytes are already TLS records (the handshake) or TLS is off: no record framing added. */
  readonly framed?: boolean;
  readonly station: Station;
}

/**
 * One direction of a TCP connection moving `packets` (application writes, back to back) after an
 * idle period: records of at most 16 KiB (+22 bytes each), segments of MSS, slow start from the
 * initial window (RFC 6928; restarted after idle, RFC 5681 §4.1), a delayed ACK per two segments
 * (RFC 5681 §4.2), losses drawn from `rng` and resent a round later with the window halved.
 */
export function tcpFlow(
  path: NetPath,
  packets: readonly number[],
  c: LabConstants,
  rng: SeededRandom,
  opts: FlowOptions,
): FlowResult {
  const appBytes = packets.reduce((s, n) => s + n, 0);
  const framed = opts.framed === true || !path.tls;
  const tlsBytes = framed
    ? 0
    : packets.reduce((s, n) => s + tlsRecords(n, c) * c.net.tlsRecordOverheadBytes, 0);
  const stream = appBytes + tlsBytes;
  const per = segmentPayload(c);
  const needed = Math.max(1, Math.ceil(stream / per));
  let cwnd = c.net.initialCwndSegments;
  let remaining = needed;
  let rounds = 0;
  let sent = 0;
  while (remaining > 0) {
    const n = Math.min(cwnd, remaining);
    let lost = 0;
    if (path.lossRate > 0) for (let i = 0; i < n; i++) if (rng.nextFloat() < path.lossRate) lost++;
    sent += n;
    remaining -= n - lost;
    rounds++;
    cwnd = lost > 0 ? Math.max(2, Math.floor(cwnd / 2)) : cwnd * 2;
  }
  const headers = packetHeaderBytes(c);
  const ackPackets = Math.ceil(sent / c.net.delayedAckSegments);
  const fullSegments = Math.floor(stream / per);
  const tail = stream - fullSegments * per;
  // Segment sizes: the stream cut at MSS; retransmissions counted at the full size (conservative).
  const dataMpdu = per + headers + c.wifi.macOverheadBytes;
  const ackMpdu = headers + c.wifi.macOverheadBytes;
  let airtimeUs = 0;
  let txUs = 0;
  let rxUs = 0;
  let serialUs = 0;
  const station = opts.station;
  const frame = (mpdu: number, fromStation: boolean): number => {
    const data = wifiDataFrameUs(mpdu, path.mcs, c);
    const ack = wifiAckFrameUs(c);
    if (fromStation) {
      txUs += data;
      rxUs += ack;
    } else {
      rxUs += data;
      txUs += ack;
    }
    return channelAccessUs(c) + data + c.wifi.sifsUs + ack;
  };
  const dataFrames: number[] = [];
  for (let i = 0; i < sent; i++) {
    const payload = i < fullSegments || tail === 0 ? per : tail;
    dataFrames.push(i < needed ? payload + headers + c.wifi.macOverheadBytes : dataMpdu);
  }
  for (const mpdu of dataFrames) {
    const us = station === 'none' ? wifiExchangeUs(mpdu, path.mcs, c) : frame(mpdu, station === 'sender');
    serialUs += us;
    if (station !== 'none') airtimeUs += us;
  }
  if (station !== 'none')
    for (let i = 0; i < ackPackets; i++) airtimeUs += frame(ackMpdu, station === 'receiver');
  if (station === 'none') {
    txUs = 0;
    rxUs = 0;
  }
  const tcpipBytes = sent * headers;
  const retransmissions = sent - needed;
  const retransmittedPayload = retransmissions * per;
  const rttUs = path.rttMs * 1000;
  return {
    appBytes,
    tlsBytes,
    tcpipBytes,
    ackBytes: ackPackets * headers,
    macBytes: (sent + ackPackets) * c.wifi.macOverheadBytes,
    resentBytes: retransmittedPayload,
    segments: sent,
    retransmissions,
    ackPackets,
    rounds,
    durationUs: (rounds - 1) * rttUs + rttUs / 2 + serialUs,
    airtimeUs,
    stationTxUs: txUs,
    stationRxUs: rxUs,
  };
}

/** Transport overhead of a flow in bytes: everything on the wire that is not application bytes. */
export function flowOverhead(f: FlowResult): number {
  return f.tlsBytes + f.tcpipBytes + f.ackBytes + f.macBytes + f.resentBytes;
}

/** Sums flows (e.g. the flights of one exchange); durations add up. */
export function sumFlows(flows: readonly FlowResult[]): FlowResult {
  const z: { -readonly [K in keyof FlowResult]: number } = {
    appBytes: 0,
    tlsBytes: 0,
    tcpipBytes: 0,
    ackBytes: 0,
    macBytes: 0,
    resentBytes: 0,
    segments: 0,
    retransmissions: 0,
    ackPackets: 0,
    rounds: 0,
    durationUs: 0,
    airtimeUs: 0,
    stationTxUs: 0,
    stationRxUs: 0,
  };
  for (const f of flows) for (const k of Object.keys(z) as (keyof FlowResult)[]) z[k] += f[k];
  return z;
}
