// Connect token (endpoint → gateway) and gateway proof (gateway → endpoint), with a bounded nonce replay cache [PLK-3].
import { assertBytes, ByteReader, ByteWriter, bytesEqual, toHex } from './bytes.ts';
import { type CryptoSuite, defaultCrypto } from './crypto.ts';
import { PlushlinkError } from './errors.ts';
import { idFromBytes, idToBytes, type PrivateIdentity } from './identity.ts';
import {
  CONTEXT,
  ID_BYTES,
  MSG,
  NONCE_BYTES,
  PROOF_BYTES,
  PROTOCOL_VERSION,
  SIGNATURE_BYTES,
  TOKEN_BYTES,
} from './limits.ts';
import { systemRandom } from './random.ts';
import { signBody, verifyBody } from './signed.ts';
import type { EndpointId, RandomSource } from './types.ts';

/** [PLK-3.4] Default accepted clock skew either side of the gateway's clock. */
export const DEFAULT_TOKEN_WINDOW_MS = 60_000;

export interface ConnectToken {
  readonly gatewayId: EndpointId;
  readonly endpointId: EndpointId;
  readonly timestamp: number;
  readonly nonce: Uint8Array;
  readonly signature: Uint8Array;
  /** The signed part: every byte before the signature. */
  readonly body: Uint8Array;
}

export interface GatewayProof {
  readonly gatewayId: EndpointId;
  readonly endpointId: EndpointId;
  readonly nonce: Uint8Array;
  readonly timestamp: number;
  readonly signature: Uint8Array;
  readonly body: Uint8Array;
}

function checkHeader(r: ByteReader, type: number, what: string): void {
  const t = r.u8('type');
  if (t !== type) throw new PlushlinkError('PLK_E_MSG_TYPE', `${what}: got 0x${t.toString(16)}`);
  const v = r.u8('version');
  if (v !== PROTOCOL_VERSION) throw new PlushlinkError('PLK_E_VERSION', `${what} version ${v}`);
}

function fixedSize(bytes: Uint8Array, size: number, what: string): void {
  if (!(bytes instanceof Uint8Array)) throw new PlushlinkError('PLK_E_TYPE', `${what} must be bytes`);
  if (bytes.length > size)
    throw new PlushlinkError('PLK_E_LIMIT', `${what} is ${bytes.length} bytes, max ${size}`);
}

/** [PLK-3.1] Builds the MQTT password: a 130-byte token signed by the endpoint. */
export function createConnectToken(opts: {
  identity: PrivateIdentity;
  gatewayId: EndpointId;
  now: number;
  random?: RandomSource;
  crypto?: CryptoSuite;
}): { bytes: Uint8Array; nonce: Uint8Array; timestamp: number } {
  const random = opts.random ?? systemRandom;
  const crypto = opts.crypto ?? defaultCrypto();
  const nonce = random(NONCE_BYTES);
  const timestamp = Math.floor(opts.now);
  const w = new ByteWriter(TOKEN_BYTES);
  w.u8(MSG.TOKEN).u8(PROTOCOL_VERSION).raw(idToBytes(opts.gatewayId)).raw(idToBytes(opts.identity.id));
  w.u64(timestamp).raw(nonce);
  const body = w.bytes.subarray(0, w.offset);
  w.raw(signBody(crypto, opts.identity.signSeed, CONTEXT.TOKEN, body));
  return { bytes: w.bytes, nonce, timestamp };
}

/** [PLK-3.1] Structural decode (no signature check). */
export function decodeConnectToken(bytes: Uint8Array): ConnectToken {
  fixedSize(bytes, TOKEN_BYTES, 'connect token');
  const r = new ByteReader(bytes);
  checkHeader(r, MSG.TOKEN, 'connect token');
  const gatewayId = idFromBytes(r.raw(ID_BYTES, 'gateway id'));
  const endpointId = idFromBytes(r.raw(ID_BYTES, 'endpoint id'));
  const timestamp = r.u64('timestamp');
  const nonce = r.raw(NONCE_BYTES, 'nonce');
  const bodyEnd = r.offset;
  const signature = r.raw(SIGNATURE_BYTES, 'signature');
  r.end('connect token');
  return { gatewayId, endpointId, timestamp, nonce, signature, body: bytes.subarray(0, bodyEnd) };
}

/**
 * [PLK-3.3..3.5] Full verification, in this order: structure, gateway id, endpoint id (= MQTT
 * username and client id), timestamp window, signature, then nonce freshness (only a token with a
 * valid signature may occupy the replay cache). Without `replay`, the caller must check the nonce
 * itself with tokenReplayKey()/tokenExpiry() (e.g. against a store shared by gateway nodes).
 */
export function verifyConnectToken(
  bytes: Uint8Array,
  opts: {
    gatewayId: EndpointId;
    endpointId: EndpointId;
    signPublicKey: Uint8Array;
    now: number;
    windowMs?: number;
    replay?: NonceReplayCache;
    crypto?: CryptoSuite;
  },
): ConnectToken {
  const token = decodeConnectToken(bytes);
  if (token.gatewayId !== opts.gatewayId) throw new PlushlinkError('PLK_E_WRONG_GATEWAY');
  if (token.endpointId !== opts.endpointId) throw new PlushlinkError('PLK_E_WRONG_ENDPOINT');
  const windowMs = opts.windowMs ?? DEFAULT_TOKEN_WINDOW_MS;
  if (Math.abs(opts.now - token.timestamp) > windowMs) {
    throw new PlushlinkError(
      'PLK_E_STALE',
      `token time ${token.timestamp}, gateway time ${Math.floor(opts.now)}`,
    );
  }
  verifyBody(
    opts.crypto ?? defaultCrypto(),
    opts.signPublicKey,
    CONTEXT.TOKEN,
    token.body,
    token.signature,
    'connect token',
  );
  if (opts.replay && !opts.replay.add(tokenReplayKey(token), tokenExpiry(token, windowMs), opts.now)) {
    throw new PlushlinkError('PLK_E_REPLAY', 'connect token nonce already used');
  }
  return token;
}

