// ATT PDUs used by the PlushLink service: opcodes, error codes, encoders (Core Spec v5.x Vol 3 Part F §3.4).
import { CodedError } from '../../shared/errors.ts';

/** ATT opcodes (Vol 3 Part F §3.4.8, Table 3.37). */
export const ATT_OP = {
  ERROR_RSP: 0x01,
  EXCHANGE_MTU_REQ: 0x02,
  EXCHANGE_MTU_RSP: 0x03,
  READ_REQ: 0x0a,
  READ_RSP: 0x0b,
  WRITE_REQ: 0x12,
  WRITE_RSP: 0x13,
  HANDLE_VALUE_NTF: 0x1b,
  WRITE_CMD: 0x52,
} as const;

/** ATT error codes (Vol 3 Part F §3.4.1.1, Table 3.4) plus this service's application errors (0x80–0x9F). */
export const ATT_ERR = {
  INVALID_HANDLE: 0x01,
  READ_NOT_PERMITTED: 0x02,
  WRITE_NOT_PERMITTED: 0x03,
  INVALID_PDU: 0x04,
  INSUFFICIENT_AUTHENTICATION: 0x05,
  REQUEST_NOT_SUPPORTED: 0x06,
  INVALID_OFFSET: 0x07,
  INVALID_ATTRIBUTE_VALUE_LENGTH: 0x0d,
  UNLIKELY_ERROR: 0x0e,
  INSUFFICIENT_ENCRYPTION: 0x0f,
  /** Application error: unknown control point command. */
  APP_UNKNOWN_COMMAND: 0x80,
  /** Application error: command not allowed in the toy's current state. */
  APP_WRONG_STATE: 0x81,
  /** Application error: announced clip larger than the limit. */
  APP_CLIP_TOO_LARGE: 0x82,
  /** Application error: PLAY_CLIP before the whole clip was written. */
  APP_CLIP_INCOMPLETE: 0x83,
  /** Application error: the toy's handler failed. */
  APP_HANDLER_FAILED: 0x84,
  /** Common profile error: CCCD improperly configured (Core Spec Supplement Part B §1.2). */
  CCCD_IMPROPERLY_CONFIGURED: 0xfd,
} as const;

/** A request answered with ATT_ERROR_RSP (or, on the client, with a malformed or unexpected PDU: INVALID_PDU). */
export class AttError extends CodedError<number> {
  constructor(
    code: number,
    readonly requestOpcode: number,
    readonly handle: number,
  ) {
    super(
      code,
      `ATT error 0x${code.toString(16).padStart(2, '0')} on handle 0x${handle.toString(16).padStart(4, '0')}`,
    );
  }
}

export function u16(v: number): [number, number] {
  return [v & 0xff, (v >>> 8) & 0xff];
}

export function readU16(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8);
}

export function errorRsp(reqOpcode: number, handle: number, code: number): Uint8Array {
  return Uint8Array.of(ATT_OP.ERROR_RSP, reqOpcode, ...u16(handle), code);
}

/** opcode + 16-bit handle + value (Read/Write Request, Write Command, Notification). */
export function handlePdu(opcode: number, handle: number, value: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(3 + value.length);
  out[0] = opcode;
  out[1] = handle & 0xff;
  out[2] = handle >>> 8;
  out.set(value, 3);
  return out;
}
