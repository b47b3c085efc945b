// Unit tests of clip and receipt ingest on real stores, token buckets and envelopes: every outcome, the [PLK-12.1] check order as a matrix of combined faults, and what a refusal leaves untouched.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type ClipOutcome,
  commitClip,
  type IngestContext,
  ingestClip,
  ingestReceipt,
  type PreparedClip,
  prepareClip,
  RegistryCache,
} from '../../gateway/ingest.ts';
import type { EndpointRecord, FamilyId, GatewayStore } from '../../gateway/interfaces.ts';
import { MemoryRateLimiter } from '../../gateway/limits.ts';
import { MemoryStore } from '../../gateway/store/memory.ts';
import { openSqliteStore } from '../../gateway/store/sqlite.ts';
import { toBase32, toHex } from '../../shared/bytes.ts';
import { defaultCrypto } from '../../shared/crypto.ts';
import { decodeClip, sealClip } from '../../shared/envelope.ts';
import { generateIdentity, type PrivateIdentity, type PublicIdentity } from '../../shared/identity.ts';
import { LIMITS } from '../../shared/limits.ts';
import { seededRandom } from '../../shared/random.ts';
import { createReceipt } from '../../shared/receipt.ts';
import type { EndpointId, RandomSource } from '../../shared/types.ts';

/** The injected "now" of every call (ms); nothing here reads the wall clock. */
const NOW = 1_700_000_000_000;
const CLIP_CAP = 5;
const BYTE_CAP = 1_000_000;
const RECEIPT_CAP = 5;

const rnd = seededRandom('test/gateway/ingest');
const crypto = defaultCrypto();

// Family F: a toy and two parents. Family G: two parents of another household. A registered loner without family.
const toy = generateIdentity('toy', rnd);
const mum = generateIdentity('parent', rnd);
const dad = generateIdentity('parent', rnd);
const stranger = generateIdentity('parent', rnd);
const strangerMate = generateIdentity('parent', rnd);
const loner = generateIdentity('toy', rnd);
const FAMILY_F = `f${toBase32(rnd(16))}` as FamilyId;
const FAMILY_G = `f${toBase32(rnd(16))}` as FamilyId;
const EVERYONE = [toy, mum, dad, stranger, strangerMate, loner];

/** A real sealed envelope, deterministic from the seeded stream (or `random`). */
function seal(
  sender: PrivateIdentity,
  recipients: readonly PublicIdentity[],
  sequence: number,
  random: RandomSource = rnd,
  createdAt = NOW - 1000,
): Uint8Array {
  return sealClip({
    sender,
    recipients,
    sequence,
    createdAt,
    durationMs: 1000,
    ogg: random(2000),
    random,
    crypto,
  });
}

function receiptOf(
  by: PrivateIdentity,
  envelope: Uint8Array,
  sender: EndpointId = toy.id,
  opts: { receivedAt?: number; status?: 'opened' | 'unopenable' } = {},
): Uint8Array {
  return createReceipt({
    recipient: by,
    sender,
    clipId: decodeClip(envelope).header.clipId,
    receivedAt: opts.receivedAt ?? NOW,
    ...(opts.status ? { status: opts.status } : {}),
    crypto,
  });
}

interface World {
  readonly store: GatewayStore;
  readonly clips: MemoryRateLimiter;
  readonly bytes: MemoryRateLimiter;
  readonly receipts: MemoryRateLimiter;
  ctx(over?: Partial<IngestContext>): IngestContext;
  /** The endpoint record as the gateway read it when the connection was authenticated. */
  record(who: PublicIdentity): Promise<EndpointRecord>;
}

/** Everything a refusal must leave untouched: sequences, pending deliveries, backlog. */
async function snapshot(store: GatewayStore): Promise<unknown> {
  const state: Record<string, { seq: number; pending: string[] }> = {};
  for (const e of EVERYONE) {
    state[e.id] = {
      seq: await store.lastSequence(e.id),
      pending: (await store.pendingFor(e.id, 100)).map((p) => `${p.sender}/${p.clipId}`),
    };
  }
  return { backlog: await store.backlog(), state };
}

/** Exactly `n` tokens are left in `key`'s bucket (never refilled: refillPerSecond is 0). Consumes them. */
function expectTokensLeft(limiter: MemoryRateLimiter, key: string, n: number, what: string): void {
  if (n > 0) expect(limiter.tryTake(key, n, NOW), `${what}: at least ${n} tokens left`).toBe(true);
  expect(limiter.tryTake(key, 1, NOW), `${what}: no more than ${n} tokens left`).toBe(false);
}

/** prepareClip, then commitClip when every check before the store write passed. */
async function ingest(
  ctx: IngestContext,
  endpoint: EndpointRecord,
  payload: Uint8Array,
  opts: { relay?: boolean; now?: number } = {},
): Promise<{ stage: 'prepare' | 'commit'; outcome: ClipOutcome }> {
  const prepared = await prepareClip(ctx, endpoint, payload, opts.now ?? NOW, { relay: opts.relay ?? false });
  if (prepared.kind !== 'prepared') return { stage: 'prepare', outcome: prepared };
  return { stage: 'commit', outcome: await commitClip(ctx, prepared) };
}

function expectPrepared(p: Awaited<ReturnType<typeof prepareClip>>): PreparedClip {
  expect(p.kind).toBe('prepared');
  if (p.kind !== 'prepared') throw new Error(`refused: ${p.reason}`);
  return p;
}

