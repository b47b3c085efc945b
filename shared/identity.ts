// Endpoint identities: Ed25519 + X25519 key pairs, ids derived from the signing key, key file formats [PLK-1].
import { assertBytes, concatBytes, fromBase32, fromHex, toBase32, toHex, utf8 } from './bytes.ts';
import { type CryptoSuite, defaultCrypto, sha256 } from './crypto.ts';
import { PlushlinkError } from './errors.ts';
import { describeValue, isJsonObject, type JsonObject, parseJson } from './json.ts';
import { CONTEXT, ID_BYTES, ID_CHARS, KEY_BYTES, LIMITS } from './limits.ts';
import { systemRandom } from './random.ts';
import { type EndpointId, type RandomSource, ROLES, type Role } from './types.ts';

export interface PublicIdentity {
  readonly role: Role;
  readonly id: EndpointId;
  readonly signPublicKey: Uint8Array;
  readonly boxPublicKey: Uint8Array;
}

export interface PrivateIdentity extends PublicIdentity {
  readonly signSeed: Uint8Array;
  readonly boxSecret: Uint8Array;
}

const ID_PREFIX = utf8(`${CONTEXT.ID}\0`);

/** [PLK-1.2] id = base32(SHA-256("plushlink/v1/endpoint-id\0" || sign_pk)[0..20]). */
export function deriveEndpointId(signPublicKey: Uint8Array): EndpointId {
  assertBytes(signPublicKey, 'signPublicKey', KEY_BYTES);
  return toBase32(sha256(concatBytes(ID_PREFIX, signPublicKey)).subarray(0, ID_BYTES)) as EndpointId;
}

const ID_RE = /^[a-z2-7]{32}$/;

/** True for a syntactically valid id: 32 chars of [a-z2-7], never an MQTT wildcard or separator [PLK-1.2]. */
export function isEndpointId(value: unknown): value is EndpointId {
  return typeof value === 'string' && value.length === ID_CHARS && ID_RE.test(value);
}

export function parseEndpointId(value: unknown, field = 'id'): EndpointId {
  if (!isEndpointId(value))
    throw new PlushlinkError(
      'PLK_E_FIELD',
      `${field} must be a PlushLink endpoint id, got ${typeof value === 'string' ? 'another string' : describeValue(value)}`,
    );
  return value;
}

export function idToBytes(id: EndpointId): Uint8Array {
  return fromBase32(id, 'id');
}

export function idFromBytes(bytes: Uint8Array, field = 'id'): EndpointId {
  assertBytes(bytes, field, ID_BYTES);
  return toBase32(bytes) as EndpointId;
}

/** Builds an identity from its two 32-byte secrets (the only secret material an endpoint has). */
export function identityFromSecrets(
  role: Role,
  signSeed: Uint8Array,
  boxSecret: Uint8Array,
  crypto: CryptoSuite = defaultCrypto(),
): PrivateIdentity {
  assertBytes(signSeed, 'signSeed', KEY_BYTES);
  assertBytes(boxSecret, 'boxSecret', KEY_BYTES);
  if (!ROLES.includes(role))
    throw new PlushlinkError('PLK_E_FIELD', `role must be one of ${ROLES.join(', ')}`);
  const signPublicKey = crypto.signPublicKey(signSeed);
  return {
    role,
    id: deriveEndpointId(signPublicKey),
    signPublicKey,
    boxPublicKey: crypto.boxPublicKey(boxSecret),
    signSeed,
    boxSecret,
  };
}

/** [PLK-1.1] A new identity: 32 random bytes for each key. */
export function generateIdentity(
  role: Role,
  random: RandomSource = systemRandom,
  crypto: CryptoSuite = defaultCrypto(),
): PrivateIdentity {
  return identityFromSecrets(role, random(KEY_BYTES), random(KEY_BYTES), crypto);
}

export function publicPart(identity: PublicIdentity): PublicIdentity {
  return {
    role: identity.role,
    id: identity.id,
    signPublicKey: identity.signPublicKey,
    boxPublicKey: identity.boxPublicKey,
  };
}

