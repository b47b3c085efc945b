// Connect authentication: MQTT username/client id/password → a verified endpoint, or a refusal reason and CONNACK code [PLK-3].
import type { CryptoSuite } from '../shared/crypto.ts';
import { isPlushlinkError } from '../shared/errors.ts';
import { isEndpointId } from '../shared/identity.ts';
import { TOKEN_BYTES } from '../shared/limits.ts';
import {
  type ConnectToken,
  decodeConnectToken,
  tokenExpiry,
  tokenReplayKey,
  verifyConnectToken,
} from '../shared/token.ts';
import type { EndpointId } from '../shared/types.ts';
import type { EndpointRecord, GatewayStore, NonceOutcome, NonceStore } from './interfaces.ts';

/**
 * [PLK-12.6] Why a connection was refused, its CONNACK code, and what it means: the audit detail
 * and metric label of every refusal. docs/PROTOCOL.md lists the same table (a test keeps them in
 * sync). Credential problems (missing, malformed, stale, replayed, wrongly signed or addressed
 * tokens) are 4; an id the gateway does not (or no longer) serve and a session shape we do not
 * offer are 5; a client id that is not the username is 2; a gateway that cannot check freshness
 * (full nonce cache, store failure) fails closed with 3.
 */
export const AUTH_REASONS = {
  'protocol-version': { connack: 1, meaning: 'not MQTT 3.1.1 (protocol level 4)' },
  anonymous: { connack: 4, meaning: 'no username or no password' },
  'bad-username': { connack: 4, meaning: 'the username is not an endpoint id' },
  'client-id-mismatch': { connack: 2, meaning: 'the client id is not the username' },
  'persistent-session': { connack: 5, meaning: 'clean session was not requested' },
  will: { connack: 5, meaning: 'the CONNECT carries a will message' },
  'malformed-token': { connack: 4, meaning: 'the password is not a well-formed connect token' },
  'unknown-id': { connack: 5, meaning: 'the endpoint is not registered' },
  revoked: { connack: 5, meaning: 'the endpoint is revoked' },
  'wrong-gateway': { connack: 4, meaning: 'the token is bound to another gateway' },
  'wrong-endpoint': { connack: 4, meaning: 'the token is bound to another endpoint' },
  stale: { connack: 4, meaning: 'the token time is outside the window' },
  'bad-signature': { connack: 4, meaning: 'the token signature does not verify' },
  replay: { connack: 4, meaning: 'the token nonce was used before' },
  'nonce-quota': { connack: 3, meaning: 'the endpoint holds its quota of unexpired nonces' },
  'nonce-store-full': { connack: 3, meaning: 'the replay cache is full (fail closed)' },
  'store-error': { connack: 3, meaning: 'the registry could not be read (fail closed)' },
  'rate-limited': { connack: 3, meaning: 'too many connects from this address (not audited)' },
} as const satisfies Record<string, { connack: ConnackCode; meaning: string }>;

/** Why a connection was refused; used as audit detail and metric label. */
export type AuthReason = keyof typeof AUTH_REASONS;

/** MQTT 3.1.1 CONNACK return codes: 1 unacceptable protocol version, 2 identifier rejected, 3 server unavailable, 4 bad user name or password, 5 not authorized. */
export type ConnackCode = 1 | 2 | 3 | 4 | 5;

/** CONNACK code per refusal reason [PLK-12.6]. */
export const AUTH_RETURN_CODES: Readonly<Record<AuthReason, ConnackCode>> = Object.fromEntries(
  Object.entries(AUTH_REASONS).map(([reason, r]) => [reason, r.connack]),
) as Record<AuthReason, ConnackCode>;

/** base64url without padding of a 130-byte token is 174 characters. */
const TOKEN_B64_CHARS = Math.ceil((TOKEN_BYTES * 4) / 3);
const B64URL_RE = /^[A-Za-z0-9_-]+$/;

/**
 * [PLK-3.1] The MQTT password is the 130 raw token bytes; clients that can only send UTF-8 text
 * (e.g. `mosquitto_pub -P`) may send the base64url text (no padding, 174 chars) of those bytes.
 * Returns the raw token, or null when the password is neither form.
 */
