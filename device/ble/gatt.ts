// The toy's GATT-like PlushLink service: attribute table, security per characteristic, commands routed to injected handlers.
import { LIMITS } from '../../shared/limits.ts';
import { ATT_ERR, ATT_OP, AttError, errorRsp, handlePdu, readU16, u16 } from './att.ts';
import type { LinkSecurity } from './link.ts';

/** 128-bit UUIDs of the PlushLink service (random, version 4). */
export const PLUSHLINK_SERVICE_UUID = '7a1e0000-5c1b-4b8e-9d3c-2f1b6a0c9e51';

/**
 * Fixed attribute handles of the service. Service discovery (Read By Group Type / Find Information)
 * is not modelled: clients use this table, as a client with a cached database would.
 */
export const HANDLES = {
  DEVICE_NAME: 0x0003, // GAP Device Name: open to anyone (it is advertised anyway)
  CONTROL_POINT: 0x0010, // write (request): commands
  STATUS: 0x0012, // read: toy status
  CLIP_OUT: 0x0014, // notify: sealed envelope, toy → phone
  CLIP_OUT_CCCD: 0x0015, // write 0x0001 to enable notifications
  CLIP_IN: 0x0016, // write (command): sealed envelope, phone → toy
} as const;

/** Control point command opcodes (first byte written to CONTROL_POINT). */
export const COMMAND = {
  START_RECORDING: 0x01,
  STOP_RECORDING: 0x02, // then the toy notifies the sealed clip on CLIP_OUT
  BEGIN_CLIP_IN: 0x03, // u32 LE total length follows
  PLAY_CLIP: 0x04, // plays the clip written to CLIP_IN
} as const;

/** Security requirement of an attribute (Vol 3 Part C §10.3 security mode 1). */
export type AttributeSecurity = 'open' | 'authenticated-encrypted';

/** The toy's status as read from STATUS: 4 bytes [recording, battery %, clips waiting (u16 LE)]. */
export interface ToyBleStatus {
  readonly recording: boolean;
  readonly batteryPercent: number;
  readonly clipsWaiting: number;
}

export function encodeStatus(s: ToyBleStatus): Uint8Array {
  return Uint8Array.of(
    s.recording ? 1 : 0,
    Math.max(0, Math.min(100, Math.round(s.batteryPercent))),
    ...u16(s.clipsWaiting),
  );
}

/** Decodes a STATUS value read from a toy; any other length is AttError(Invalid Attribute Value Length). */
export function decodeStatus(b: Uint8Array): ToyBleStatus {
  if (b.length !== 4)
    throw new AttError(ATT_ERR.INVALID_ATTRIBUTE_VALUE_LENGTH, ATT_OP.READ_REQ, HANDLES.STATUS);
  return { recording: b[0] === 1, batteryPercent: b[1]!, clipsWaiting: readU16(b, 2) };
}

/**
 * What the toy firmware plugs in. The BLE layer calls these only for a peer on an encrypted link
 * whose key came from an authenticated (numeric comparison) pairing.
 */
export interface ToyBleHandlers {
  startRecording(): Promise<void> | void;
  /** Stops the microphone and returns the recorded clip, already sealed (shared/envelope.ts). */
  stopRecording(): Promise<Uint8Array> | Uint8Array;
  /** Plays a sealed clip received from a parent's phone (the firmware verifies and opens it). */
  playClip(envelope: Uint8Array): Promise<void> | void;
  getStatus(): ToyBleStatus;
}

interface Attribute {
  readonly handle: number;
  readonly security: AttributeSecurity;
  readonly read?: boolean;
  readonly write?: boolean;
  readonly writeCommand?: boolean;
}

export const ATTRIBUTES: readonly Attribute[] = [
  { handle: HANDLES.DEVICE_NAME, security: 'open', read: true },
  { handle: HANDLES.CONTROL_POINT, security: 'authenticated-encrypted', write: true },
  { handle: HANDLES.STATUS, security: 'authenticated-encrypted', read: true },
  { handle: HANDLES.CLIP_OUT, security: 'authenticated-encrypted' },
  { handle: HANDLES.CLIP_OUT_CCCD, security: 'authenticated-encrypted', read: true, write: true },
  { handle: HANDLES.CLIP_IN, security: 'authenticated-encrypted', writeCommand: true },
];

/**
 * The ATT error a request gets for lack of security, as real servers answer (Vol 3 Part C §10.3.1):
 * no encryption and no key for the peer → Insufficient Authentication (0x05: pair first); no
 * encryption but a bonded key exists → Insufficient Encryption (0x0F: encrypt with it); encrypted
 * with an unauthenticated key → Insufficient Authentication.
 */