// ---- the documented check order -----------------------------------------------------------------

type Fault =
  | 'size'
  | 'malformed'
  | 'sender'
  | 'clip-time'
  | 'relay-not-family'
  | 'rate-clips'
  | 'rate-bytes'
  | 'sender-revoked'
  | 'no-family'
  | 'not-family'
  | 'recipient-revoked'
  | 'bad-signature'
  | 'replay';

/**
 * [PLK-12.1] on the `clip` topic, from the spec and the prepareClip doc comment: size; decode within
 * the limits; sender = the connection's id; clip rate; byte rate; recipients ⊆ the sender's family
 * (the publisher revoked since it connected, then a publisher without family — the code's order,
 * which the spec does not split further — then every recipient a non-revoked member, one recipient
 * after the other in envelope order: the scenarios put the outsider first, so 'not-family' comes
 * before 'recipient-revoked' here; the test "first offending recipient" covers the other order);
 * signature; sequence number new (the store write).
 */
const CLIP_ORDER: readonly Fault[] = [
  'size',
  'malformed',
  'sender',
  'clip-time',
  'rate-clips',
  'rate-bytes',
  'sender-revoked',
  'no-family',
  'not-family',
  'recipient-revoked',
  'bad-signature',
  'replay',
];

/**
 * [PLK-12.1] with [PLK-4.5] on the `relay` topic: the sender check is skipped, and the relayed
 * sender's family membership is checked with the family, after the rate limits (which are charged
 * to the relaying connection).
 */
const RELAY_ORDER: readonly Fault[] = [
  'size',
  'malformed',
  'clip-time',
  'rate-clips',
  'rate-bytes',
  'relay-not-family',
  'not-family',
  'recipient-revoked',
  'bad-signature',
  'replay',
];

const SEQUENCE = 5;

/** Builds one publish that fails exactly the checks in `faults` (each fault is independent of the others). */
async function scenario(w: World, faults: ReadonlySet<Fault>, relay: boolean) {
  // On relay, mum's phone relays an envelope of the toy (or, faulty, of a stranger's household).
  const publisher = relay ? mum : faults.has('no-family') ? loner : toy;
  const sender = relay
    ? faults.has('relay-not-family')
      ? stranger
      : toy
    : faults.has('sender')
      ? mum
      : publisher;
  // dad is always a recipient (the one revoked by 'recipient-revoked'), plus a family member that is not
  // the sender; the outsider of 'not-family' comes first.
  const recipients: PublicIdentity[] = [
    ...(faults.has('not-family') ? [strangerMate] : []),
    dad,
    sender === mum ? toy : mum,
  ];
  const endpoint = await w.record(publisher);
  if (faults.has('replay')) {
    // The sender already has a later clip accepted.
    const earlier = seal(sender, [dad], SEQUENCE + 5);
    const h = decodeClip(earlier).header;
    const r = await w.store.acceptClip(
      {
        sender: sender.id,
        clipId: toHex(h.clipId),
        sequence: h.sequence,
        createdAt: h.createdAt,
        receivedAt: NOW - 5000,
        envelope: earlier,
      },
      [dad.id],
    );
    expect(r).toEqual({ ok: true });
  }
  if (faults.has('sender-revoked')) expect(await w.store.revokeEndpoint(publisher.id, 1)).toBe(true);
  if (faults.has('recipient-revoked')) expect(await w.store.revokeEndpoint(dad.id, 1)).toBe(true);
  if (faults.has('rate-clips')) expect(w.clips.tryTake(publisher.id, CLIP_CAP, NOW)).toBe(true);
  if (faults.has('rate-bytes')) expect(w.bytes.tryTake(publisher.id, BYTE_CAP, NOW)).toBe(true);
  // [PLK-9.3] ten minutes ahead of the gateway clock.
  const payload = seal(
    sender,
    recipients,
    SEQUENCE,
    rnd,
    faults.has('clip-time') ? NOW + 600_000 : NOW - 1000,
  );
  // A flipped ciphertext byte: still decodes, no longer verifies.
  if (faults.has('bad-signature')) payload[payload.length - 64 - 10]! ^= 0x01;
  // A version byte no module knows: refused by the decoder (PLK_E_VERSION). A known version the
  // gateway is not configured for (2, [PLK-14.7]) is the `version` refusal, tested in chunked-gateway.test.ts.
  if (faults.has('malformed')) payload[1] = 0x7f;
  const ctx = w.ctx(faults.has('size') ? { maxEnvelopeBytes: payload.length - 1 } : {});
  return {
    ctx,
    endpoint,
    payload,
    clipTokens: faults.has('rate-clips') ? 0 : CLIP_CAP,
    byteTokens: faults.has('rate-bytes') ? 0 : BYTE_CAP,
  };
}

