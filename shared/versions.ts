// Protocol version registry: the version byte of a clip object → the module that decodes, verifies and bounds it [PLK-11.1] [PLK-14.1].

import { CHUNKED_CLIP_VERSION } from './chunked.ts';
import type { CryptoSuite } from './crypto.ts';
import { decodeClip, describeClip } from './envelope.ts';
import { PlushlinkError } from './errors.ts';
import { CONTEXT, LIMITS, MSG, PROTOCOL_VERSION } from './limits.ts';
import { verifyBody } from './signed.ts';
import type { EndpointId } from './types.ts';

/** The header fields every version of a clip object has (what a gateway checks and routes on). */
export interface ClipObjectHeader {
  readonly version: number;
  readonly sender: EndpointId;
  /** The clip's random 16-byte id. */
  readonly clipId: Uint8Array;
  /** Per-sender sequence number [PLK-8.1]. */
  readonly sequence: number;
  readonly createdAt: number;
  /** Audio this object carries, ms (v1: the clip; v2: the chunk). */
  readonly durationMs: number;
  readonly recipients: readonly { readonly id: EndpointId }[];
}

/** A structurally decoded clip object of any version; its signature is not verified yet. */
export interface ClipObject {
  readonly header: ClipObjectHeader;
  /** Every byte the signature covers (after its context prefix) [PLK-2.3]. */
  readonly signed: Uint8Array;
  readonly signature: Uint8Array;
  readonly size: number;
  /**
   * The 16 bytes the gateway stores the object under and recipients receipt it with [PLK-6.1]:
   * v1 the clip id, v2 the chunk's delivery id [PLK-14.9].
   */
  readonly storeId: Uint8Array;
}

/**
 * One protocol version of the clip object (type 0x01). A new version is a new module implementing
 * this and one entry in VERSION_MODULES below; the existing modules are not touched.
 */
export interface ClipVersion {
  /** The version byte (byte 1 of the object) [PLK-2.2]. */
  readonly version: number;
  readonly name: string;
  readonly status: 'stable' | 'experimental';
  /** Where docs/PROTOCOL.md specifies it. */
  readonly clause: string;
  /** Largest object a decoder of this version accepts [PLK-9.1]. */
  readonly maxObjectBytes: number;
  /** Structural decode within the version's limits; throws PlushlinkError. */
  decode(bytes: Uint8Array): ClipObject;
  /** Verifies the sender's signature; throws PLK_E_BAD_SIGNATURE. */
  verify(object: ClipObject, senderSignPublicKey: Uint8Array, crypto: CryptoSuite): void;
  /** Header fields as JSON-safe values, never secrets. */
  describe(object: ClipObject): Record<string, unknown>;
}

/** v1 [PLK-5]: shared/envelope.ts as it is, seen through the registry. */
export const ENVELOPE_V1: ClipVersion = {
  version: PROTOCOL_VERSION,
  name: 'clip envelope',
  status: 'stable',
  clause: 'PLK-5',
  maxObjectBytes: LIMITS.maxEnvelopeBytes,
  decode(bytes) {
    const clip = decodeClip(bytes);
    return { ...clip, storeId: clip.header.clipId };
  },
  verify(object, key, crypto) {
    // Exactly verifyClip [PLK-5.5]: the context of v1 envelopes over every byte before the signature.
    verifyBody(crypto, key, CONTEXT.CLIP, object.signed, object.signature, 'clip envelope');
  },
  describe(object) {
    return describeClip(decodeClip(bytesOf(object)));
  },
};

/** The signed bytes and the signature are the whole object, contiguous (every version ends with its signature). */
function bytesOf(object: ClipObject): Uint8Array {
  const s = object.signed;
  return new Uint8Array(s.buffer, s.byteOffset, object.size);
}

/** Every version this build speaks, by version byte. */
const VERSION_MODULES: readonly ClipVersion[] = [ENVELOPE_V1, CHUNKED_CLIP_VERSION];

/** Index of modules by version byte; a version listed twice is a programming error. */
function byVersion(modules: readonly ClipVersion[]): ReadonlyMap<number, ClipVersion> {
  const map = new Map<number, ClipVersion>();
  for (const m of modules) {
    if (map.has(m.version)) throw new RangeError(`clip object version ${m.version} is registered twice`);
    map.set(m.version, m);
  }
  return map;
}

export const CLIP_VERSIONS: ReadonlyMap<number, ClipVersion> = byVersion(VERSION_MODULES);

/** What a gateway accepts unless configured otherwise [PLK-14.7]. */
export const DEFAULT_PROTOCOL_VERSIONS: readonly number[] = [PROTOCOL_VERSION];

/** The module of a known clip-object version, or undefined. */
export function clipVersion(version: number): ClipVersion | undefined {
  return CLIP_VERSIONS.get(version);
}

/** The version byte of a clip object (type 0x01), or undefined for anything else [PLK-2.2]. */
export function clipVersionByte(bytes: Uint8Array): number | undefined {
  return bytes instanceof Uint8Array && bytes.length >= 2 && bytes[0] === MSG.CLIP ? bytes[1] : undefined;
}

/** Decodes a clip object of any known version; an unknown version byte is PLK_E_VERSION [PLK-11.1]. */
export function decodeClipObject(bytes: Uint8Array): ClipObject {
  const v = clipVersionByte(bytes);
  const module = v === undefined ? ENVELOPE_V1 : clipVersion(v);
  if (!module) throw new PlushlinkError('PLK_E_VERSION', `clip object version ${String(v)}`);
  return module.decode(bytes);
}

/**
 * A list of protocol versions (e.g. a gateway's `--protocol-versions 1,2`): integers this build
 * knows, no duplicates, at least one. Throws RangeError naming the offending value.
 */
export function parseProtocolVersions(input: string | readonly number[]): readonly number[] {
  const items =
    typeof input === 'string'
      ? input.split(',').map((s) => {
          const t = s.trim();
          if (!/^\d{1,3}$/.test(t)) throw new RangeError(`protocol version "${t}" is not an integer`);
          return Number(t);
        })
      : [...input];
  if (items.length === 0) throw new RangeError('at least one protocol version is needed');
  const seen = new Set<number>();
  for (const v of items) {
    if (!Number.isInteger(v) || !CLIP_VERSIONS.has(v)) {
      throw new RangeError(
        `protocol version ${String(v)} is unknown (known: ${[...CLIP_VERSIONS.keys()].join(', ')})`,
      );
    }
    if (seen.has(v)) throw new RangeError(`protocol version ${v} is listed twice`);
    seen.add(v);
  }
  return [...seen].sort((a, b) => a - b);
}
