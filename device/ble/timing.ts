// BLE link timing model: ATT/L2CAP/LL fragmentation, on-air time, connection events, loss -> transfer time.
import type { SeededRandom } from './random.ts';

/*
 * Formula and sources of the constants: docs/BLE.md §3. In short, for an N-byte payload streamed as
 * ATT notifications (or Write Commands, same 3-byte header):
 *   ATT PDUs      n  = ceil(N / (MTU - 3))                       (Vol 3 Part F §3.4.7.1)
 *   L2CAP PDU     s  = 4 + 3 + chunk                              (Vol 3 Part A §3.1)
 *   LL packets    per L2CAP PDU ceil(s / DL), DL = LL data length (Vol 6 Part B §2.4, §4.5.10)
 *   on air (µs)   t(p) = 8 * (pre + 4 + 2 + p + mic + 3) / R,  pre = 1 (1M) | 2 (2M), R = 1 | 2 bit/µs,
 *                 mic = 4 when encrypted and p > 0               (Vol 6 Part B §2.1, §2.4)
 *   exchange      x(p) = t(0) + T_IFS + t(p) + T_IFS: the central's empty packet (it carries the ack,
 *                 SN/NESN) then the data packet, T_IFS = 150 µs  (Vol 6 Part B §4.1.1, §4.5.9)
 *   per event     k = min(maxPacketsPerEvent, max(1, floor(I / x(DL))))   (slots reserved at full size)
 *   lossless T0   = (E - 1)·I + Σ x(p) of the earlier packets of the last event + t(0) + T_IFS + t(p_last),
 *                 E = ceil(P / k) connection events, P LL packets, I the connection interval (§4.5.1)
 *   loss          an exchange succeeds with q = (1 - p)^2 (data packet and its ack); a failed one is
 *                 retried in the next slot, so expected attempts = P / q and E[T] ≈ T0 / q.
 * Time is counted from the first connection event's anchor (on average I/2 after the data is ready).
 */

export type Phy = '1M' | '2M';

/** Parameters of one BLE connection, as negotiated (MTU exchange, DLE, PHY update, connection update). */
export interface LinkParams {
  /** ATT_MTU in bytes, 23..517 (Vol 3 Part F §3.2.8–3.2.9). */
  readonly attMtu: number;
  /** Connection interval in ms, 7.5..4000 in steps of 1.25 ms (Vol 6 Part B §4.5.1). */
  readonly connectionIntervalMs: number;
  /** LE 1M or LE 2M (uncoded) PHY (Vol 6 Part A §3, Part B §2.1). */
  readonly phy: Phy;
  /** Most data packets the controllers exchange in one connection event (implementation limit), 1..1000. */
  readonly maxPacketsPerEvent: number;
  /** LL data length: max payload octets per LL data PDU, 27..251 (Data Length Extension, Vol 6 Part B §4.5.10). */
  readonly llDataLength: number;
  /** Probability that one LL packet is lost (CRC error or missed), 0..0.9. */
  readonly lossProbability: number;
  /** Link encrypted: every non-empty LL payload carries a 4-byte MIC (Vol 6 Part B §2.4). */
  readonly encrypted: boolean;
}

/** Bluetooth 4.0-era defaults: 23-byte MTU, 27-byte LL payload, 1M PHY, 30 ms interval, 4 packets/event. */
export const DEFAULT_LINK_PARAMS: LinkParams = Object.freeze({
  attMtu: 23,
  connectionIntervalMs: 30,
  phy: '1M',
  maxPacketsPerEvent: 4,
  llDataLength: 27,
  lossProbability: 0,
  encrypted: true,
});

