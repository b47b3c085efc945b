// Errors: the one base class (stable code + cause) and the wire protocol's error catalog with default messages and spec clauses [PLK-10].
export const ERROR_CATALOG = {
  PLK_E_TYPE: { clause: 'PLK-10.1', message: 'a value has the wrong type' },
  PLK_E_TRUNCATED: { clause: 'PLK-10.1', message: 'input ended before the structure was complete' },
  PLK_E_TRAILING: { clause: 'PLK-10.1', message: 'input has bytes after the end of the structure' },
  PLK_E_LIMIT: { clause: 'PLK-9.1', message: 'a size, count or length exceeds its limit' },
  PLK_E_MSG_TYPE: { clause: 'PLK-2.2', message: 'unexpected message type byte' },
  PLK_E_VERSION: { clause: 'PLK-11.1', message: 'unsupported protocol version' },
  PLK_E_FIELD: { clause: 'PLK-10.1', message: 'a field has an invalid value' },
  PLK_E_KEY_FILE: { clause: 'PLK-1.4', message: 'key or identity file is malformed' },
  PLK_E_ID_MISMATCH: { clause: 'PLK-1.2', message: 'endpoint id does not match its signing key' },
  PLK_E_BAD_SIGNATURE: { clause: 'PLK-2.3', message: 'signature verification failed' },
  PLK_E_WRONG_GATEWAY: { clause: 'PLK-3.3', message: 'token or proof is bound to another gateway' },
  PLK_E_WRONG_ENDPOINT: { clause: 'PLK-3.3', message: 'message is bound to or signed by another endpoint' },
  PLK_E_STALE: { clause: 'PLK-3.4', message: 'timestamp outside the accepted window' },
  PLK_E_REPLAY: { clause: 'PLK-3.5', message: 'nonce or sequence number was already used' },
  PLK_E_NONCE_MISMATCH: { clause: 'PLK-3.6', message: 'gateway proof is not bound to our connect nonce' },
  PLK_E_NOT_RECIPIENT: { clause: 'PLK-5.6', message: 'this endpoint is not a recipient of the clip' },
  PLK_E_DECRYPT: { clause: 'PLK-5.6', message: 'decryption failed (tampered or wrongly addressed)' },
  PLK_E_PADDING: { clause: 'PLK-7.2', message: 'padded body is malformed' },
  PLK_E_TOPIC: { clause: 'PLK-4.1', message: 'topic is not a valid PlushLink topic' },
  PLK_E_UNSIGNED: { clause: 'PLK-13.1', message: 'firmware manifest carries no signature' },
  PLK_E_WRONG_VENDOR: { clause: 'PLK-13.3', message: 'firmware manifest is not from a trusted vendor' },
  PLK_E_IMAGE_MISMATCH: { clause: 'PLK-13.3', message: 'firmware image does not match its manifest' },
  PLK_E_CHUNK_CHAIN: {
    clause: 'PLK-14.4',
    message: 'chunk does not link to the chunks received before it in its clip',
  },
  PLK_E_CHUNK_ORDER: { clause: 'PLK-14.8', message: 'chunk is out of order within its clip' },
  PLK_E_CHUNK_TRUNCATED: { clause: 'PLK-14.8', message: 'clip ended without its final chunk' },
  PLK_E_CHUNK_REPLAY: { clause: 'PLK-14.8', message: 'chunk belongs to a clip already received' },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOG;

/**
 * Base of every error PlushLink throws on purpose: a stable machine-readable `code` (what callers
 * branch on and tests assert), a one-line message for people, and the `cause` it wraps (never
 * dropped when an error is translated). `name` is the subclass name.
 */
export class CodedError<C extends string | number = string> extends Error {
  readonly code: C;
  constructor(code: C, message: string, options?: { readonly cause?: unknown }) {
    super(message, options && 'cause' in options ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Typed protocol error: every decoder and verifier throws only this for bad input. */
export class PlushlinkError extends CodedError<ErrorCode> {
  readonly clause: string;
  constructor(code: ErrorCode, detail?: string, options?: { readonly cause?: unknown }) {
    const entry = ERROR_CATALOG[code];
    super(code, detail ? `${entry.message}: ${detail}` : entry.message, options);
    this.clause = entry.clause;
  }
}

/** True for any CodedError (optionally with this code). */
export function isCodedError(err: unknown, code?: string | number): err is CodedError<string | number> {
  return err instanceof CodedError && (code === undefined || err.code === code);
}

export function isPlushlinkError(err: unknown, code?: ErrorCode): err is PlushlinkError {
  return err instanceof PlushlinkError && (code === undefined || err.code === code);
}
