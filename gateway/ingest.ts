// Clip and receipt ingest: the ordered acceptance checks of a publish, ending in the durable store write [PLK-12.1].
import { toHex } from '../shared/bytes.ts';
import type { CryptoSuite } from '../shared/crypto.ts';
import { LIMITS, MSG, RECEIPT_BYTES } from '../shared/limits.ts';
import { decodeReceipt, type Receipt, verifyReceipt } from '../shared/receipt.ts';
import type { EndpointId } from '../shared/types.ts';
import {
  type ClipObject,
  type ClipVersion,
  clipVersion,
  clipVersionByte,
  DEFAULT_PROTOCOL_VERSIONS,
  ENVELOPE_V1,
  parseProtocolVersions,
} from '../shared/versions.ts';
import type {
  AcceptOptions,
  ClipRecord,
  EndpointRecord,
  FamilyId,
  GatewayStore,
  RateLimiter,
} from './interfaces.ts';

/**
 * [PLK-12.6] Why a publish was refused, and what it means: the audit detail and metric label of
 * every refusal (the connection is then closed). docs/PROTOCOL.md lists the same table (a test
 * keeps them in sync). Listed in the order of the checks [PLK-12.1]; store-error can happen at any
 * store step.
 */
export const INGEST_REASONS = {
  topic: "not one of the connection's own clip, relay or rcpt topics",
  retain: 'the retain flag is set',
  qos: 'QoS 2 was requested',
  size: 'the envelope is larger than the limit',
  version: 'the envelope is of a protocol version this gateway is not configured to accept',
  malformed: 'the envelope does not decode within the limits',
  sender: "the envelope sender is not the connection's endpoint",
  'clip-time': 'the creation time is ahead of the gateway clock or older than the age limit',
  'rate-clips': "the endpoint's clip rate is exceeded",
  'rate-bytes': "the endpoint's byte rate is exceeded",
  'sender-revoked': 'the publishing endpoint, or the relayed sender, is revoked',
  'no-family': 'the publishing endpoint belongs to no family',
  'relay-not-family': "a relayed envelope's sender is not in the relaying endpoint's family",
  'not-family': "a recipient is not in the sender's family",
  'recipient-revoked': 'a recipient is revoked',
  'bad-signature': "the envelope signature does not verify with the sender's registered key",
  replay: 'the sequence number is not above the last accepted one',
  duplicate: 'the clip id was used before with another sequence number',
  'store-error': 'the store could not be read or written (nothing acknowledged)',
  'receipt-malformed': 'the receipt does not decode',
  'receipt-recipient': "the receipt is not signed for the connection's endpoint",
  'receipt-time': 'the receipt time is ahead of the gateway clock or older than the age limit',
  'rate-receipts': "the endpoint's receipt rate is exceeded",
  'receipt-bad-signature': 'the receipt signature does not verify',
  'receipt-unknown': 'no delivery of that clip to this recipient exists',
} as const;

/** Why a publish was refused; used as audit detail and metric label. */
export type IngestReason = keyof typeof INGEST_REASONS;

export interface IngestContext {
  readonly store: GatewayStore;
  readonly crypto: CryptoSuite;
  /** Clips per endpoint (cost 1 per clip). */
  readonly clipLimiter: RateLimiter;
  /** Envelope bytes per endpoint (cost = envelope size). */
  readonly byteLimiter: RateLimiter;
  /** Receipts per endpoint (cost 1 per receipt); unlimited when absent. */
  readonly receiptLimiter?: RateLimiter;
  readonly maxEnvelopeBytes: number;
  /** Hot-path registry cache; without one every clip reads the store. */
  readonly registry?: RegistryCache;
  /** Observes store latency (seconds) per operation. */
  readonly observeStore?: (op: string, seconds: number) => void;
  /** [PLK-9.3] How far a clip's creation time or a receipt's time may be ahead of the gateway's clock; default 60 s. */
  readonly clockSkewMs?: number;
  /** [PLK-9.3] How old they may be; default 7 days (the undelivered-clip retention). */
  readonly maxAgeMs?: number;
  /** [PLK-14.7] Clip-object versions accepted (see acceptedVersions); only version 1 when absent. */
  readonly protocolVersions?: ReadonlySet<number>;
  /** [PLK-12.9] Clips in transit (gateway/transit.ts), set once the gateway has made them; absent: none. */
  transit?: TransitReceipts;
}