/** [PLK-3.5] The replay-cache key of a token: endpoint id and nonce. */
export function tokenReplayKey(token: ConnectToken): string {
  return `${token.endpointId}:${toHex(token.nonce)}`;
}

/** [PLK-3.5] A nonce must be remembered until its token leaves the timestamp window. */
export function tokenExpiry(token: ConnectToken, windowMs = DEFAULT_TOKEN_WINDOW_MS): number {
  return token.timestamp + windowMs;
}

/** [PLK-3.2] The gateway's proof, bound to the endpoint's token nonce. */
export function createGatewayProof(opts: {
  gateway: PrivateIdentity;
  endpointId: EndpointId;
  nonce: Uint8Array;
  now: number;
  crypto?: CryptoSuite;
}): Uint8Array {
  if (opts.nonce.length !== NONCE_BYTES) throw new PlushlinkError('PLK_E_FIELD', 'nonce must be 16 bytes');
  const w = new ByteWriter(PROOF_BYTES);
  w.u8(MSG.PROOF).u8(PROTOCOL_VERSION).raw(idToBytes(opts.gateway.id)).raw(idToBytes(opts.endpointId));
  w.raw(opts.nonce).u64(Math.floor(opts.now));
  const body = w.bytes.subarray(0, w.offset);
  w.raw(signBody(opts.crypto ?? defaultCrypto(), opts.gateway.signSeed, CONTEXT.PROOF, body));
  return w.bytes;
}

export function decodeGatewayProof(bytes: Uint8Array): GatewayProof {
  fixedSize(bytes, PROOF_BYTES, 'gateway proof');
  const r = new ByteReader(bytes);
  checkHeader(r, MSG.PROOF, 'gateway proof');
  const gatewayId = idFromBytes(r.raw(ID_BYTES, 'gateway id'));
  const endpointId = idFromBytes(r.raw(ID_BYTES, 'endpoint id'));
  const nonce = r.raw(NONCE_BYTES, 'nonce');
  const timestamp = r.u64('timestamp');
  const bodyEnd = r.offset;
  const signature = r.raw(SIGNATURE_BYTES, 'signature');
  r.end('gateway proof');
  return { gatewayId, endpointId, nonce, timestamp, signature, body: bytes.subarray(0, bodyEnd) };
}

/** [PLK-3.6] The endpoint checks the proof before it sends anything but its inbox subscription. */
export function verifyGatewayProof(
  bytes: Uint8Array,
  opts: {
    gatewayId: EndpointId;
    gatewaySignPublicKey: Uint8Array;
    endpointId: EndpointId;
    nonce: Uint8Array;
    crypto?: CryptoSuite;
  },
): GatewayProof {
  assertBytes(opts.nonce, 'nonce');
  const proof = decodeGatewayProof(bytes);
  if (proof.gatewayId !== opts.gatewayId) throw new PlushlinkError('PLK_E_WRONG_GATEWAY');
  if (proof.endpointId !== opts.endpointId) throw new PlushlinkError('PLK_E_WRONG_ENDPOINT');
  if (!bytesEqual(proof.nonce, opts.nonce)) throw new PlushlinkError('PLK_E_NONCE_MISMATCH');
  verifyBody(
    opts.crypto ?? defaultCrypto(),
    opts.gatewaySignPublicKey,
    CONTEXT.PROOF,
    proof.body,
    proof.signature,
    'gateway proof',
  );
  return proof;
}

/**
 * [PLK-3.5] Remembers nonces until their token could no longer pass the timestamp check.
 * Implementations may be shared between gateway nodes; this one is in-process and bounded.
 */
export interface NonceReplayCache {
  /** Records `key` until `expiresAt`; false when it is already present or the cache is full. */
  add(key: string, expiresAt: number, now: number): boolean;
}

/** fresh: recorded now; replay: seen and unexpired; full: no room, refused (fail closed). */
export type NonceOutcome = 'fresh' | 'replay' | 'full';

/** Bounded in-memory replay cache; fails closed (refuses) when full of unexpired nonces. */
export class MemoryNonceCache implements NonceReplayCache {
  private readonly entries = new Map<string, number>();
  constructor(readonly capacity = 200_000) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
  }
  get size(): number {
    return this.entries.size;
  }
  add(key: string, expiresAt: number, now: number): boolean {
    return this.record(key, expiresAt, now) === 'fresh';
  }
  /** Like add(), but tells a replayed nonce apart from a full cache. */
  record(key: string, expiresAt: number, now: number): NonceOutcome {
    const seen = this.entries.get(key);
    if (seen !== undefined && seen >= now) return 'replay';
    if (seen === undefined && this.entries.size >= this.capacity) {
      this.sweep(now);
      if (this.entries.size >= this.capacity) return 'full';
    }
    this.entries.delete(key);
    this.entries.set(key, expiresAt);
    return 'fresh';
  }
  /** Drops every expired entry; runs only when the cache is full. */
  sweep(now: number): void {
    for (const [k, exp] of this.entries) if (exp < now) this.entries.delete(k);
  }
}