/** [PLK-1.4] Public identity file (JSON). */
export function identityToJson(identity: PublicIdentity): string {
  return `${JSON.stringify(
    {
      plushlink: 'identity',
      v: 1,
      role: identity.role,
      id: identity.id,
      signPublicKey: toHex(identity.signPublicKey),
      boxPublicKey: toHex(identity.boxPublicKey),
    },
    null,
    2,
  )}\n`;
}

/** [PLK-1.4] Private key file (JSON, stored with mode 0600, never leaves the endpoint). */
export function privateKeyToJson(identity: PrivateIdentity): string {
  return `${JSON.stringify(
    {
      plushlink: 'private-key',
      v: 1,
      role: identity.role,
      id: identity.id,
      signSeed: toHex(identity.signSeed),
      boxSecret: toHex(identity.boxSecret),
    },
    null,
    2,
  )}\n`;
}

function parseJsonObject(text: string, limit: number, what: string): JsonObject {
  // Bounded and strict (size first, then depth, duplicate and prototype keys): see shared/json.ts.
  const value = parseJson(text, { what, maxBytes: limit, maxDepth: 4, code: 'PLK_E_KEY_FILE' });
  if (!isJsonObject(value)) {
    throw new PlushlinkError('PLK_E_KEY_FILE', `${what} must be a JSON object, got ${describeValue(value)}`);
  }
  return value;
}

function parseRole(value: unknown): Role {
  if (typeof value !== 'string' || !ROLES.includes(value as Role)) {
    throw new PlushlinkError(
      'PLK_E_KEY_FILE',
      `role must be one of ${ROLES.join(', ')}, got ${describeValue(value)}`,
    );
  }
  return value as Role;
}

function hexField(obj: JsonObject, name: string): Uint8Array {
  const v = obj[name];
  if (typeof v !== 'string')
    throw new PlushlinkError('PLK_E_KEY_FILE', `${name} must be a hex string, got ${describeValue(v)}`);
  return fromHex(v, name, KEY_BYTES);
}

/** The magic and version every key file starts with; never converts a parsed value to a string. */
function checkKind(obj: JsonObject, magic: string, what: string): void {
  if (obj.plushlink !== magic) {
    throw new PlushlinkError(
      'PLK_E_KEY_FILE',
      `not a PlushLink ${what}: plushlink must be "${magic}", got ${describeValue(obj.plushlink)}`,
    );
  }
  if (obj.v !== 1)
    throw new PlushlinkError('PLK_E_VERSION', `${what} v must be 1, got ${describeValue(obj.v)}`);
}

/** Parses and checks a public identity file: the id must derive from the signing key [PLK-1.2]. */
export function parseIdentityJson(text: string): PublicIdentity {
  const obj = parseJsonObject(text, LIMITS.identityFileBytes, 'identity file');
  checkKind(obj, 'identity', 'identity file');
  const role = parseRole(obj.role);
  const signPublicKey = hexField(obj, 'signPublicKey');
  const boxPublicKey = hexField(obj, 'boxPublicKey');
  const id = parseEndpointId(obj.id);
  if (deriveEndpointId(signPublicKey) !== id) throw new PlushlinkError('PLK_E_ID_MISMATCH', id);
  return { role, id, signPublicKey, boxPublicKey };
}

/** Parses a private key file and re-derives every public value from the secrets. */
export function parsePrivateKeyJson(text: string, crypto: CryptoSuite = defaultCrypto()): PrivateIdentity {
  const obj = parseJsonObject(text, LIMITS.keyFileBytes, 'key file');
  checkKind(obj, 'private-key', 'private key file');
  const identity = identityFromSecrets(
    parseRole(obj.role),
    hexField(obj, 'signSeed'),
    hexField(obj, 'boxSecret'),
    crypto,
  );
  if (obj.id !== undefined) {
    // Typed before it is shown: a valid id is 32 characters of [a-z2-7], anything else only by kind.
    const id = parseEndpointId(obj.id);
    if (id !== identity.id) throw new PlushlinkError('PLK_E_ID_MISMATCH', `${id} is not ${identity.id}`);
  }
  return identity;
}