/** Runs the publish and asserts: refused for `expected`, store untouched, tokens taken only by the limiters that ran. */
async function expectRefusedFirst(
  w: World,
  order: readonly Fault[],
  faults: readonly Fault[],
  relay: boolean,
): Promise<void> {
  const expected = order.find((f) => faults.includes(f));
  if (!expected) throw new Error('no fault');
  const s = await scenario(w, new Set(faults), relay);
  const before = await snapshot(w.store);
  const { stage, outcome } = await ingest(s.ctx, s.endpoint, s.payload, { relay });
  expect(outcome).toMatchObject({ kind: 'refused', reason: expected });
  // Only the sequence check belongs to the store write; every other refusal happens before it.
  expect(stage).toBe(expected === 'replay' ? 'commit' : 'prepare');
  expect(await snapshot(w.store)).toEqual(before);
  // A check that fails stops the chain: a limiter is charged only when every check before it passed.
  const at = order.indexOf(expected);
  const clipCharged = at > order.indexOf('rate-clips');
  const bytesCharged = at > order.indexOf('rate-bytes');
  expectTokensLeft(w.clips, s.endpoint.id, s.clipTokens - (clipCharged ? 1 : 0), 'clip bucket');
  expectTokensLeft(
    w.bytes,
    s.endpoint.id,
    s.byteTokens - (bytesCharged ? s.payload.length : 0),
    'byte bucket',
  );
}

function pairs<T>(xs: readonly T[]): [T, T][] {
  return xs.flatMap((a, i) => xs.slice(i + 1).map((b): [T, T] => [a, b]));
}

// ---- the suite, on the in-memory store and on real SQLite in a temp dir -------------------------------

const STORES: readonly [string, (dir: string) => GatewayStore][] = [
  ['MemoryStore', () => new MemoryStore()],
  ['SqliteStore', (dir) => openSqliteStore(join(dir, 'store'))],
];