/** Constants of the model, with their Core Spec v5.x sources (see docs/BLE.md). */
export const BLE_CONSTANTS = Object.freeze({
  T_IFS_US: 150, // Vol 6 Part B §4.1.1 inter frame space
  PREAMBLE_1M: 1, // Vol 6 Part B §2.1.1
  PREAMBLE_2M: 2, // Vol 6 Part B §2.1.1
  ACCESS_ADDRESS: 4, // Vol 6 Part B §2.1.2
  LL_HEADER: 2, // Vol 6 Part B §2.4 data channel PDU header (no CTEInfo)
  MIC: 4, // Vol 6 Part B §2.4 / Vol 6 Part E
  CRC: 3, // Vol 6 Part B §2.1.4
  L2CAP_HEADER: 4, // Vol 3 Part A §3.1 basic L2CAP header (length + CID)
  ATT_NOTIFY_HEADER: 3, // Vol 3 Part F §3.4.7.1 opcode + attribute handle
  MIN_MTU: 23, // Vol 3 Part F §3.2.8 (ATT_MTU for LE)
  MAX_MTU: 517, // Vol 3 Part F §3.2.9: 512-byte attribute value + 5 header bytes of the longest PDU
  MIN_DATA_LENGTH: 27, // Vol 6 Part B §4.5.10
  MAX_DATA_LENGTH: 251, // Vol 6 Part B §4.5.10
  MIN_INTERVAL_MS: 7.5, // Vol 6 Part B §4.5.1
  MAX_INTERVAL_MS: 4000, // Vol 6 Part B §4.5.1
  INTERVAL_STEP_MS: 1.25, // Vol 6 Part B §4.5.1
  MAX_LOSS: 0.9,
});

const C = BLE_CONSTANTS;