/** [PLK-12.9] Where a receipt for a clip still in transit (forwarded, not yet committed) goes. */
export interface TransitReceipts {
  /**
   * Undefined: that clip is not in transit, record the receipt as usual. Otherwise resolves once
   * the clip's commit has settled: true when the receipt was part of that durable commit (nothing
   * else to store), false when it must still be recorded as usual.
   */
  receipt(
    recipient: EndpointId,
    sender: EndpointId,
    clipId: string,
    opened: boolean,
  ): Promise<boolean> | undefined;
}

const V1_ONLY: ReadonlySet<number> = acceptedVersions(DEFAULT_PROTOCOL_VERSIONS);

/**
 * [PLK-14.7] The set of clip-object versions a gateway accepts, from its configuration (default:
 * version 1 only). Throws RangeError for an unknown version, a duplicate or an empty list.
 */
export function acceptedVersions(versions: readonly number[] | undefined): ReadonlySet<number> {
  return new Set(parseProtocolVersions(versions ?? DEFAULT_PROTOCOL_VERSIONS));
}

export const DEFAULT_CLOCK_SKEW_MS = 60_000;
export const DEFAULT_MAX_AGE_MS = 7 * 86_400_000;

export type ClipOutcome =
  | {
      readonly kind: 'accepted';
      readonly clip: ClipObject;
      readonly clipId: string;
      readonly recipients: readonly EndpointId[];
    }
  /** [PLK-8.2] A resend of a clip already stored: acknowledge again, forward nothing. */
  | { readonly kind: 'retransmit'; readonly clipId: string }
  | { readonly kind: 'refused'; readonly reason: IngestReason; readonly detail?: string };

const refusedClip = (reason: IngestReason, detail?: string): Extract<ClipOutcome, { kind: 'refused' }> => ({
  kind: 'refused',
  reason,
  detail,
});

async function timed<T>(ctx: IngestContext, op: string, fn: () => Promise<T>): Promise<T> {
  if (!ctx.observeStore) return fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    ctx.observeStore(op, (performance.now() - t0) / 1000);
  }
}

/**
 * Cache of registry reads on the hot path (sender record, family members). An entry is current for
 * `ttlMs` after its read, as before; and for as long as the registry change feed is being tailed
 * (`confirm`, called by RegistryWatch each time it has read the feed to its end), because every
 * change that could make a record stale (revoked, erased, member-added: PLK-12.7) is in that feed
 * and `invalidate`s its entries. So a revocation made by the admin CLI in another process takes
 * effect for clips within one watch interval, and within `ttlMs` of the last good poll if the watch
 * stops. An endpoint not registered (`undefined`) is current for `ttlMs` only: provisioning is not
 * a registry change. A read that an invalidation overtook is not cached. Measured at ~250 clips/s
 * with 400 toys (docs/LOADTEST.md): with the plain 1 s TTL every toy's clip missed, and the
 * endpoint read was ~4 % of the gateway's CPU. Connects always read the registry.
 */
export class RegistryCache {
  private readonly endpoints = new Map<EndpointId, { rec: EndpointRecord | undefined; at: number }>();
  private readonly families = new Map<FamilyId, { members: EndpointRecord[]; at: number }>();
  /** Bumped by every invalidation: a read that started before one is not cached. */
  private generation = 0;
  /** When the change feed was last read to its end (`confirm`), clock ms. */
  private confirmedAt = Number.NEGATIVE_INFINITY;
  constructor(
    private readonly store: GatewayStore,
    readonly ttlMs = 1000,
    private readonly maxEntries = 100_000,
  ) {}