export function decodePassword(password: Uint8Array): Uint8Array | null {
  if (password.length === TOKEN_BYTES) return password;
  if (password.length !== TOKEN_B64_CHARS) return null;
  const text = Buffer.from(password.buffer, password.byteOffset, password.length).toString('latin1');
  if (!B64URL_RE.test(text)) return null;
  const raw = Buffer.from(text, 'base64url');
  return raw.length === TOKEN_BYTES ? new Uint8Array(raw) : null;
}

export interface AuthContext {
  readonly gatewayId: EndpointId;
  readonly store: GatewayStore;
  readonly nonces: NonceStore;
  readonly crypto: CryptoSuite;
  readonly tokenWindowMs: number;
}

export interface ConnectAttempt {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Uint8Array | undefined;
  readonly clean: boolean;
  readonly hasWill: boolean;
  readonly now: number;
}

export type AuthResult =
  | { readonly ok: true; readonly endpoint: EndpointRecord; readonly token: ConnectToken }
  | { readonly ok: false; readonly reason: AuthReason; readonly endpoint?: EndpointId | undefined };

const refuse = (reason: AuthReason, endpoint?: EndpointId): AuthResult => ({ ok: false, reason, endpoint });

/**
 * [PLK-3.3..3.5] Checks, cheapest first: credentials present, username is an endpoint id and equals
 * the client id, session shape, token structure, registry (unknown / revoked), token binding,
 * timestamp window and signature, then the nonce (only a correctly signed token may occupy the
 * replay cache).
 */
export async function authenticateConnect(ctx: AuthContext, attempt: ConnectAttempt): Promise<AuthResult> {
  const { username, password } = attempt;
  if (username === undefined || username === '' || password === undefined || password.length === 0) {
    return refuse('anonymous');
  }
  if (!isEndpointId(username)) return refuse('bad-username');
  const id = username;
  if (attempt.clientId !== id) return refuse('client-id-mismatch', id);
  // The store is the only session state: no broker-side persistent sessions, no wills.
  if (!attempt.clean) return refuse('persistent-session', id);
  if (attempt.hasWill) return refuse('will', id);
  const raw = decodePassword(password);
  if (!raw) return refuse('malformed-token', id);
  try {
    decodeConnectToken(raw);
  } catch {
    return refuse('malformed-token', id);
  }
  let endpoint: EndpointRecord | undefined;
  try {
    endpoint = await ctx.store.getEndpoint(id);
  } catch {
    return refuse('store-error', id);
  }
  if (!endpoint) return refuse('unknown-id', id);
  if (endpoint.revoked) return refuse('revoked', id);
  let token: ConnectToken;
  try {
    token = verifyConnectToken(raw, {
      gatewayId: ctx.gatewayId,
      endpointId: id,
      signPublicKey: endpoint.signPublicKey,
      now: attempt.now,
      windowMs: ctx.tokenWindowMs,
      crypto: ctx.crypto,
    });
  } catch (err) {
    if (isPlushlinkError(err, 'PLK_E_WRONG_GATEWAY')) return refuse('wrong-gateway', id);
    if (isPlushlinkError(err, 'PLK_E_WRONG_ENDPOINT')) return refuse('wrong-endpoint', id);
    if (isPlushlinkError(err, 'PLK_E_STALE')) return refuse('stale', id);
    if (isPlushlinkError(err, 'PLK_E_BAD_SIGNATURE')) return refuse('bad-signature', id);
    return refuse('malformed-token', id);
  }
  // [PLK-3.5] Nonce freshness, after the signature.
  let outcome: NonceOutcome;
  try {
    outcome = await ctx.nonces.add(
      tokenReplayKey(token),
      id,
      tokenExpiry(token, ctx.tokenWindowMs),
      attempt.now,
    );
  } catch {
    return refuse('nonce-store-full', id);
  }
  if (outcome === 'replay') return refuse('replay', id);
  if (outcome === 'quota') return refuse('nonce-quota', id);
  if (outcome === 'full') return refuse('nonce-store-full', id);
  return { ok: true, endpoint, token };
}