function checkInt(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`${name} must be a number`);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${v}`);
  }
}

/** Throws TypeError/RangeError naming the offending field; returns a frozen copy. */
export function validateLinkParams(p: LinkParams): LinkParams {
  if (p === null || typeof p !== 'object') throw new TypeError('link params must be an object');
  checkInt('attMtu', p.attMtu, C.MIN_MTU, C.MAX_MTU);
  const iv = p.connectionIntervalMs;
  if (typeof iv !== 'number' || !Number.isFinite(iv))
    throw new TypeError('connectionIntervalMs must be a number');
  const steps = iv / C.INTERVAL_STEP_MS;
  if (iv < C.MIN_INTERVAL_MS || iv > C.MAX_INTERVAL_MS || Math.abs(steps - Math.round(steps)) > 1e-9) {
    throw new RangeError(`connectionIntervalMs must be 7.5..4000 in steps of 1.25, got ${iv}`);
  }
  if (p.phy !== '1M' && p.phy !== '2M')
    throw new RangeError(`phy must be '1M' or '2M', got ${String(p.phy)}`);
  checkInt('maxPacketsPerEvent', p.maxPacketsPerEvent, 1, 1000);
  checkInt('llDataLength', p.llDataLength, C.MIN_DATA_LENGTH, C.MAX_DATA_LENGTH);
  const loss = p.lossProbability;
  if (typeof loss !== 'number' || !Number.isFinite(loss))
    throw new TypeError('lossProbability must be a number');
  if (loss < 0 || loss > C.MAX_LOSS)
    throw new RangeError(`lossProbability must be in 0..${C.MAX_LOSS}, got ${loss}`);
  if (typeof p.encrypted !== 'boolean') throw new TypeError('encrypted must be a boolean');
  return Object.freeze({ ...p });
}

/** Builds validated params from defaults plus overrides. */
export function linkParams(overrides: Partial<LinkParams> = {}): LinkParams {
  return validateLinkParams({ ...DEFAULT_LINK_PARAMS, ...overrides });
}

/** On-air time in µs of one LL data packet with `payload` octets (Vol 6 Part B §2.1, §2.4). */
export function packetAirtimeUs(payload: number, phy: Phy, encrypted: boolean): number {
  checkInt('payload', payload, 0, C.MAX_DATA_LENGTH);
  const preamble = phy === '1M' ? C.PREAMBLE_1M : C.PREAMBLE_2M;
  const mic = encrypted && payload > 0 ? C.MIC : 0;
  const octets = preamble + C.ACCESS_ADDRESS + C.LL_HEADER + payload + mic + C.CRC;
  return (octets * 8) / (phy === '1M' ? 1 : 2);
}

/** Duration in µs of one exchange: the central's empty packet, T_IFS, the data packet, T_IFS. */
export function exchangeUs(payload: number, phy: Phy, encrypted: boolean): number {
  return (
    packetAirtimeUs(0, phy, encrypted) + C.T_IFS_US + packetAirtimeUs(payload, phy, encrypted) + C.T_IFS_US
  );
}

/** Data packets per connection event: limited by the configured maximum and by the interval length. */
export function packetsPerEvent(p: LinkParams): number {
  const slot = exchangeUs(p.llDataLength, p.phy, p.encrypted);
  const fit = Math.floor((p.connectionIntervalMs * 1000) / slot);
  return Math.min(p.maxPacketsPerEvent, Math.max(1, fit));
}

/** LL payload sizes of one L2CAP PDU carrying an `sduBytes`-byte upper-layer PDU (ATT or SMP). */
export function llFragments(sduBytes: number, llDataLength: number): number[] {
  let left = C.L2CAP_HEADER + sduBytes;
  const out: number[] = [];
  while (left > 0) {
    const n = Math.min(left, llDataLength);
    out.push(n);
    left -= n;
  }
  return out;
}

/** Fragmentation of an N-byte payload streamed as ATT notifications / Write Commands. */
export interface Fragmentation {
  readonly attPayloadPerPdu: number;
  /** Sizes of the ATT PDUs (header included). */
  readonly attPdus: number[];
  /** LL payload sizes of every LL data packet, in order. */
  readonly llPayloads: number[];
}

export function fragment(payloadBytes: number, p: LinkParams): Fragmentation {
  checkInt('payloadBytes', payloadBytes, 0, 1 << 30);
  const per = p.attMtu - C.ATT_NOTIFY_HEADER;
  const attPdus: number[] = [];
  const llPayloads: number[] = [];
  for (let left = payloadBytes; left > 0; left -= per) {
    const pdu = C.ATT_NOTIFY_HEADER + Math.min(per, left);
    attPdus.push(pdu);
    for (const f of llFragments(pdu, p.llDataLength)) llPayloads.push(f);
  }
  return { attPayloadPerPdu: per, attPdus, llPayloads };
}

/** Lossless time (µs) to send `llPayloads` starting at a connection event anchor (formula T0 above). */
export function losslessTimeUs(llPayloads: readonly number[], p: LinkParams): number {
  const n = llPayloads.length;
  if (n === 0) return 0;
  const k = packetsPerEvent(p);
  const events = Math.ceil(n / k);
  const firstOfLast = (events - 1) * k;
  let t = (events - 1) * p.connectionIntervalMs * 1000;
  for (let i = firstOfLast; i < n - 1; i++) t += exchangeUs(llPayloads[i]!, p.phy, p.encrypted);
  t +=
    packetAirtimeUs(0, p.phy, p.encrypted) +
    C.T_IFS_US +
    packetAirtimeUs(llPayloads[n - 1]!, p.phy, p.encrypted);
  return t;
}

/** Probability that one exchange (data packet and the acknowledging packet) gets through. */
export function exchangeSuccessProbability(lossProbability: number): number {
  return (1 - lossProbability) * (1 - lossProbability);
}

export interface TransferEstimate {
  readonly payloadBytes: number;
  readonly params: LinkParams;
  readonly attPayloadPerPdu: number;
  readonly attPdus: number;
  readonly llPackets: number;
  readonly packetsPerEvent: number;
  /** Connection events used without loss. */
  readonly connectionEvents: number;
  /** Expected LL exchanges including retransmissions: P / q. */
  readonly expectedAttempts: number;
  readonly losslessUs: number;
  /** Expected transfer time T0 / q in µs. */
  readonly expectedUs: number;
  /** Effective application throughput at the expected time, in bit/s. */
  readonly throughputBps: number;
}

/** Modelled transfer time of an N-byte payload (expected value; see {@link simulateTransfer}). */
export function estimateTransfer(payloadBytes: number, params: LinkParams): TransferEstimate {
  const p = validateLinkParams(params);
  const f = fragment(payloadBytes, p);
  const k = packetsPerEvent(p);
  const q = exchangeSuccessProbability(p.lossProbability);
  const losslessUs = losslessTimeUs(f.llPayloads, p);
  const expectedUs = losslessUs / q;
  return {
    payloadBytes,
    params: p,
    attPayloadPerPdu: f.attPayloadPerPdu,
    attPdus: f.attPdus.length,
    llPackets: f.llPayloads.length,
    packetsPerEvent: k,
    connectionEvents: Math.ceil(f.llPayloads.length / k),
    expectedAttempts: f.llPayloads.length / q,
    losslessUs,
    expectedUs,
    throughputBps: expectedUs > 0 ? (payloadBytes * 8 * 1e6) / expectedUs : 0,
  };
}

/**
 * Packet-by-packet schedule of one direction of a connection, in virtual µs. Used by the air model
 * for every PDU and by {@link simulateTransfer}. Loss draws come from the injected seeded source:
 * every attempt consumes exactly two draws (data packet, ack), so runs replay exactly.
 */
export class LinkScheduler {
  private eventStartUs = 0;
  private usedInEvent = 0;
  private offsetUs = 0;
  private busyUntilUs = 0;
  private readonly k: number;
  private readonly intervalUs: number;
  /** Exchanges attempted so far, retransmissions included. */
  attempts = 0;
  /** LL packets delivered so far. */
  packets = 0;

  constructor(
    readonly params: LinkParams,
    private readonly rng?: SeededRandom,
  ) {
    validateLinkParams(params);
    this.k = packetsPerEvent(params);
    this.intervalUs = params.connectionIntervalMs * 1000;
  }

  /**
   * Sends LL packets with the given payload sizes, handed to the controller at `nowUs`. If the link is
   * idle, transmission starts at the next connection event anchor; otherwise it continues the stream
   * in the current event. Returns the time (µs) at which the last packet has been received.
   */
  send(nowUs: number, llPayloads: readonly number[], encrypted: boolean = this.params.encrypted): number {
    if (llPayloads.length === 0) return nowUs;
    if (nowUs > this.busyUntilUs) {
      // idle: wait for the next anchor (anchors at multiples of the interval since connection start)
      this.eventStartUs = Math.ceil(nowUs / this.intervalUs) * this.intervalUs;
      this.usedInEvent = 0;
      this.offsetUs = 0;
    }
    const { phy, lossProbability } = this.params;
    let end = nowUs;
    for (const payload of llPayloads) {
      for (;;) {
        if (this.usedInEvent >= this.k) {
          this.eventStartUs += this.intervalUs;
          this.usedInEvent = 0;
          this.offsetUs = 0;
        }
        const start = this.eventStartUs + this.offsetUs;
        end =
          start + packetAirtimeUs(0, phy, encrypted) + C.T_IFS_US + packetAirtimeUs(payload, phy, encrypted);
        this.offsetUs += exchangeUs(payload, phy, encrypted);
        this.usedInEvent++;
        this.attempts++;
        let ok = true;
        if (lossProbability > 0 && this.rng) {
          const dataLost = this.rng.nextFloat() < lossProbability;
          const ackLost = this.rng.nextFloat() < lossProbability;
          ok = !dataLost && !ackLost;
        }
        if (ok) break;
      }
      this.packets++;
    }
    this.busyUntilUs = end;
    return end;
  }
}

export interface SimulatedTransfer {
  readonly payloadBytes: number;
  readonly llPackets: number;
  readonly attempts: number;
  readonly timeUs: number;
}

/** One seeded run of the loss process for an N-byte payload (same model as {@link estimateTransfer}). */
export function simulateTransfer(
  payloadBytes: number,
  params: LinkParams,
  rng: SeededRandom,
): SimulatedTransfer {
  const p = validateLinkParams(params);
  const f = fragment(payloadBytes, p);
  const s = new LinkScheduler(p, rng);
  const timeUs = s.send(0, f.llPayloads);
  return { payloadBytes, llPackets: f.llPayloads.length, attempts: s.attempts, timeUs };
}