  /**
   * [PLK-12.7] The change feed was read to its end by a poll that started at `at` (clock ms), and
   * each change in it invalidated: the entries cached now are current while this is recent.
   */
  confirm(at: number): void {
    if (at > this.confirmedAt) this.confirmedAt = at;
  }

  private current(at: number, now: number, registered: boolean): boolean {
    if (now - at >= 0 && now - at < this.ttlMs) return true;
    return registered && now - this.confirmedAt >= 0 && now - this.confirmedAt < this.ttlMs;
  }

  async endpoint(id: EndpointId, now: number): Promise<EndpointRecord | undefined> {
    const hit = this.endpoints.get(id);
    if (hit && this.current(hit.at, now, hit.rec !== undefined)) return hit.rec;
    const gen = this.generation;
    const rec = await this.store.getEndpoint(id);
    if (gen !== this.generation) return rec;
    if (this.endpoints.size >= this.maxEntries) this.endpoints.clear();
    this.endpoints.set(id, { rec, at: now });
    return rec;
  }

  async members(family: FamilyId, now: number): Promise<EndpointRecord[]> {
    const hit = this.families.get(family);
    if (hit && this.current(hit.at, now, hit.members.length > 0)) return hit.members;
    const gen = this.generation;
    const members = await this.store.familyMembers(family);
    if (gen !== this.generation) return members;
    if (this.families.size >= this.maxEntries) this.families.clear();
    this.families.set(family, { members, at: now });
    return members;
  }

  /** [PLK-12.7] A registry change: the next read of this endpoint and family goes to the store. */
  invalidate(endpoint: EndpointId | null, family: FamilyId | null): void {
    this.generation++;
    if (endpoint) this.endpoints.delete(endpoint);
    if (family) this.families.delete(family);
    // An erased endpoint's family is unknown here: its members' cached lists may still name it.
    if (endpoint && !family)
      for (const [f, e] of this.families)
        if (e.members.some((m) => m.id === endpoint)) this.families.delete(f);
  }
}

/** A clip that passed every check before the store write. */
export interface PreparedClip {
  readonly kind: 'prepared';
  readonly clip: ClipObject;
  readonly clipId: string;
  readonly recipients: readonly EndpointId[];
  readonly record: ClipRecord;
}

/**
 * [PLK-12.1] Acceptance checks of a clip envelope published by `endpoint`, in order: size limit,
 * a protocol version this gateway accepts [PLK-14.7], structural decode within limits, sender = the connection's endpoint (skipped on relay),
 * per-endpoint clip and byte rate limits, the publisher not revoked and in a family, on relay the
 * sender a non-revoked member of that family [PLK-4.5], recipients ⊆ the sender's family (no
 * revoked member), signature with the sender's registered key. The first failing check gives the
 * reason. The store write is `commitClip`.
 */
