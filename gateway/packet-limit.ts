// Socket-level MQTT packet size guard: parses each fixed header and destroys the connection before an oversized packet is buffered [PLK-9].
import { Duplex } from 'node:stream';

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
  malformed: 'the fixed header is not valid MQTT',
  'not-connect': 'the first packet is not a CONNECT',
  'connect-timeout': 'no CONNECT within the connect timeout',
} as const;
export type SocketViolation = keyof typeof SOCKET_VIOLATIONS;

export interface PacketLimitOptions {
  /** Largest accepted remaining length (bytes after the fixed header) of any packet. */
  readonly maxPacketBytes: number;
  /** Largest accepted remaining length of the first packet, which must be a CONNECT (pre-auth). */
  readonly maxConnectBytes?: number;
  /** Bytes buffered for Aedes before the socket is paused; default 256 KiB. */
  readonly readBufferBytes?: number;
  /** Called once when the limit trips, before the socket is destroyed. */
  readonly onViolation?: (reason: Exclude<SocketViolation, 'connect-timeout'>, declared: number) => void;
}

const State = { Header: 0, Length: 1, Body: 2 } as const;
type State = (typeof State)[keyof typeof State];

const MQTT_CONNECT = 1;
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

  constructor(
    private readonly maxPacketBytes: number,
    private readonly maxConnectBytes: number,
  ) {}

  feed(chunk: Uint8Array): 'oversize' | 'malformed' | 'not-connect' | null {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.state) {
        case State.Header: {
          this.type = chunk[i]! >> 4;
          if (this.packets === 0 && this.type !== MQTT_CONNECT) return 'not-connect';
          if (this.type === 0) return 'malformed'; // reserved packet type
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
          this.packets++;
          this.bodyLeft = this.length;
          this.state = this.bodyLeft === 0 ? State.Header : State.Body;
          break;
        }
        case State.Body: {
          const take = Math.min(this.bodyLeft, n - i);
          this.bodyLeft -= take;
          i += take;
          if (this.bodyLeft === 0) this.state = State.Header;
          break;
        }
      }
    }
    return null;
  }

  private limit(): number {
    return this.packets === 0 ? this.maxConnectBytes : this.maxPacketBytes;
  }
}

/**
 * Wraps a socket (TCP or TLS) in a Duplex that Aedes reads from and writes to. Bytes flow through
 * unchanged; the first packet header that exceeds the limit destroys the underlying socket, so the
 * oversized body is never accumulated anywhere in the process.
 */
export function limitPackets(socket: Duplex, opts: PacketLimitOptions): Duplex {
  if (!Number.isInteger(opts.maxPacketBytes) || opts.maxPacketBytes < 2) {
    throw new RangeError('maxPacketBytes must be an integer >= 2');
  }
  const scanner = new MqttHeaderScanner(opts.maxPacketBytes, opts.maxConnectBytes ?? 1024);
  let tripped = false;

  const wrapper = new Duplex({
    // Aedes reads everything buffered here as one batch and handles its packets concurrently, and
    // reads again only when all of them are done (for clips: durably stored). A larger buffer lets
    // one connection's burst share a group commit instead of paying one fsync per ~3 packets.
    readableHighWaterMark: opts.readBufferBytes ?? 256 * 1024,
    // Backpressure: pause the socket when Aedes does not keep up, resume on demand.
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (socket.destroyed) {
        cb(new Error('socket destroyed'));
        return;
      }
      socket.write(chunk, (err) => cb(err ?? null));
    },
    // mqtt-packet's writeToStream writes one packet as 3–6 small chunks (fixed header, length,
    // topic, message id, payload) inside cork()/uncork(); without writev each of them would be a
    // separate write — and, with TCP_NODELAY, a separate syscall and TCP segment. Corking the
    // socket around the batch turns one packet (or several, when they were written in the same
    // tick) into a single writev.
    writev(chunks: { chunk: Buffer }[], cb) {
      if (socket.destroyed) {
        cb(new Error('socket destroyed'));
        return;
      }
      socket.cork();
      const last = chunks.length - 1;
      for (let i = 0; i < last; i++) socket.write(chunks[i]!.chunk);
      socket.write(chunks[last]!.chunk, (err) => cb(err ?? null));
      socket.uncork();
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });

  socket.on('data', (chunk: Buffer) => {
    if (tripped) return;
    const violation = scanner.feed(chunk);
    if (violation) {
      tripped = true;
      opts.onViolation?.(violation, scanner.declared);
      socket.destroy();
      wrapper.destroy();
      return;
    }
    if (!wrapper.push(chunk)) socket.pause();
  });
  socket.on('end', () => wrapper.push(null));
  socket.on('error', (err) => wrapper.destroy(err));
  socket.on('close', () => {
    if (!wrapper.destroyed) wrapper.destroy();
  });
  return wrapper;
}
