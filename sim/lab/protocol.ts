// The protocol lab's seam for protocol versions: what a version module provides, and the registry that `protocol.version` selects from.
import type { EncodedClip } from '../../device/codec/clip.ts';
import type { PrivateIdentity, PublicIdentity } from '../../shared/identity.ts';
import type { EndpointId, RandomSource } from '../../shared/types.ts';
import { configError } from './errors.ts';

/**
 * How the bytes of one wire message split up; the parts add up to the message length exactly.
 * opus: Opus packets; ogg: the Ogg container around them; header: every protocol field that is
 * not one of the others (ids, sequence, codec, nonces, lengths, MACs); sealedKeys: the content key
 * sealed to each recipient; signature; padding: filler up to the size bucket.
 */
export interface ByteParts {
  readonly opus: number;
  readonly ogg: number;
  readonly header: number;
  readonly sealedKeys: number;
  readonly signature: number;
  readonly padding: number;
}

export const PART_NAMES: readonly (keyof ByteParts)[] = [
  'opus',
  'ogg',
  'header',
  'sealedKeys',
  'signature',
  'padding',
];

/** The cryptographic work of making (and, mirrored, of opening) one message: drives the MCU cost model. */
export interface CryptoWork {
  /** Content keys sealed (one X25519 key pair and one shared secret each); an opener unseals one. */
  readonly sealedKeys: number;
  /** Bytes through crypto_secretbox. */
  readonly secretboxBytes: number;
  /** Bytes covered by signatures (hashed twice to sign, once to verify). */
  readonly signedBytes: number;
  readonly signatures: number;
}

export interface WireMessage {
  readonly bytes: Uint8Array;
  readonly parts: ByteParts;
  readonly work: CryptoWork;
  /**
   * Audio (ms from the clip's start) a recipient may play once this message and every one before
   * it have arrived and verified. v1: the whole clip on its only message; a chunked version: more
   * with each chunk (time to first audio comes from the first message with a value above 0).
   */
  readonly playableMs: number;
  /**
   * Audio (ms from the clip's start) that must be recorded before this message can be sealed and
   * sent: v1 the whole clip; a chunked version the end of the chunk (streamed while recording).
   */
  readonly readyAfterMs: number;
}

export interface SealedClip {
  /** In sending order; each is published as its own MQTT message. */
  readonly messages: readonly WireMessage[];
  /** What a receipt refers to. */
  readonly clipId: Uint8Array;
}

export interface SealInput {
  readonly pcm: Int16Array;
  readonly sampleRate: number;
  readonly durationMs: number;
  /**
   * The real encoder (with the config's settings): PCM → Ogg Opus. May be called once or per chunk;
   * `pageMs` bounds the audio per Ogg page (a chunked version cuts its chunks at pages).
   */
  readonly encode: (pcm: Int16Array, opts?: { readonly pageMs?: number }) => EncodedClip;
  readonly sender: PrivateIdentity;
  readonly recipients: readonly PublicIdentity[];
  readonly sequence: number;
  readonly createdAt: number;
  readonly random: RandomSource;
  readonly options: Readonly<Record<string, number | boolean | string>>;
}

export interface ConnectInput {
  readonly endpoint: PrivateIdentity;
  readonly gateway: PrivateIdentity;
  /** The endpoint's family, itself included (the roster's members). */
  readonly family: readonly { readonly identity: PublicIdentity; readonly role: 'toy' | 'parent' }[];
  readonly now: number;
  readonly random: RandomSource;
}

/** The wire objects of one authenticated connect [PLK-3]: password, the gateway's proof and the roster. */
export interface ConnectMessages {
  readonly token: Uint8Array;
  readonly proof: Uint8Array;
  readonly roster: Uint8Array;
}

export interface ProtocolTopics {
  readonly clip: (id: EndpointId) => string;
  readonly relay: (id: EndpointId) => string;
  readonly receipt: (id: EndpointId) => string;
  readonly inbox: (id: EndpointId) => string;
}

/** One protocol version as the lab sees it. A new version implements this and calls registerProtocol. */
export interface ProtocolModule {
  readonly version: number;
  /** One line for reports ("v1: one signed envelope per clip"). */
  readonly label: string;
  /** Validates protocol.* options other than `version`, filling defaults; throws configError naming the key. */
  parseOptions(raw: Readonly<Record<string, unknown>>): Readonly<Record<string, number | boolean | string>>;
  readonly topics: ProtocolTopics;
  /** Encodes (through `input.encode`) and seals one clip into real wire messages. */
  sealClip(input: SealInput): SealedClip;
  /** Opens the messages as `recipient` would (verifying everything) and returns the Ogg Opus streams to play in order. */
  openClip(clip: SealedClip, recipient: PrivateIdentity, sender: PublicIdentity): readonly Uint8Array[];
  /** The receipts `recipient` returns for `clip` from `sender`, each its own MQTT message (v1: one per clip). */
  receipts(
    clip: SealedClip,
    recipient: PrivateIdentity,
    sender: EndpointId,
    receivedAt: number,
  ): readonly Uint8Array[];
  connectMessages(input: ConnectInput): ConnectMessages;
}

const registry = new Map<number, ProtocolModule>();

/** Makes `protocol.version: N` available; a second module for the same version is a programming error. */
export function registerProtocol(module: ProtocolModule): void {
  const existing = registry.get(module.version);
  if (existing && existing !== module)
    throw new RangeError(`protocol version ${module.version} is already registered`);
  registry.set(module.version, module);
}

export function registeredVersions(): number[] {
  return [...registry.keys()].sort((a, b) => a - b);
}

/** The module for `version`, or a one-line refusal naming the versions this build has. */
export function protocolModule(version: number): ProtocolModule {
  const m = registry.get(version);
  if (!m) {
    throw configError(
      'protocol.version',
      `version ${version} is not available in this lab (available: ${registeredVersions().join(', ') || 'none'})`,
    );
  }
  return m;
}
