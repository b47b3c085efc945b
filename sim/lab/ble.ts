// The lab's BLE hop (toy ↔ phone): the GATT clip streams and control writes of device/ble/gatt.ts scheduled by device/ble/timing.ts, with on-air bytes and the toy's TX/RX time.
import type { SeededRandom } from '../../device/ble/random.ts';
import {
  BLE_CONSTANTS,
  exchangeUs,
  fragment,
  type LinkParams,
  LinkScheduler,
  linkParams,
  llFragments,
  packetAirtimeUs,
  packetsPerEvent,
} from '../../device/ble/timing.ts';
import type { BleLinkConfig } from './config.ts';

/** The GATT Clip out/in stream starts with the clip's length, u32 LE (docs/BLE.md §4). */
export const CLIP_LENGTH_PREFIX_BYTES = 4;
/** ATT Write Request header (opcode + handle, Vol 3 Part F §3.4.5.1) and Write Response (opcode, §3.4.5.2). */
export const ATT_WRITE_REQUEST_HEADER = 3;
export const ATT_WRITE_RESPONSE_BYTES = 1;

/** The timing model's parameters for the lab's BLE link while a clip moves. */
export function activeLinkParams(link: BleLinkConfig): LinkParams {
  return linkParams({
    attMtu: link.mtu,
    connectionIntervalMs: link.intervalMs,
    phy: link.phy,
    maxPacketsPerEvent: link.perEvent,
    llDataLength: link.dataLength,
    lossProbability: link.loss,
    encrypted: link.encrypted,
  });
}

/** Octets on air of one LL data packet with `payload` octets (preamble, access address, header, MIC, CRC). */
export function packetOctets(payload: number, p: LinkParams): number {
  const pre = p.phy === '1M' ? BLE_CONSTANTS.PREAMBLE_1M : BLE_CONSTANTS.PREAMBLE_2M;
  const mic = p.encrypted && payload > 0 ? BLE_CONSTANTS.MIC : 0;
  return pre + BLE_CONSTANTS.ACCESS_ADDRESS + BLE_CONSTANTS.LL_HEADER + payload + mic + BLE_CONSTANTS.CRC;
}

export type BleDirection = 'toy-to-phone' | 'phone-to-toy';

export interface BleBurst {
  /** Bytes handed to ATT as attribute values (clip stream with its length prefix, or command values). */
  readonly valueBytes: number;
  readonly attPdus: number;
  readonly llPackets: number;
  /** Exchanges attempted (retransmissions included). */
  readonly attempts: number;
  readonly events: number;
  /** Every octet on air: data packets and the other side's empty packets, retransmissions included. */
  readonly onAirOctets: number;
  /** From the first connection event anchor to the last packet received, µs. */
  readonly durationUs: number;
  /** Σ exchanges (packets and inter-frame spaces), µs. */
  readonly airtimeUs: number;
  readonly toyTxUs: number;
  /** Receiving and turning around (T_IFS), µs. */
  readonly toyRxUs: number;
}

/**
 * One burst of LL packets in one direction from an idle link (docs/BLE.md §5): each exchange is the
 * central's packet, T_IFS, the peripheral's, T_IFS; every attempt is a slot, k slots per event.
 */
export function bleBurst(
  llPayloads: readonly number[],
  valueBytes: number,
  attPdus: number,
  direction: BleDirection,
  p: LinkParams,
  rng: SeededRandom,
): BleBurst {
  const s = new LinkScheduler(p, rng);
  let end = 0;
  let octets = 0;
  let tx = 0;
  let rx = 0;
  let air = 0;
  const empty = packetAirtimeUs(0, p.phy, p.encrypted);
  for (const payload of llPayloads) {
    const before = s.attempts;
    end = s.send(end, [payload]);
    const tries = s.attempts - before;
    const data = packetAirtimeUs(payload, p.phy, p.encrypted);
    octets += tries * (packetOctets(payload, p) + packetOctets(0, p));
    air += tries * exchangeUs(payload, p.phy, p.encrypted);
    if (direction === 'toy-to-phone') {
      tx += tries * data;
      rx += tries * (empty + 2 * BLE_CONSTANTS.T_IFS_US);
    } else {
      rx += tries * (data + 2 * BLE_CONSTANTS.T_IFS_US);
      tx += tries * empty;
    }
  }
  const attempts = s.attempts;
  return {
    valueBytes,
    attPdus,
    llPackets: llPayloads.length,
    attempts,
    events: Math.ceil(attempts / packetsPerEvent(p)),
    onAirOctets: octets,
    durationUs: llPayloads.length > 0 ? end : 0,
    airtimeUs: air,
    toyTxUs: tx,
    toyRxUs: rx,
  };
}

/** A clip (or receipt) streamed as `[u32 LE length][bytes]` in notifications (toy → phone) or Write Commands (phone → toy). */
export function bleClipStream(
  bytes: number,
  direction: BleDirection,
  p: LinkParams,
  rng: SeededRandom,
): BleBurst {
  const f = fragment(CLIP_LENGTH_PREFIX_BYTES + bytes, p);
  return bleBurst(f.llPayloads, CLIP_LENGTH_PREFIX_BYTES + bytes, f.attPdus.length, direction, p, rng);
}

/** The phone writes a control-point command (Write Request, phone → toy) and the toy answers (Write Response). */
export function bleCommand(valueBytes: number, p: LinkParams, rng: SeededRandom): BleBurst[] {
  const req = llFragments(ATT_WRITE_REQUEST_HEADER + valueBytes, p.llDataLength);
  const rsp = llFragments(ATT_WRITE_RESPONSE_BYTES, p.llDataLength);
  return [bleBurst(req, valueBytes, 1, 'phone-to-toy', p, rng), bleBurst(rsp, 0, 1, 'toy-to-phone', p, rng)];
}

export interface BleIdle {
  readonly eventsPerDay: number;
  /** Per idle event: the central's empty packet in, ours out. */
  readonly txUs: number;
  readonly rxUs: number;
}

/** The idle connection: an exchange of empty packets at every event the toy listens to (it may skip `peripheralLatency`). */
export function bleIdle(link: BleLinkConfig, idleMs: number): BleIdle {
  const p = activeLinkParams(link);
  const period = link.idleIntervalMs * (link.peripheralLatency + 1);
  const empty = packetAirtimeUs(0, p.phy, p.encrypted);
  return {
    eventsPerDay: Math.floor(idleMs / period),
    txUs: empty,
    rxUs: empty + 2 * BLE_CONSTANTS.T_IFS_US,
  };
}

/** Sums bursts; durations add up (they run one after the other). */
export function sumBursts(bursts: readonly BleBurst[]): BleBurst {
  const z: { -readonly [K in keyof BleBurst]: number } = {
    valueBytes: 0,
    attPdus: 0,
    llPackets: 0,
    attempts: 0,
    events: 0,
    onAirOctets: 0,
    durationUs: 0,
    airtimeUs: 0,
    toyTxUs: 0,
    toyRxUs: 0,
  };
  for (const b of bursts) for (const k of Object.keys(z) as (keyof BleBurst)[]) z[k] += b[k];
  return z;
}