for (const [storeName, openStore] of STORES) {
  describe(`ingest on ${storeName}`, () => {
    let dir: string;
    let w: World;

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'plk-ingest-'));
      const store = openStore(dir);
      for (const e of EVERYONE) {
        await store.addEndpoint({
          id: e.id,
          role: e.role === 'toy' ? 'toy' : 'parent',
          signPublicKey: e.signPublicKey,
          boxPublicKey: e.boxPublicKey,
          createdAt: NOW - 60_000,
        });
      }
      await store.createFamily(FAMILY_F, NOW - 60_000);
      await store.createFamily(FAMILY_G, NOW - 60_000);
      for (const e of [toy, mum, dad]) await store.addFamilyMember(FAMILY_F, e.id, 1);
      for (const e of [stranger, strangerMate]) await store.addFamilyMember(FAMILY_G, e.id, 1);
      const clips = new MemoryRateLimiter({ capacity: CLIP_CAP, refillPerSecond: 0 });
      const bytes = new MemoryRateLimiter({ capacity: BYTE_CAP, refillPerSecond: 0 });
      const receipts = new MemoryRateLimiter({ capacity: RECEIPT_CAP, refillPerSecond: 0 });
      w = {
        store,
        clips,
        bytes,
        receipts,
        ctx: (over = {}) => ({
          store,
          crypto,
          clipLimiter: clips,
          byteLimiter: bytes,
          receiptLimiter: receipts,
          maxEnvelopeBytes: LIMITS.maxEnvelopeBytes,
          ...over,
        }),
        async record(who) {
          const rec = await store.getEndpoint(who.id);
          if (!rec) throw new Error(`${who.id} is not registered`);
          return rec;
        },
      };
    });

    afterEach(async () => {
      await w.store.close();
      await rm(dir, { recursive: true, force: true });
    });

    describe('clips: outcomes', () => {
      it('accepted: stores one pending delivery per recipient and advances the sender sequence [PLK-12.3]', async () => {
        const payload = seal(toy, [mum, dad], 7);
        const out = await ingestClip(w.ctx(), await w.record(toy), payload, NOW);
        const clipId = toHex(decodeClip(payload).header.clipId);
        expect(out).toMatchObject({ kind: 'accepted', clipId, recipients: [mum.id, dad.id] });
        if (out.kind === 'accepted') expect(out.clip.header.sequence).toBe(7);
        expect(await w.store.lastSequence(toy.id)).toBe(7);
        expect(await w.store.backlog()).toBe(2);
        for (const r of [mum, dad]) {
          const [p, ...more] = await w.store.pendingFor(r.id, 10);
          expect(more).toEqual([]);
          expect(p).toMatchObject({ recipient: r.id, sender: toy.id, clipId, receivedAt: NOW });
          expect(Buffer.from(p!.envelope).equals(Buffer.from(payload))).toBe(true);
        }
        expectTokensLeft(w.clips, toy.id, CLIP_CAP - 1, 'clip bucket');
        expectTokensLeft(w.bytes, toy.id, BYTE_CAP - payload.length, 'byte bucket');
      });

      it('retransmit: an identical resend is acknowledged again and stored nothing, also after delivery [PLK-8.2]', async () => {
        const payload = seal(toy, [mum, dad], 1);
        const ctx = w.ctx();
        const toyRec = await w.record(toy);
        expect((await ingestClip(ctx, toyRec, payload, NOW)).kind).toBe('accepted');
        const stored = await snapshot(w.store);
        const clipId = toHex(decodeClip(payload).header.clipId);
        expect(await ingestClip(ctx, toyRec, payload, NOW + 1)).toEqual({ kind: 'retransmit', clipId });
        expect(await snapshot(w.store)).toEqual(stored);
        // Both parents receipt: the clip is deleted, yet a late resend is still recognised.
        for (const r of [mum, dad]) {
          expect((await ingestReceipt(ctx, await w.record(r), receiptOf(r, payload), NOW)).kind).toBe(
            'delivered',
          );
        }
        expect(await w.store.backlog()).toBe(0);
        expect(await ingestClip(ctx, toyRec, payload, NOW + 2)).toEqual({ kind: 'retransmit', clipId });
        expect(await w.store.backlog()).toBe(0);
      });

      it('duplicate: a known clip id with another sequence number is refused, store unchanged [PLK-8.2]', async () => {
        // The same seeded random stream gives the same clip id (and keys) to two envelopes.
        const first = seal(toy, [mum], 3, seededRandom('same clip id'));
        const second = seal(toy, [mum], 4, seededRandom('same clip id'));
        expect(toHex(decodeClip(second).header.clipId)).toBe(toHex(decodeClip(first).header.clipId));
        const toyRec = await w.record(toy);
        expect((await ingestClip(w.ctx(), toyRec, first, NOW)).kind).toBe('accepted');
        const before = await snapshot(w.store);
        const { stage, outcome } = await ingest(w.ctx(), toyRec, second);
        expect(stage).toBe('commit');
        expect(outcome).toMatchObject({ kind: 'refused', reason: 'duplicate' });
        expect(await snapshot(w.store)).toEqual(before);
        expect(await w.store.lastSequence(toy.id)).toBe(3);
      });

      it('replay: an equal or lower sequence number is refused at the store write, store unchanged [PLK-8.1]', async () => {
        const toyRec = await w.record(toy);
        expect((await ingestClip(w.ctx(), toyRec, seal(toy, [mum], 10), NOW)).kind).toBe('accepted');
        const before = await snapshot(w.store);
        for (const seq of [10, 9, 1]) {
          const { stage, outcome } = await ingest(w.ctx(), toyRec, seal(toy, [mum], seq));
          expect(stage).toBe('commit');
          expect(outcome).toMatchObject({ kind: 'refused', reason: 'replay', detail: `sequence ${seq}` });
        }
        expect(await snapshot(w.store)).toEqual(before);
        expect((await ingestClip(w.ctx(), toyRec, seal(toy, [mum], 12), NOW)).kind).toBe('accepted');
        expect(await w.store.lastSequence(toy.id)).toBe(12);
      });

      it('commitClip reaches the store in call order: sequence is enforced in commit order, not prepare order', async () => {
        const ctx = w.ctx();
        const toyRec = await w.record(toy);
        const p1 = expectPrepared(await prepareClip(ctx, toyRec, seal(toy, [mum], 1), NOW));
        const p2 = expectPrepared(await prepareClip(ctx, toyRec, seal(toy, [mum], 2), NOW));
        // Both commits started before either resolves: still both accepted, in order.
        const [a, b] = await Promise.all([commitClip(ctx, p1), commitClip(ctx, p2)]);
        expect([a.kind, b.kind]).toEqual(['accepted', 'accepted']);
        expect(await w.store.lastSequence(toy.id)).toBe(2);
        const p4 = expectPrepared(await prepareClip(ctx, toyRec, seal(toy, [mum], 4), NOW));
        const p3 = expectPrepared(await prepareClip(ctx, toyRec, seal(toy, [mum], 3), NOW));
        const [c, d] = await Promise.all([commitClip(ctx, p4), commitClip(ctx, p3)]);
        expect(c.kind).toBe('accepted');
        expect(d).toMatchObject({ kind: 'refused', reason: 'replay' });
        expect(await w.store.lastSequence(toy.id)).toBe(4);
      });

      it('size: the context limit is inclusive, and never above the protocol limit [PLK-9.1]', async () => {
        const toyRec = await w.record(toy);
        const payload = seal(toy, [mum], 1);
        expect(
          (await prepareClip(w.ctx({ maxEnvelopeBytes: payload.length - 1 }), toyRec, payload, NOW)).kind,
        ).toBe('refused');
        expect(
          (await prepareClip(w.ctx({ maxEnvelopeBytes: payload.length }), toyRec, payload, NOW)).kind,
        ).toBe('prepared');
        // A context that allows more than the protocol still refuses an envelope above 1,310,720 bytes by size,
        // before decoding it; one of exactly the limit is decoded (and is garbage here).
        const huge = w.ctx({ maxEnvelopeBytes: 10 * LIMITS.maxEnvelopeBytes });
        const over = new Uint8Array(LIMITS.maxEnvelopeBytes + 1);
        over[0] = 0x01;
        expect(await prepareClip(huge, toyRec, over, NOW)).toMatchObject({
          kind: 'refused',
          reason: 'size',
          detail: `${LIMITS.maxEnvelopeBytes + 1} bytes`,
        });
        expect(await prepareClip(huge, toyRec, over.subarray(1), NOW)).toMatchObject({
          kind: 'refused',
          reason: 'malformed',
        });
      });

      it('malformed: truncated, trailing, wrong type or version are refused with the decoder error as detail', async () => {
        const toyRec = await w.record(toy);
        const good = seal(toy, [mum], 1);
        const wrongType = Uint8Array.from(good);
        wrongType[0] = 0x02;
        const cases: [Uint8Array, RegExp][] = [
          [good.subarray(0, good.length - 1), /ended before/],
          [Uint8Array.from([...good, 0]), /bytes after/],
          [wrongType, /message type/],
          [new Uint8Array(0), /ended before/],
        ];
        for (const [payload, detail] of cases) {
          const out = await prepareClip(w.ctx(), toyRec, payload, NOW);
          expect(out).toMatchObject({ kind: 'refused', reason: 'malformed' });
          if (out.kind === 'refused') expect(out.detail).toMatch(detail);
        }
        expectTokensLeft(w.clips, toy.id, CLIP_CAP, 'clip bucket');
      });

      it('rate limits refill with the injected clock, and a refused clip is accepted once tokens are back', async () => {
        const clips = new MemoryRateLimiter({ capacity: 1, refillPerSecond: 1 });
        const ctx = w.ctx({ clipLimiter: clips });
        const toyRec = await w.record(toy);
        expect((await ingestClip(ctx, toyRec, seal(toy, [mum], 1), NOW)).kind).toBe('accepted');
        const second = seal(toy, [mum], 2);
        expect(await ingestClip(ctx, toyRec, second, NOW)).toMatchObject({
          kind: 'refused',
          reason: 'rate-clips',
        });
        expect(await ingestClip(ctx, toyRec, second, NOW + 999)).toMatchObject({
          kind: 'refused',
          reason: 'rate-clips',
        });
        expect((await ingestClip(ctx, toyRec, second, NOW + 1000)).kind).toBe('accepted');
        expect(await w.store.lastSequence(toy.id)).toBe(2);
      });

      it('rate-bytes: an envelope larger than the bytes left is refused, and does not drain the bucket', async () => {
        const bytes = new MemoryRateLimiter({ capacity: 3000, refillPerSecond: 0 });
        const ctx = w.ctx({ byteLimiter: bytes });
        const toyRec = await w.record(toy);
        const first = seal(toy, [mum], 1);
        expect(first.length).toBeLessThan(3000);
        expect((await ingestClip(ctx, toyRec, first, NOW)).kind).toBe('accepted');
        const second = seal(toy, [mum], 2);
        expect(await ingestClip(ctx, toyRec, second, NOW)).toMatchObject({
          kind: 'refused',
          reason: 'rate-bytes',
        });
        expectTokensLeft(bytes, toy.id, 3000 - first.length, 'byte bucket');
      });

      it('registry changes take effect with the registry cache only after its TTL (injected clock)', async () => {
        const ctx = w.ctx({ registry: new RegistryCache(w.store, 1000) });
        const toyRec = await w.record(toy);
        expect((await ingestClip(ctx, toyRec, seal(toy, [mum, dad], 1), NOW)).kind).toBe('accepted');
        await w.store.revokeEndpoint(dad.id, 1);
        expect((await ingestClip(ctx, toyRec, seal(toy, [mum, dad], 2), NOW + 999)).kind).toBe('accepted');
        expect(await ingestClip(ctx, toyRec, seal(toy, [mum, dad], 3), NOW + 1000)).toMatchObject({
          kind: 'refused',
          reason: 'recipient-revoked',
        });
        // Without a cache the revocation counts at once.
        const noCache = w.ctx();
        expect(await ingestClip(noCache, await w.record(mum), seal(mum, [toy, dad], 1), NOW)).toMatchObject({
          kind: 'refused',
          reason: 'recipient-revoked',
        });
      });

      it('within the recipient check, the first offending recipient in envelope order gives the reason', async () => {
        await w.store.revokeEndpoint(dad.id, 1);
        const toyRec = await w.record(toy);
        const before = await snapshot(w.store);
        expect(await ingestClip(w.ctx(), toyRec, seal(toy, [mum, dad, stranger], 1), NOW)).toMatchObject({
          kind: 'refused',
          reason: 'recipient-revoked',
        });
        expect(await ingestClip(w.ctx(), toyRec, seal(toy, [mum, stranger, dad], 2), NOW)).toMatchObject({
          kind: 'refused',
          reason: 'not-family',
        });
        // An endpoint that is not registered at all is outside the family too.
        const unregistered = generateIdentity('parent', rnd);
        expect(await ingestClip(w.ctx(), toyRec, seal(toy, [mum, unregistered], 3), NOW)).toMatchObject({
          kind: 'refused',
          reason: 'not-family',
        });
        expect(await snapshot(w.store)).toEqual(before);
      });

      it('the signature is verified with the registered key of the sender, not any key in the envelope [PLK-5.5]', async () => {
        // An impostor with its own key pair writes the toy's id as sender and signs with its own key.
        const impostor = { ...generateIdentity('toy', rnd), id: toy.id };
        const forged = seal(impostor, [mum], 1);
        expect(decodeClip(forged).header.sender).toBe(toy.id);
        expect(await ingestClip(w.ctx(), await w.record(toy), forged, NOW)).toMatchObject({
          kind: 'refused',
          reason: 'bad-signature',
        });
        expect(await w.store.lastSequence(toy.id)).toBe(0);
      });

      it('reports store latency per operation when asked to', async () => {
        const ops: string[] = [];
        const ctx = w.ctx({
          observeStore: (op, seconds) => {
            expect(Number.isFinite(seconds) && seconds >= 0).toBe(true);
            ops.push(op);
          },
        });
        const payload = seal(toy, [mum], 1);
        expect((await ingestClip(ctx, await w.record(toy), payload, NOW)).kind).toBe('accepted');
        expect((await ingestReceipt(ctx, await w.record(mum), receiptOf(mum, payload), NOW)).kind).toBe(
          'delivered',
        );
        expect(ops).toEqual(['acceptClip', 'markDelivered']);
      });

      it('store-error: a store that fails refuses the clip and the receipt instead of throwing', async () => {
        const ctx = w.ctx();
        const toyRec = await w.record(toy);
        const mumRec = await w.record(mum);
        const payload = seal(toy, [mum], 1);
        const prepared = expectPrepared(await prepareClip(ctx, toyRec, payload, NOW));
        await w.store.close();
        expect(await commitClip(ctx, prepared)).toMatchObject({ kind: 'refused', reason: 'store-error' });
        expect(await prepareClip(ctx, toyRec, seal(toy, [mum], 2), NOW)).toMatchObject({
          kind: 'refused',
          reason: 'store-error',
        });
        expect(await ingestReceipt(ctx, mumRec, receiptOf(mum, payload), NOW)).toEqual({
          kind: 'refused',
          reason: 'store-error',
        });
      });
    });

    describe('relay [PLK-4.5]', () => {
      it("accepts a family member's envelope relayed unchanged; rates are charged to the relay, the sequence to the sender", async () => {
        const payload = seal(toy, [mum, dad], 3);
        const out = await ingest(w.ctx(), await w.record(mum), payload, { relay: true });
        expect(out.outcome).toMatchObject({ kind: 'accepted', recipients: [mum.id, dad.id] });
        expect(await w.store.lastSequence(toy.id)).toBe(3);
        expect(await w.store.lastSequence(mum.id)).toBe(0);
        expect((await w.store.pendingFor(dad.id, 10))[0]?.sender).toBe(toy.id);
        expectTokensLeft(w.clips, mum.id, CLIP_CAP - 1, 'relay clip bucket');
        expectTokensLeft(w.clips, toy.id, CLIP_CAP, 'toy clip bucket');
        expectTokensLeft(w.bytes, mum.id, BYTE_CAP - payload.length, 'relay byte bucket');
      });

      it("a relay can neither replay nor reorder the toy's clips, and a resend is a retransmit", async () => {
        const ctx = w.ctx();
        const mumRec = await w.record(mum);
        const seven = seal(toy, [mum], 7);
        expect((await ingestClip(ctx, await w.record(toy), seven, NOW)).kind).toBe('accepted');
        expect((await ingest(ctx, mumRec, seven, { relay: true })).outcome.kind).toBe('retransmit');
        expect((await ingest(ctx, mumRec, seal(toy, [mum], 6), { relay: true })).outcome).toMatchObject({
          kind: 'refused',
          reason: 'replay',
        });
        expect((await ingest(ctx, mumRec, seal(toy, [mum], 8), { relay: true })).outcome.kind).toBe(
          'accepted',
        );
        expect(await w.store.lastSequence(toy.id)).toBe(8);
      });

      it('a relayed envelope of a revoked member, or through a connection without family, is refused', async () => {
        const payload = seal(toy, [mum, dad], 1);
        const mumRec = await w.record(mum);
        await w.store.revokeEndpoint(toy.id, 1);
        expect((await ingest(w.ctx(), mumRec, payload, { relay: true })).outcome).toMatchObject({
          kind: 'refused',
          reason: 'sender-revoked',
        });
        expect(
          (await ingest(w.ctx(), await w.record(loner), payload, { relay: true })).outcome,
        ).toMatchObject({
          kind: 'refused',
          reason: 'no-family',
        });
        expect(await w.store.backlog()).toBe(0);
      });

      it('without the relay flag the same envelope is refused as another sender', async () => {
        expect(await ingestClip(w.ctx(), await w.record(mum), seal(toy, [mum], 1), NOW)).toMatchObject({
          kind: 'refused',
          reason: 'sender',
        });
      });
    });

    describe('[PLK-12.1] check order on the clip topic: the first failing check gives the reason', () => {
      for (const f of CLIP_ORDER) {
        it(`${f} alone`, async () => {
          await expectRefusedFirst(w, CLIP_ORDER, [f], false);
        });
      }
      for (const [a, b] of pairs(CLIP_ORDER)) {
        it(`${a} before ${b}`, async () => {
          await expectRefusedFirst(w, CLIP_ORDER, [a, b], false);
        });
      }
      for (let i = 0; i < CLIP_ORDER.length - 1; i++) {
        const all = CLIP_ORDER.slice(i);
        it(`${all[0]} before all ${all.length - 1} later checks failing at once`, async () => {
          await expectRefusedFirst(w, CLIP_ORDER, all, false);
        });
      }
    });

    describe('[PLK-12.1] + [PLK-4.5] check order on the relay topic', () => {
      const relayCase = (name: string, faults: readonly Fault[]) => {
        it(name, async () => {
          await expectRefusedFirst(w, RELAY_ORDER, faults, true);
        });
      };
      for (const f of RELAY_ORDER) relayCase(`${f} alone`, [f]);
      for (const [a, b] of pairs(RELAY_ORDER)) relayCase(`${a} before ${b}`, [a, b]);
      for (let i = 0; i < RELAY_ORDER.length - 1; i++) {
        const all = RELAY_ORDER.slice(i);
        relayCase(`${all[0]} before all ${all.length - 1} later checks failing at once`, all);
      }

      it("the relay-not-family fixture is sound: a stranger's relayed envelope is refused as relay-not-family, store unchanged", async () => {
        const s = await scenario(w, new Set<Fault>(['relay-not-family']), true);
        const before = await snapshot(w.store);
        const { stage, outcome } = await ingest(s.ctx, s.endpoint, s.payload, { relay: true });
        expect(stage).toBe('prepare');
        expect(outcome).toMatchObject({ kind: 'refused', reason: 'relay-not-family' });
        expect(await snapshot(w.store)).toEqual(before);
      });
    });

    describe('receipts [PLK-6.2] [PLK-12.4]', () => {
      let envelope: Uint8Array;
      beforeEach(async () => {
        envelope = seal(toy, [mum, dad], 1);
        expect((await ingestClip(w.ctx(), await w.record(toy), envelope, NOW)).kind).toBe('accepted');
      });

      it('delivered: marks the delivery done; idempotent while the clip is stored; unknown once it is deleted', async () => {
        const ctx = w.ctx();
        const mumRec = await w.record(mum);
        const out = await ingestReceipt(ctx, mumRec, receiptOf(mum, envelope), NOW);
        expect(out).toMatchObject({
          kind: 'delivered',
          receipt: { recipient: mum.id, sender: toy.id, receivedAt: NOW },
        });
        if (out.kind === 'delivered')
          expect(toHex(out.receipt.clipId)).toBe(toHex(decodeClip(envelope).header.clipId));
        expect(await w.store.pendingFor(mum.id, 10)).toEqual([]);
        expect(await w.store.pendingFor(dad.id, 10)).toHaveLength(1);
        expect(await w.store.backlog()).toBe(1);
        expect((await ingestReceipt(ctx, mumRec, receiptOf(mum, envelope), NOW)).kind).toBe('already');
        expect((await ingestReceipt(ctx, await w.record(dad), receiptOf(dad, envelope), NOW)).kind).toBe(
          'delivered',
        );
        expect(await w.store.backlog()).toBe(0);
        // [PLK-12.5] every recipient receipted: the clip is gone; its id is still remembered, so a
        // late repeat is acknowledged (not forwarded again), nothing comes back.
        expect((await ingestReceipt(ctx, mumRec, receiptOf(mum, envelope), NOW)).kind).toBe('already');
        expect(await w.store.backlog()).toBe(0);
      });

      it('receipt-unknown: a valid receipt for a clip never accepted, or not addressed to this recipient [PLK-6.2]', async () => {
        const other = seal(toy, [mum], 2);
        expect(await ingestReceipt(w.ctx(), await w.record(mum), receiptOf(mum, other), NOW)).toEqual({
          kind: 'refused',
          reason: 'receipt-unknown',
        });
        const toMumOnly = seal(toy, [mum], 3);
        expect((await ingestClip(w.ctx(), await w.record(toy), toMumOnly, NOW)).kind).toBe('accepted');
        expect(await ingestReceipt(w.ctx(), await w.record(dad), receiptOf(dad, toMumOnly), NOW)).toEqual({
          kind: 'refused',
          reason: 'receipt-unknown',
        });
        expect(await w.store.backlog()).toBe(3);
      });

      it('receipt-time: a receipt dated ahead of the gateway clock or older than the age limit [PLK-9.3]', async () => {
        const mumRec = await w.record(mum);
        for (const receivedAt of [NOW + 61_000, NOW - 8 * 86_400_000]) {
          expect(
            await ingestReceipt(w.ctx(), mumRec, receiptOf(mum, envelope, toy.id, { receivedAt }), NOW),
          ).toEqual({
            kind: 'refused',
            reason: 'receipt-time',
          });
        }
        expect(
          (
            await ingestReceipt(
              w.ctx(),
              mumRec,
              receiptOf(mum, envelope, toy.id, { receivedAt: NOW + 59_000 }),
              NOW,
            )
          ).kind,
        ).toBe('delivered');
      });

      it('sender-revoked: a revoked recipient cannot receipt any more', async () => {
        expect(await w.store.revokeEndpoint(mum.id, NOW)).toBe(true);
        expect(await ingestReceipt(w.ctx(), await w.record(mum), receiptOf(mum, envelope), NOW)).toEqual({
          kind: 'refused',
          reason: 'sender-revoked',
        });
        expect(await w.store.pendingFor(mum.id, 10)).toHaveLength(1);
      });

      it('unopenable [PLK-6.3]: the delivery is set aside, the backlog moves on, a repeat is idempotent', async () => {
        const mumRec = await w.record(mum);
        const out = await ingestReceipt(
          w.ctx(),
          mumRec,
          receiptOf(mum, envelope, toy.id, { status: 'unopenable' }),
          NOW,
        );
        expect(out).toMatchObject({
          kind: 'set-aside',
          receipt: { status: 'unopenable', recipient: mum.id },
        });
        expect(await w.store.pendingFor(mum.id, 10)).toEqual([]);
        expect(await w.store.pendingFor(dad.id, 10)).toHaveLength(1);
        const again = await ingestReceipt(
          w.ctx(),
          mumRec,
          receiptOf(mum, envelope, toy.id, { status: 'unopenable' }),
          NOW,
        );
        expect(again.kind).toBe('already');
      });

      it('receipt-malformed: wrong length, type, version or field; no token taken, store unchanged', async () => {
        const good = receiptOf(mum, envelope);
        const patch = (at: number, values: number[]): Uint8Array => {
          const b = Uint8Array.from(good);
          b.set(values, at);
          return b;
        };
        const before = await snapshot(w.store);
        for (const bad of [
          good.subarray(0, 129),
          Uint8Array.from([...good, 0]),
          new Uint8Array(0),
          patch(0, [0x01]),
          patch(1, [0x02]),
          patch(58, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ]) {
          expect(await ingestReceipt(w.ctx(), await w.record(mum), bad, NOW)).toEqual({
            kind: 'refused',
            reason: 'receipt-malformed',
          });
        }
        expect(await snapshot(w.store)).toEqual(before);
        expectTokensLeft(w.receipts, mum.id, RECEIPT_CAP, 'receipt bucket');
      });

      it('receipt-recipient: a receipt signed by another endpoint than the connection', async () => {
        const before = await snapshot(w.store);
        expect(await ingestReceipt(w.ctx(), await w.record(dad), receiptOf(mum, envelope), NOW)).toEqual({
          kind: 'refused',
          reason: 'receipt-recipient',
        });
        expect(await snapshot(w.store)).toEqual(before);
      });

      it('receipt-bad-signature: a flipped byte, or the right id signed with another key', async () => {
        const flipped = receiptOf(mum, envelope);
        flipped[flipped.length - 1]! ^= 0x01;
        const forged = createReceipt({
          recipient: { ...dad, id: mum.id },
          sender: toy.id,
          clipId: decodeClip(envelope).header.clipId,
          receivedAt: NOW,
        });
        const before = await snapshot(w.store);
        for (const bad of [flipped, forged]) {
          expect(await ingestReceipt(w.ctx(), await w.record(mum), bad, NOW)).toEqual({
            kind: 'refused',
            reason: 'receipt-bad-signature',
          });
        }
        expect(await snapshot(w.store)).toEqual(before);
        // The limiter runs before the signature check: both refused receipts were charged.
        expectTokensLeft(w.receipts, mum.id, RECEIPT_CAP - 2, 'receipt bucket');
      });

      it('rate-receipts: per endpoint; without a receipt limiter receipts are unlimited', async () => {
        const mumRec = await w.record(mum);
        for (let i = 0; i < RECEIPT_CAP; i++) {
          expect((await ingestReceipt(w.ctx(), mumRec, receiptOf(mum, envelope), NOW)).kind).toBe(
            i === 0 ? 'delivered' : 'already',
          );
        }
        expect(await ingestReceipt(w.ctx(), mumRec, receiptOf(mum, envelope), NOW)).toEqual({
          kind: 'refused',
          reason: 'rate-receipts',
        });
        expect((await ingestReceipt(w.ctx(), await w.record(dad), receiptOf(dad, envelope), NOW)).kind).toBe(
          'delivered',
        );
        const noLimiter: IngestContext = {
          store: w.store,
          crypto,
          clipLimiter: w.clips,
          byteLimiter: w.bytes,
          maxEnvelopeBytes: LIMITS.maxEnvelopeBytes,
        };
        for (let i = 0; i < 2 * RECEIPT_CAP; i++) {
          expect((await ingestReceipt(noLimiter, mumRec, receiptOf(mum, envelope), NOW)).kind).not.toBe(
            'refused',
          );
        }
      });

      describe('check order of ingestReceipt: form, recipient = connection, time, rate, revoked, signature, delivery', () => {
        type ReceiptFault =
          | 'receipt-malformed'
          | 'receipt-recipient'
          | 'receipt-time'
          | 'rate-receipts'
          | 'sender-revoked'
          | 'receipt-bad-signature'
          | 'receipt-unknown';
        const ORDER: readonly ReceiptFault[] = [
          'receipt-malformed',
          'receipt-recipient',
          'receipt-time',
          'rate-receipts',
          'sender-revoked',
          'receipt-bad-signature',
          'receipt-unknown',
        ];
        const run = async (faults: readonly ReceiptFault[]) => {
          const expected = ORDER.find((f) => faults.includes(f));
          if (!expected) throw new Error('no fault');
          // mum's receipt, published by dad's connection when the recipient check is to fail.
          const publisher = faults.includes('receipt-recipient') ? dad : mum;
          const target = faults.includes('receipt-unknown') ? seal(toy, [mum], 9) : envelope;
          const receivedAt = faults.includes('receipt-time') ? NOW + 600_000 : NOW;
          const payload = receiptOf(mum, target, toy.id, { receivedAt });
          if (faults.includes('sender-revoked'))
            expect(await w.store.revokeEndpoint(publisher.id, NOW)).toBe(true);
          if (faults.includes('receipt-bad-signature')) payload[payload.length - 1]! ^= 0x01;
          if (faults.includes('receipt-malformed')) payload[1] = 0x02;
          if (faults.includes('rate-receipts'))
            expect(w.receipts.tryTake(publisher.id, RECEIPT_CAP, NOW)).toBe(true);
          const before = await snapshot(w.store);
          expect(await ingestReceipt(w.ctx(), await w.record(publisher), payload, NOW)).toEqual({
            kind: 'refused',
            reason: expected,
          });
          expect(await snapshot(w.store)).toEqual(before);
          const charged = ORDER.indexOf(expected) > ORDER.indexOf('rate-receipts');
          const left = faults.includes('rate-receipts') ? 0 : RECEIPT_CAP;
          expectTokensLeft(w.receipts, publisher.id, left - (charged ? 1 : 0), 'receipt bucket');
        };
        for (const [a, b] of pairs(ORDER)) {
          it(`${a} before ${b}`, async () => {
            await run([a, b]);
          });
        }
        it('receipt-malformed before all six others at once', async () => {
          await run(ORDER);
        });
      });
    });
  });
}
