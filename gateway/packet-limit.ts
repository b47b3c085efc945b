// Socket-level MQTT packet size guard: parses each fixed header and destroys the connection before an oversized packet is buffered [PLK-9].
import type { Duplex } from 'node:stream';

/*
 * Why a hand-written parser: neither Aedes 1.x nor mqtt-packet 9 (its parser) has a maximum
 * packet size. mqtt-packet reads the remaining-length varint (up to 268,435,455 bytes) and keeps
 * buffering until that many bytes have arrived, so one client can make the broker hold ~256 MiB
 * per connection before any hook runs (see moscajs/aedes issue #831 "Maximum Packet Size",
 * still open). The MQTT fixed header is tiny and fully specified (MQTT 3.1.1 §2.2: one type/flags
 * byte, then the remaining length as a 1–4 byte base-128 varint), so we inspect only those bytes
 * of every packet on the raw stream and pass the bytes through untouched. We never decode packet
 * bodies here: Aedes still parses everything; this layer only refuses to let it buffer too much.
 */

/**
 * [PLK-12.6] Why a connection was closed at the socket, before or beside MQTT: the
 * `socket_violations` metric label.
 */
export const SOCKET_VIOLATIONS = {
  oversize: 'a packet announces more than the maximum packet size',
  malformed: 'a packet is not valid MQTT 3.1.1 (reserved or server-only type, flag bits, length, body)',
  'not-connect': 'the first packet is not a CONNECT',
  'connect-timeout': 'no CONNECT within the connect timeout',
  'control-flood': 'more control packets (PINGREQ, SUBSCRIBE, UNSUBSCRIBE) than the per-connection budget',
  'subscribe-flood': 'more refused subscription filters than the per-connection limit',
} as const;
export type SocketViolation = keyof typeof SOCKET_VIOLATIONS;
/** The violations the header scanner itself detects. */
export type ScannerViolation = Exclude<SocketViolation, 'connect-timeout'>;

export interface PacketLimitOptions {
  /** Largest accepted remaining length (bytes after the fixed header) of any packet. */
  readonly maxPacketBytes: number;
  /** Largest accepted remaining length of the first packet, which must be a CONNECT (pre-auth). */
  readonly maxConnectBytes?: number;
  /** [PLK-4.3] Rewrite the QoS requested in every SUBSCRIBE to 1 (inbox delivery is QoS 1). */
  readonly subscribeQos1?: boolean;
  /** [PLK-9.2] Control packets (PINGREQ, SUBSCRIBE, UNSUBSCRIBE) per connection: a burst, then a rate. */
  readonly control?: ControlBudget;
  /** Called once when the limit trips, before the socket is destroyed. */
  readonly onViolation?: (reason: ScannerViolation, declared: number) => void;
}

/** A token bucket for the control packets of one connection; `now` is the injected clock (ms). */
export interface ControlBudget {
  readonly burst: number;
  readonly perSecond: number;
  readonly now: () => number;
}

/** Default: 30 at once, then one a second (an MQTT keepalive pings every 30 s or so). */
export const DEFAULT_CONTROL_BUDGET = { burst: 30, perSecond: 1 } as const;

const State = { Header: 0, Length: 1, Body: 2 } as const;
type State = (typeof State)[keyof typeof State];

const MQTT_CONNECT = 1;
const MQTT_PUBLISH = 3;
const MQTT_SUBSCRIBE = 8;
/**
 * [PLK-9.2] MQTT 3.1.1 §2.2.2: the fixed-header flags each packet type a client may send must
 * carry (PUBLISH has its own rules). CONNACK, SUBACK, UNSUBACK and PINGRESP only flow from the
 * server, and type 15 is reserved: from a client they are malformed.
 */
