// Connect token (endpoint → gateway) and gateway proof (gateway → endpoint), byte for byte [PLK-3].
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

/** [PLK-10.1] A fixed-size object: the length is checked first — longer is LIMIT, shorter TRUNCATED. */
function fixedSize(bytes: Uint8Array, size: number, what: string): void {
  if (!(bytes instanceof Uint8Array)) throw new PlushlinkError('PLK_E_TYPE', `${what} must be bytes`);
  if (bytes.length > size)
    throw new PlushlinkError('PLK_E_LIMIT', `${what} is ${bytes.length} bytes, max ${size}`);
  if (bytes.length < size)
    throw new PlushlinkError('PLK_E_TRUNCATED', `${what} is ${bytes.length} bytes, needs ${size}`);
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
 * [PLK-3.3..3.4] Verification, in this order: structure, gateway id, endpoint id (= MQTT
 * username and client id), timestamp window, signature. Nonce freshness [PLK-3.5] is the caller's
 * (`shared/` keeps no state): the gateway checks tokenReplayKey()/tokenExpiry() against its
 * NonceStore after this, so that only a correctly signed token may occupy the replay cache.
 */
export function verifyConnectToken(
  bytes: Uint8Array,
  opts: {
    gatewayId: EndpointId;
    endpointId: EndpointId;
    signPublicKey: Uint8Array;
    now: number;
    windowMs?: number;
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