export function securityError(
  req: AttributeSecurity,
  link: LinkSecurity,
  peerBonded: boolean,
): number | undefined {
  if (req === 'open') return undefined;
  if (!link.encrypted)
    return peerBonded ? ATT_ERR.INSUFFICIENT_ENCRYPTION : ATT_ERR.INSUFFICIENT_AUTHENTICATION;
  if (!link.authenticated) return ATT_ERR.INSUFFICIENT_AUTHENTICATION;
  return undefined;
}

/** Counters of what the server refused (attack tests read them). */
export interface GattStats {
  refusedForSecurity: number;
  droppedCommands: number;
  handlerCalls: number;
}

export interface GattServerOptions {
  readonly name: string;
  readonly handlers: ToyBleHandlers;
  readonly security: () => LinkSecurity;
  readonly peerBonded: () => boolean;
  /** Sends an ATT PDU to the client. */
  readonly send: (pdu: Uint8Array) => void;
  readonly maxMtu?: number;
  readonly maxClipBytes?: number;
  /** Counters to add to (shared across connections by the toy). */
  readonly stats?: GattStats;
}

/** Per-connection GATT server state of the toy. */
export class ToyGattServer {
  private mtu = 23;
  private notify = false;
  private clipIn: { buf: Uint8Array; filled: number; overflow: boolean } | undefined;
  private recording = false;
  readonly stats: GattStats;

  constructor(private readonly opts: GattServerOptions) {
    this.stats = opts.stats ?? { refusedForSecurity: 0, droppedCommands: 0, handlerCalls: 0 };
  }

  get attMtu(): number {
    return this.mtu;
  }

  /** Handles one ATT PDU from the client (one handler per opcode, routed here). */
  async handle(pdu: Uint8Array): Promise<void> {
    const op = pdu[0];
    if (op === undefined) return;
    switch (op) {
      case ATT_OP.EXCHANGE_MTU_REQ:
        return this.exchangeMtu(pdu);
      case ATT_OP.READ_REQ:
        return this.read(pdu);
      case ATT_OP.WRITE_REQ:
        return this.write(pdu);
      case ATT_OP.WRITE_CMD:
        return this.writeCommand(pdu);
      default:
        // commands (bit 6 set) are never answered; unknown requests get Request Not Supported
        if (op & 0x40) return;
        this.opts.send(errorRsp(op, 0, ATT_ERR.REQUEST_NOT_SUPPORTED));
    }
  }

  private exchangeMtu(pdu: Uint8Array): void {
    if (pdu.length !== 3) {
      this.opts.send(errorRsp(ATT_OP.EXCHANGE_MTU_REQ, 0, ATT_ERR.INVALID_PDU));
      return;
    }
    const clientRx = readU16(pdu, 1);
    const serverRx = this.opts.maxMtu ?? 517;
    this.mtu = Math.max(23, Math.min(clientRx, serverRx)); // Vol 3 Part F §3.4.2.2
    this.opts.send(Uint8Array.of(ATT_OP.EXCHANGE_MTU_RSP, ...u16(serverRx)));
  }

  private attribute(handle: number): Attribute | undefined {
    return ATTRIBUTES.find((a) => a.handle === handle);
  }

  private denied(a: Attribute): number | undefined {
    const err = securityError(a.security, this.opts.security(), this.opts.peerBonded());
    if (err !== undefined) this.stats.refusedForSecurity++;
    return err;
  }

  private read(pdu: Uint8Array): void {
    if (pdu.length !== 3) {
      this.opts.send(errorRsp(ATT_OP.READ_REQ, 0, ATT_ERR.INVALID_PDU));
      return;
    }
    const handle = readU16(pdu, 1);
    const a = this.attribute(handle);
    if (!a) {
      this.opts.send(errorRsp(ATT_OP.READ_REQ, handle, ATT_ERR.INVALID_HANDLE));
      return;
    }
    if (!a.read) {
      this.opts.send(errorRsp(ATT_OP.READ_REQ, handle, ATT_ERR.READ_NOT_PERMITTED));
      return;
    }
    const err = this.denied(a);
    if (err !== undefined) {
      this.opts.send(errorRsp(ATT_OP.READ_REQ, handle, err));
      return;
    }
    let value: Uint8Array;
    if (handle === HANDLES.DEVICE_NAME) value = new TextEncoder().encode(this.opts.name);
    else if (handle === HANDLES.STATUS) {
      this.stats.handlerCalls++;
      value = encodeStatus(this.opts.handlers.getStatus());
    } else value = Uint8Array.of(this.notify ? 1 : 0, 0);
    this.opts.send(Uint8Array.of(ATT_OP.READ_RSP, ...value.subarray(0, this.mtu - 1)));
  }