const CLIENT_FLAGS: Readonly<Record<number, number>> = {
  1: 0, // CONNECT
  4: 0, // PUBACK
  5: 0, // PUBREC
  6: 2, // PUBREL
  7: 0, // PUBCOMP
  8: 2, // SUBSCRIBE
  10: 2, // UNSUBSCRIBE
  12: 0, // PINGREQ
  14: 0, // DISCONNECT
};
/** Exact remaining lengths (§3.4–3.7, §3.12, §3.14), and the least a SUBSCRIBE or UNSUBSCRIBE can hold. */
const EXACT_LENGTH: Readonly<Record<number, number>> = { 4: 2, 5: 2, 6: 2, 7: 2, 12: 0, 14: 0 };
const MIN_LENGTH: Readonly<Record<number, number>> = { 8: 6, 10: 5 };
/** SUBSCRIBE (8), UNSUBSCRIBE (10), PINGREQ (12): the packets a flood can cost the broker work for nothing. */
const CONTROL_TYPES = new Set([8, 10, 12]);
/** [PLK-9.2] Largest control packet: an endpoint subscribes to one topic, its inbox. */
export const MAX_CONTROL_PACKET_BYTES = 4096;
/**
 * [PLK-4.3] Most filters in one SUBSCRIBE. An endpoint needs one; a packet with thousands would
 * cost the broker a check per filter before the refused-filter limit could close the connection,
 * so it is refused here, before the broker parses it.
 */
export const MAX_SUBSCRIBE_FILTERS = 8;
/** Remaining length is at most 4 varint bytes (MQTT 3.1.1 §2.2.3). */
const MAX_VARINT_BYTES = 4;

/** Incremental fixed-header scanner; `feed` returns an error reason, or null while the stream is fine. */
export class MqttHeaderScanner {
  private state: State = State.Header;
  private type = 0;
  private length = 0;
  private multiplier = 1;
  private varintBytes = 0;
  private bodyLeft = 0;
  private packets = 0;
  /** Remaining length declared by the packet that tripped the limit. */
  declared = 0;
  private tokens: number;
  private refilledAt: number;
  /** Inside a SUBSCRIBE body: bytes of packet id / topic length / topic still to pass, and which. */
  private sub: { part: 'id' | 'len' | 'topic' | 'qos'; left: number; len: number; filters: number } | null =
    null;

  constructor(
    private readonly maxPacketBytes: number,
    private readonly maxConnectBytes: number,
    private readonly control?: ControlBudget,
    /** Rewrite every requested SUBSCRIBE QoS to 1 [PLK-4.3]. */
    private readonly grantQos1 = false,
  ) {
    this.tokens = control?.burst ?? 0;
    this.refilledAt = control?.now() ?? 0;
  }

  /** Takes one control-packet token; false when the budget is spent. */
  private takeControl(): boolean {
    const c = this.control;
    if (!c) return true;
    const now = c.now();
    this.tokens = Math.min(c.burst, this.tokens + (Math.max(0, now - this.refilledAt) / 1000) * c.perSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  feed(chunk: Uint8Array): ScannerViolation | null {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.state) {
        case State.Header: {
          const first = chunk[i]!;
          this.type = first >> 4;
          if (this.packets === 0 && this.type !== MQTT_CONNECT) return 'not-connect';
          if (this.type === MQTT_PUBLISH) {
            if ((first & 0x06) === 0x06) return 'malformed'; // QoS 3
          } else if (CLIENT_FLAGS[this.type] !== (first & 0x0f)) {
            return 'malformed'; // reserved type, a server-only type, or wrong flag bits
          }
          if (CONTROL_TYPES.has(this.type) && !this.takeControl()) return 'control-flood';
          this.state = State.Length;
          this.length = 0;
          this.multiplier = 1;
          this.varintBytes = 0;
          i++;
          break;
        }
        case State.Length: {
          const b = chunk[i]!;
          i++;
          this.length += (b & 0x7f) * this.multiplier;
          this.multiplier *= 128;
          this.varintBytes++;
          if (b & 0x80) {
            if (this.varintBytes >= MAX_VARINT_BYTES) return 'malformed';
            // Refuse as soon as the partial value already exceeds the limit.
            if (this.length > this.limit()) {
              this.declared = this.length;
              return 'oversize';
            }
            break;
          }
          if (this.length > this.limit()) {
            this.declared = this.length;
            return 'oversize';
          }
          if (CONTROL_TYPES.has(this.type) && this.length > MAX_CONTROL_PACKET_BYTES) {
            this.declared = this.length;
            return 'oversize';
          }
          const exact = EXACT_LENGTH[this.type];
          if ((exact !== undefined && this.length !== exact) || this.length < (MIN_LENGTH[this.type] ?? 0)) {
            this.declared = this.length;
            return 'malformed';
          }
          this.packets++;
          this.bodyLeft = this.length;
          this.sub = this.type === MQTT_SUBSCRIBE ? { part: 'id', left: 2, len: 0, filters: 0 } : null;
          this.state = this.bodyLeft === 0 ? State.Header : State.Body;
          break;
        }
        case State.Body: {
          if (this.sub) {
            // [PLK-4.3] A SUBSCRIBE's requested QoS bytes are rewritten to 1 on their way to the
            // broker: inbox delivery is always QoS 1, and the SUBACK then says so.
            if (this.subscribeByte(chunk, i)) return 'subscribe-flood';
            this.bodyLeft--;
            i++;
          } else {
            const take = Math.min(this.bodyLeft, n - i);
            this.bodyLeft -= take;
            i += take;
          }
          if (this.bodyLeft === 0) {
            this.state = State.Header;
            this.sub = null;
          }
          break;
        }
      }
    }
    return null;
  }