export async function prepareClip(
  ctx: IngestContext,
  endpoint: EndpointRecord,
  payload: Uint8Array,
  now: number,
  opts: { relay?: boolean } = {},
): Promise<PreparedClip | Extract<ClipOutcome, { kind: 'refused' }>> {
  // [PLK-9.1] size first: nothing larger is even looked at.
  if (payload.length > Math.min(ctx.maxEnvelopeBytes, LIMITS.maxEnvelopeBytes)) {
    return refusedClip('size', `${payload.length} bytes`);
  }
  // [PLK-14.7] a known version the gateway is not configured for is refused by name; an unknown
  // version byte is left to the v1 decoder, which refuses it as malformed (PLK_E_VERSION).
  const versionByte = clipVersionByte(payload);
  const known = versionByte === undefined ? undefined : clipVersion(versionByte);
  const accepted = ctx.protocolVersions ?? V1_ONLY;
  if (known && !accepted.has(known.version)) {
    return refusedClip('version', `version ${known.version}; accepted: ${[...accepted].join(',')}`);
  }
  const module: ClipVersion = known ?? ENVELOPE_V1;
  let clip: ClipObject;
  try {
    clip = module.decode(payload);
  } catch (err) {
    return refusedClip('malformed', err instanceof Error ? err.message : undefined);
  }
  const h = clip.header;
  // [PLK-4.5] on the relay topic the sender is another member of the relaying endpoint's family.
  if (!opts.relay && h.sender !== endpoint.id) return refusedClip('sender');
  // [PLK-9.3] no clip from the future, none older than retention would keep it.
  if (!withinWindow(ctx, h.createdAt, now)) return refusedClip('clip-time', `created at ${h.createdAt}`);
  // [PLK-9.2] rate limits, per endpoint.
  if (!(await ctx.clipLimiter.take(endpoint.id, 1, now))) return refusedClip('rate-clips');
  if (!(await ctx.byteLimiter.take(endpoint.id, payload.length, now))) return refusedClip('rate-bytes');
  // Registry state may have changed since the connection was authenticated.
  const registry = ctx.registry ?? new RegistryCache(ctx.store, 0);
  let publisher: EndpointRecord | undefined;
  let members: EndpointRecord[];
  try {
    publisher = await registry.endpoint(endpoint.id, now);
    if (!publisher || publisher.revoked) return refusedClip('sender-revoked');
    if (publisher.familyId === null) return refusedClip('no-family');
    members = await registry.members(publisher.familyId, now);
  } catch (err) {
    return refusedClip('store-error', err instanceof Error ? err.message : undefined);
  }
  const byId = new Map(members.map((m) => [m.id, m]));
  const sender = opts.relay ? byId.get(h.sender) : publisher;
  if (!sender) return refusedClip('relay-not-family');
  if (sender.revoked) return refusedClip('sender-revoked');
  const recipients: EndpointId[] = [];
  for (const r of h.recipients) {
    const m = byId.get(r.id);
    if (!m) return refusedClip('not-family');
    if (m.revoked) return refusedClip('recipient-revoked');
    recipients.push(r.id);
  }
  // [PLK-5.5] signature with the sender's registered key (never a key from the envelope).
  try {
    module.verify(clip, sender.signPublicKey, ctx.crypto);
  } catch {
    return refusedClip('bad-signature');
  }
  // [PLK-14.9] stored (and receipted) under the object's store id: v1 the clip id, v2 the chunk's delivery id.
  const clipId = toHex(clip.storeId);
  const record: ClipRecord = {
    sender: h.sender,
    clipId,
    sequence: h.sequence,
    createdAt: h.createdAt,
    receivedAt: now,
    envelope: payload,
  };
  return { kind: 'prepared', clip, clipId, recipients, record };
}

/**
 * The atomic store write, which also enforces the strictly increasing sequence [PLK-8.1] and unique
 * clip ids [PLK-8.2]. `store.acceptClip` is called synchronously (before the first await), so calls
 * made in order reach the store in order; `accepted` resolves only once the write is durable [PLK-12.3].
 */
export async function commitClip(
  ctx: IngestContext,
  prepared: PreparedClip,
  opts?: AcceptOptions,
): Promise<ClipOutcome> {
  let result: Awaited<ReturnType<GatewayStore['acceptClip']>>;
  try {
    result = await timed(ctx, 'acceptClip', () =>
      ctx.store.acceptClip(prepared.record, prepared.recipients, opts),
    );
  } catch (err) {
    return refusedClip('store-error', err instanceof Error ? err.message : undefined);
  }
  if (!result.ok) {
    return refusedClip(
      result.reason,
      result.reason === 'replay' ? `sequence ${prepared.record.sequence}` : prepared.clipId,
    );
  }
  if (result.retransmit) return { kind: 'retransmit', clipId: prepared.clipId };
  return { kind: 'accepted', clip: prepared.clip, clipId: prepared.clipId, recipients: prepared.recipients };
}

/** prepareClip then commitClip. */
export async function ingestClip(
  ctx: IngestContext,
  endpoint: EndpointRecord,
  payload: Uint8Array,
  now: number,
): Promise<ClipOutcome> {
  const prepared = await prepareClip(ctx, endpoint, payload, now);
  return prepared.kind === 'prepared' ? commitClip(ctx, prepared) : prepared;
}