  private async write(pdu: Uint8Array): Promise<void> {
    if (pdu.length < 3) return this.opts.send(errorRsp(ATT_OP.WRITE_REQ, 0, ATT_ERR.INVALID_PDU));
    const handle = readU16(pdu, 1);
    const value = pdu.subarray(3);
    const a = this.attribute(handle);
    if (!a) return this.opts.send(errorRsp(ATT_OP.WRITE_REQ, handle, ATT_ERR.INVALID_HANDLE));
    if (!a.write) return this.opts.send(errorRsp(ATT_OP.WRITE_REQ, handle, ATT_ERR.WRITE_NOT_PERMITTED));
    const err = this.denied(a);
    if (err !== undefined) return this.opts.send(errorRsp(ATT_OP.WRITE_REQ, handle, err));
    if (handle === HANDLES.CLIP_OUT_CCCD) {
      if (value.length !== 2) {
        return this.opts.send(errorRsp(ATT_OP.WRITE_REQ, handle, ATT_ERR.INVALID_ATTRIBUTE_VALUE_LENGTH));
      }
      this.notify = (value[0]! & 1) === 1;
      return this.opts.send(Uint8Array.of(ATT_OP.WRITE_RSP));
    }
    const code = await this.command(value);
    if (code !== undefined) return this.opts.send(errorRsp(ATT_OP.WRITE_REQ, handle, code));
  }

  /** Runs a control point command; returns an ATT error code, or undefined once it has answered. */
  private async command(value: Uint8Array): Promise<number | undefined> {
    const h = this.opts.handlers;
    const ok = (): undefined => {
      this.opts.send(Uint8Array.of(ATT_OP.WRITE_RSP));
      return undefined;
    };
    try {
      switch (value[0]) {
        case COMMAND.START_RECORDING:
          if (value.length !== 1) return ATT_ERR.INVALID_ATTRIBUTE_VALUE_LENGTH;
          if (this.recording) return ATT_ERR.APP_WRONG_STATE;
          this.stats.handlerCalls++;
          await h.startRecording();
          this.recording = true;
          return ok();
        case COMMAND.STOP_RECORDING: {
          if (value.length !== 1) return ATT_ERR.INVALID_ATTRIBUTE_VALUE_LENGTH;
          if (!this.recording) return ATT_ERR.APP_WRONG_STATE;
          if (!this.notify) return ATT_ERR.CCCD_IMPROPERLY_CONFIGURED;
          this.stats.handlerCalls++;
          this.recording = false;
          const envelope = await h.stopRecording();
          ok();
          this.notifyClip(envelope);
          return undefined;
        }
        case COMMAND.BEGIN_CLIP_IN: {
          if (value.length !== 5) return ATT_ERR.INVALID_ATTRIBUTE_VALUE_LENGTH;
          const total = (value[1]! | (value[2]! << 8) | (value[3]! << 16) | (value[4]! << 24)) >>> 0;
          if (total === 0 || total > (this.opts.maxClipBytes ?? LIMITS.maxEnvelopeBytes)) {
            return ATT_ERR.APP_CLIP_TOO_LARGE;
          }
          this.clipIn = { buf: new Uint8Array(total), filled: 0, overflow: false };
          return ok();
        }
        case COMMAND.PLAY_CLIP: {
          if (value.length !== 1) return ATT_ERR.INVALID_ATTRIBUTE_VALUE_LENGTH;
          const c = this.clipIn;
          if (!c || c.overflow || c.filled !== c.buf.length) return ATT_ERR.APP_CLIP_INCOMPLETE;
          this.clipIn = undefined;
          this.stats.handlerCalls++;
          await h.playClip(c.buf);
          return ok();
        }
        default:
          return ATT_ERR.APP_UNKNOWN_COMMAND;
      }
    } catch {
      return ATT_ERR.APP_HANDLER_FAILED;
    }
  }

  /** Write Command: no response ever (Vol 3 Part F §3.4.5.3), so refused ones are dropped silently. */
  private writeCommand(pdu: Uint8Array): void {
    if (pdu.length < 3) return;
    const handle = readU16(pdu, 1);
    const a = this.attribute(handle);
    if (!a?.writeCommand || this.denied(a) !== undefined || !this.clipIn) {
      this.stats.droppedCommands++;
      return;
    }
    const c = this.clipIn;
    const chunk = pdu.subarray(3);
    if (c.filled + chunk.length > c.buf.length) {
      c.overflow = true;
      return;
    }
    c.buf.set(chunk, c.filled);
    c.filled += chunk.length;
  }

  /** Streams a sealed clip as notifications: first [u32 LE total length][data], then [data]... */
  private notifyClip(envelope: Uint8Array): void {
    const per = this.mtu - 3;
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, envelope.length, true);
    const stream = new Uint8Array(4 + envelope.length);
    stream.set(header);
    stream.set(envelope, 4);
    for (let o = 0; o < stream.length; o += per) {
      this.opts.send(handlePdu(ATT_OP.HANDLE_VALUE_NTF, HANDLES.CLIP_OUT, stream.subarray(o, o + per)));
    }
  }
}