  /** One byte of a SUBSCRIBE body: packet id, then (topic length, topic, requested QoS)*; true past the filter limit. */
  private subscribeByte(chunk: Uint8Array, i: number): boolean {
    const sub = this.sub!;
    const b = chunk[i]!;
    switch (sub.part) {
      case 'id':
        if (--sub.left === 0) Object.assign(sub, { part: 'len', left: 2, len: 0 });
        break;
      case 'len':
        sub.len = sub.len * 256 + b;
        if (--sub.left === 0)
          Object.assign(sub, sub.len === 0 ? { part: 'qos' } : { part: 'topic', left: sub.len });
        break;
      case 'topic':
        if (--sub.left === 0) sub.part = 'qos';
        break;
      case 'qos':
        // Reserved bits (a malformed packet) are left for the broker to refuse.
        if (this.grantQos1 && (b & 0xfc) === 0) chunk[i] = 1;
        Object.assign(sub, { part: 'len', left: 2, len: 0 });
        if (++sub.filters > MAX_SUBSCRIBE_FILTERS) return true;
        break;
    }
    return false;
  }

  private limit(): number {
    return this.packets === 0 ? this.maxConnectBytes : this.maxPacketBytes;
  }
}

/**
 * Guards a socket (TCP or TLS) in place and returns it for Aedes to read and write directly. Every
 * chunk the socket receives passes through the header scanner before it enters the socket's
 * readable buffer (Readable#push is where Node hands a socket its bytes, TLS after decryption); the
 * first header that exceeds the limit destroys the socket, so the oversized body is never
 * accumulated anywhere in the process. No wrapper stream: one Duplex fewer per connection (about
 * 1.2 kB of heap per connected toy, bench:idle) and one stream hop fewer per packet each way;
 * writes go straight to the socket, whose own writev turns a corked packet into one syscall.
 */
export function limitPackets<S extends Duplex>(socket: S, opts: PacketLimitOptions): S {
  if (!Number.isInteger(opts.maxPacketBytes) || opts.maxPacketBytes < 2) {
    throw new RangeError('maxPacketBytes must be an integer >= 2');
  }
  const scanner = new MqttHeaderScanner(
    opts.maxPacketBytes,
    opts.maxConnectBytes ?? 1024,
    opts.control,
    opts.subscribeQos1 ?? false,
  );
  let tripped = false;
  const push = socket.push;
  socket.push = function guardedPush(this: S, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (tripped) return false;
    if (chunk === null || !Buffer.isBuffer(chunk)) return push.call(this, chunk, encoding);
    const violation = scanner.feed(chunk);
    if (violation) {
      tripped = true;
      opts.onViolation?.(violation, scanner.declared);
      this.destroy();
      return false;
    }
    return push.call(this, chunk, encoding);
  };
  return socket;
}