export type ReceiptOutcome =
  /** The delivery was recorded; the receipt is forwarded to the clip's sender. */
  | { readonly kind: 'delivered'; readonly receipt: Receipt }
  /** This recipient receipted the clip before (a resend): acknowledged, not forwarded again. */
  | { readonly kind: 'already'; readonly receipt: Receipt }
  /** [PLK-6.3] The recipient cannot open the clip: its delivery is set aside and the sender told. */
  | { readonly kind: 'set-aside'; readonly receipt: Receipt }
  | { readonly kind: 'refused'; readonly reason: IngestReason };

/**
 * [PLK-6.2] A receipt published by `endpoint`, checked in order: well-formed, signed for the
 * connection's own endpoint, time within the window [PLK-9.3], receipt rate, the endpoint not
 * revoked, signature; then the delivery must exist for this recipient [PLK-6.2]. An
 * "unopenable" receipt [PLK-6.3] sets the delivery aside instead of marking it done.
 */
export async function ingestReceipt(
  ctx: IngestContext,
  endpoint: EndpointRecord,
  payload: Uint8Array,
  now: number,
): Promise<ReceiptOutcome> {
  if (payload.length !== RECEIPT_BYTES || (payload[0] !== MSG.RECEIPT && payload[0] !== MSG.UNOPENABLE))
    return { kind: 'refused', reason: 'receipt-malformed' };
  let receipt: Receipt;
  try {
    receipt = decodeReceipt(payload);
  } catch {
    return { kind: 'refused', reason: 'receipt-malformed' };
  }
  if (receipt.recipient !== endpoint.id) return { kind: 'refused', reason: 'receipt-recipient' };
  if (!withinWindow(ctx, receipt.receivedAt, now)) return { kind: 'refused', reason: 'receipt-time' };
  if (ctx.receiptLimiter && !(await ctx.receiptLimiter.take(endpoint.id, 1, now))) {
    return { kind: 'refused', reason: 'rate-receipts' };
  }
  try {
    const current = await (ctx.registry ?? new RegistryCache(ctx.store, 0)).endpoint(endpoint.id, now);
    if (!current || current.revoked) return { kind: 'refused', reason: 'sender-revoked' };
  } catch {
    return { kind: 'refused', reason: 'store-error' };
  }
  try {
    verifyReceipt(payload, endpoint.signPublicKey, ctx.crypto);
  } catch {
    return { kind: 'refused', reason: 'receipt-bad-signature' };
  }
  const clipId = toHex(receipt.clipId);
  try {
    const inTransit = ctx.transit?.receipt(endpoint.id, receipt.sender, clipId, receipt.status === 'opened');
    if (inTransit && (await inTransit)) return { kind: 'delivered', receipt };
    if (receipt.status === 'unopenable') {
      const aside = await timed(ctx, 'setAside', () =>
        ctx.store.setAside(endpoint.id, receipt.sender, clipId, now),
      );
      if (aside) return { kind: 'set-aside', receipt };
    }
    const mark = await timed(ctx, 'markDelivered', () =>
      ctx.store.markDelivered(endpoint.id, receipt.sender, clipId, now),
    );
    if (mark === 'unknown') return { kind: 'refused', reason: 'receipt-unknown' };
    return { kind: mark, receipt };
  } catch {
    return { kind: 'refused', reason: 'store-error' };
  }
}

/** [PLK-9.3] A clip's creation time or a receipt's time: not ahead of `now` by more than the skew, not older than the age limit. */
export function withinWindow(
  ctx: Pick<IngestContext, 'clockSkewMs' | 'maxAgeMs'>,
  t: number,
  now: number,
): boolean {
  return (
    t <= now + (ctx.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS) && t >= now - (ctx.maxAgeMs ?? DEFAULT_MAX_AGE_MS)
  );
}
