// End to end over real MQTT with the real gateway: a mixed fleet (a v1 toy and a v2 toy to the same parents), a v2 toy against a v1-only gateway, and v2 truncation, reordering and replay seen by the parent simulator [PLK-14].
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synthesizeSpeech } from '../../device/audio/synth.ts';
import { encodePcmToOgg } from '../../device/codec/clip.ts';
import { splitOggIntoChunks } from '../../device/codec/ogg-chunks.ts';
import { EncoderPool } from '../../device/codec/pool.ts';
import type { Endpoint, EndpointEvents } from '../../device/endpoint.ts';
import { ParentApp } from '../../device/parent.ts';
import { Toy } from '../../device/toy.ts';
import { WifiConnector } from '../../device/transport/wifi.ts';
import { toHex } from '../../shared/bytes.ts';
import { ChunkedClipSealer, chunkChainHash, decodeChunk, sealChunkRaw } from '../../shared/chunked.ts';
import {
  generateIdentity,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { closed, type Family, type Harness, startHarness } from '../gateway/helpers/harness.ts';

const pool = new EncoderPool({ maxEncoders: 2 });
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-v2-e2e-'));
});
afterAll(async () => {
  pool.close();
  await rm(dir, { recursive: true, force: true });
});

function collect<K extends keyof EndpointEvents>(ep: Endpoint, kind: K): EndpointEvents[K][] {
  const out: EndpointEvents[K][] = [];
  ep.on(kind, (e) => out.push(e));
  return out;
}

/** Polls `cond` on real event-loop turns (network and disk work), up to 15 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > 15_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function parent(
  h: Harness,
  identity: PrivateIdentity,
  family: readonly PublicIdentity[],
  name: string,
): ParentApp {
  return new ParentApp({
    identity,
    gateway: h.gatewayPublic,
    family,
    connector: new WifiConnector({ url: h.url() }),
    encoderPool: pool,
    seed: name,
    name,
    playDir: dir,
    backoff: { baseMs: 20, capMs: 100 },
  });
}

/** 1.5 s of real Opus (synthetic speech) in 500 ms pages, cut into three chunks. */
function realPieces(seed: number) {
  const { ogg } = encodePcmToOgg(synthesizeSpeech({ seed, durationMs: 1500 }), {
    serial: seed,
    maxPageDurationMs: 500,
  });
  return { ogg, pieces: splitOggIntoChunks(ogg, 500) };
}

describe('a mixed fleet: a v1 toy and a v2 toy to the same parents through a gateway with versions 1,2', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ protocolVersions: [1, 2] });
  });
  afterAll(async () => {
    await h.close();
  });

  it('both clips arrive bit for bit; the v2 clip plays from its first chunk, receipted chunk by chunk', async () => {
    const f = await h.family();
    const toy2 = generateIdentity('toy', seededRandom('e2e-toy2'));
    await h.register(toy2);
    await h.store.addFamilyMember(f.id, toy2.id, 1);
    const members = [f.toy, toy2, f.mum, f.dad].map(publicPart);
    const connector = new WifiConnector({ url: h.url() });
    const v1 = new Toy({
      identity: f.toy,
      gateway: h.gatewayPublic,
      family: members,
      connector,
      encoderPool: pool,
      seed: 'v1',
    });
    const v2 = new Toy({
      identity: toy2,
      gateway: h.gatewayPublic,
      family: members,
      connector,
      encoderPool: pool,
      seed: 'v2',
      protocol: { version: 2, chunkMs: 500 },
    });
    const mum = parent(h, f.mum, members, 'mum');
    const dad = parent(h, f.dad, members, 'dad');
    const v1Sealed = collect(v1, 'sealed');
    const v2Sealed = collect(v2, 'sealed');
    const v2Delivered = collect(v2, 'delivered');
    const mumGot = collect(mum, 'received');
    const dadGot = collect(dad, 'received');
    const mumChunks = collect(mum, 'chunk');
    const errors = [...collect(mum, 'chunkError'), ...collect(dad, 'chunkError')];
    const played = collect(mum, 'played');
    for (const e of [v1, v2, mum, dad]) await e.start();
    await until(() => [v1, v2, mum, dad].every((e) => e.online), 'everyone online');

    await v1.record(1.2, { kind: 'synth', seed: 3 });
    const r2 = await v2.record(2, { kind: 'synth', seed: 4 });
    expect(r2.chunks?.length).toBe(4);
    await until(() => mumGot.length === 2 && dadGot.length === 2, 'both clips at both parents');
    const c1 = v1Sealed[0]!;
    const c2 = v2Sealed[0]!;
    expect([c1.version, c2.version, c2.chunks]).toEqual([undefined, 2, 4]);
    for (const got of [mumGot, dadGot]) {
      const a = got.find((g) => g.clipId === c1.clipId);
      const b = got.find((g) => g.clipId === c2.clipId);
      expect(Buffer.from(a!.ogg).equals(Buffer.from(c1.ogg))).toBe(true);
      expect(Buffer.from(b!.ogg).equals(Buffer.from(c2.ogg))).toBe(true);
      expect(b!.sender).toBe(toy2.id);
    }
    // Playback began with chunk 0 (half a second of audio), before the rest of the clip had arrived.
    const own = mumChunks.filter((c) => c.clipId === c2.clipId && !c.duplicate);
    expect(own.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(own[0]!.playableMs).toBeLessThanOrEqual(500);
    expect(own.at(-1)!.playableMs).toBe(c2.durationMs);
    expect(own.at(-1)!.final).toBe(true);
    expect(errors).toEqual([]);
    // Written as one playable .opus file, byte for byte.
    await until(() => played.some((p) => p.clipId === c2.clipId), 'the v2 clip written');
    const file = played.find((p) => p.clipId === c2.clipId)?.file;
    expect(Buffer.from(await readFile(file!)).equals(Buffer.from(c2.ogg))).toBe(true);
    // [PLK-14.9] one receipt per chunk and parent came back to the v2 toy; its outbox is empty.
    await until(() => v2Delivered.length === 8, 'receipts of 4 chunks × 2 parents');
    expect(new Set(v2Delivered.map((d) => `${d.recipient}:${d.chunk?.index}`)).size).toBe(8);
    expect(v2Delivered.filter((d) => d.chunk?.final).length).toBe(2);
    await until(() => v2.drained && v1.drained, 'outboxes drained');
    expect(await h.store.pendingFor(f.mum.id, 10)).toEqual([]);
    for (const e of [v1, v2, mum, dad]) await e.stop();
  });

  it('a parent that loses its connection mid-clip gets the chunks it did not receipt again: one duplicate, played once', async () => {
    const f = await h.family();
    const members = [f.toy, f.mum, f.dad].map(publicPart);
    const toy = new Toy({
      identity: f.toy,
      gateway: h.gatewayPublic,
      family: members,
      connector: new WifiConnector({ url: h.url() }),
      encoderPool: pool,
      seed: 'dup',
      protocol: { version: 2, chunkMs: 500 },
    });
    const mum = parent(h, f.mum, members, 'mum-dup');
    const chunks = collect(mum, 'chunk');
    const got = collect(mum, 'received');
    let dropped = false;
    mum.on('chunk', (c) => {
      // Before its receipt leaves: the gateway still holds the chunk as undelivered [PLK-12.4].
      if (c.index === 0 && !c.duplicate && !dropped) {
        dropped = true;
        mum.dropConnection();
      }
    });
    for (const e of [toy, mum]) await e.start();
    await until(() => toy.online && mum.online, 'online');
    const r = await toy.record(1.5, { kind: 'synth', seed: 9 });
    await until(() => got.length === 1, 'the clip');
    await until(() => chunks.some((c) => c.index === 0 && c.duplicate), 'chunk 0 again');
    expect(chunks.filter((c) => !c.duplicate).map((c) => c.index)).toEqual([0, 1, 2]);
    expect(Buffer.from(got[0]!.ogg).equals(Buffer.from(r.ogg))).toBe(true);
    await until(() => toy.drained, 'receipted');
    for (const e of [toy, mum]) await e.stop();
    expect(got.length).toBe(1);
  });
});

describe('a v1-only gateway (the default) and a v2 toy', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('every attempt is refused by name and audited; the toy gives the chunk up loudly; the parent gets nothing', async () => {
    const f = await h.family();
    const members = [f.toy, f.mum, f.dad].map(publicPart);
    const toy = new Toy({
      identity: f.toy,
      gateway: h.gatewayPublic,
      family: members,
      connector: new WifiConnector({ url: h.url() }),
      encoderPool: pool,
      seed: 'v2-on-v1',
      protocol: { version: 2, chunkMs: 500 },
      maxPublishAttempts: 2,
      backoff: { baseMs: 10, capMs: 40 },
    });
    const mum = parent(h, f.mum, members, 'mum-v1');
    const got = collect(mum, 'received');
    const abandoned = collect(toy, 'abandoned');
    const errors = collect(toy, 'error');
    for (const e of [toy, mum]) await e.start();
    await until(() => toy.online && mum.online, 'online');
    await toy.record(0.4, { kind: 'synth', seed: 5 }); // one chunk
    await until(() => abandoned.length === 1, 'the chunk given up');
    expect(errors.map((e) => (e.error as { code?: string }).code)).toContain('OUTBOX_REFUSED');
    expect(h.audit.reasons('clip.refused').filter((r) => r === 'version').length).toBeGreaterThanOrEqual(2);
    expect(h.audit.reasons('clip.refused').every((r) => r === 'version')).toBe(true);
    expect(await h.store.lastSequence(f.toy.id)).toBe(0);
    for (const e of [toy, mum]) await e.stop();
    expect(got).toEqual([]);
  });
});

describe('v2 truncation, reordering and replay, seen by the parent simulator over the real gateway', () => {
  let h: Harness;
  let f: Family;
  let mum: ParentApp;
  let members: PublicIdentity[];
  beforeAll(async () => {
    h = await startHarness({ protocolVersions: [1, 2] });
  });
  afterAll(async () => {
    await h.close();
  });

  async function setup(name: string) {
    f = await h.family();
    members = [f.toy, f.mum, f.dad].map(publicPart);
    mum = parent(h, f.mum, members, name);
    const ev = {
      chunks: collect(mum, 'chunk'),
      errors: collect(mum, 'chunkError'),
      got: collect(mum, 'received'),
    };
    await mum.start();
    await until(() => mum.online, 'mum online');
    const toy = await h.connect(f.toy);
    return { ev, toy };
  }

  it('truncation: a clip that stops before its final chunk is played as far as it came, then reported PLK_E_CHUNK_TRUNCATED', async () => {
    const { ev, toy } = await setup('mum-trunc');
    const { pieces } = realPieces(21);
    const sealer = new ChunkedClipSealer({
      sender: f.toy,
      recipients: [f.mum],
      random: seededRandom('trunc'),
    });
    for (let i = 0; i < 2; i++) {
      const p = pieces[i]!;
      await toy.publishClip(
        sealer.seal({
          ogg: p.ogg,
          durationMs: p.durationMs,
          sequence: i + 1,
          createdAt: Date.now(),
          final: false,
        }),
      );
    }
    await until(() => ev.chunks.length === 2, 'two chunks played');
    expect(ev.chunks.map((c) => c.index)).toEqual([0, 1]);
    await mum.stop();
    expect(ev.errors.map((e) => [e.error.code, e.fatal, e.clipId])).toEqual([
      ['PLK_E_CHUNK_TRUNCATED', true, toHex(sealer.clipId)],
    ]);
    expect(ev.got).toEqual([]);
  });

  it('reordering: a chunk signed out of order is held, never played out of order, and the clip fails with PLK_E_CHUNK_ORDER', async () => {
    const { ev, toy } = await setup('mum-order');
    const { pieces } = realPieces(22);
    const sealer = new ChunkedClipSealer({
      sender: f.toy,
      recipients: [f.mum],
      random: seededRandom('order'),
    });
    const c0 = sealer.seal({
      ogg: pieces[0]!.ogg,
      durationMs: pieces[0]!.durationMs,
      sequence: 11,
      createdAt: Date.now(),
      final: false,
    });
    const c1 = sealChunkRaw({
      sender: f.toy,
      recipients: [f.mum],
      clipId: sealer.clipId,
      contentKey: sealer.contentKey(),
      index: 1,
      final: true,
      previous: chunkChainHash(decodeChunk(c0)),
      sequence: 10,
      createdAt: Date.now(),
      durationMs: pieces[1]!.durationMs,
      ogg: pieces[1]!.ogg,
      random: seededRandom('order-1'),
    }).bytes;
    // The gateway sees sequences 10 then 11: both accepted, forwarded in that order.
    await toy.publishClip(c1);
    await toy.publishClip(c0);
    await until(() => ev.errors.some((e) => e.fatal), 'the clip failed');
    expect(ev.errors.map((e) => [e.error.code, e.fatal])).toEqual([
      ['PLK_E_CHUNK_ORDER', false], // chunk 1 arrived first: held
      ['PLK_E_CHUNK_ORDER', true], // its sequence is below chunk 0's
    ]);
    expect(ev.chunks.map((c) => c.index)).toEqual([0]);
    expect(ev.got).toEqual([]);
    // Chunk 1 got an unopenable receipt: the gateway set it aside instead of resending it [PLK-6.3].
    const d1 = toHex(decodeChunk(c1).deliveryId);
    await until(
      () => h.audit.events.some((e) => e.kind === 'delivery.set_aside' && e.endpoint === f.mum.id),
      'set aside',
    );
    expect((await h.store.pendingFor(f.mum.id, 10)).map((p) => p.clipId)).not.toContain(d1);
    await mum.stop();
  });

  it('replay: the gateway acknowledges an identical resend without forwarding it and refuses an older chunk; the parent refuses a chunk of a clip it already has', async () => {
    const { ev, toy } = await setup('mum-replay');
    const { ogg, pieces } = realPieces(23);
    const sealer = new ChunkedClipSealer({
      sender: f.toy,
      recipients: [f.mum],
      random: seededRandom('replay'),
    });
    const chunks = pieces.map((p, i) =>
      sealer.seal({
        ogg: p.ogg,
        durationMs: p.durationMs,
        sequence: 30 + i,
        createdAt: Date.now(),
        final: i === pieces.length - 1,
      }),
    );
    for (const c of chunks) await toy.publishClip(c);
    await until(() => ev.got.length === 1, 'the clip');
    expect(Buffer.from(ev.got[0]!.ogg).equals(Buffer.from(ogg))).toBe(true);
    // [PLK-8.2] the same chunk again: acknowledged, not forwarded (mum sees no duplicate).
    await toy.publishClip(chunks[1]!);
    // A chunk signed by the toy after the final one: accepted by the gateway (new delivery id, higher
    // sequence), refused by mum as a chunk of a clip already received.
    const extra = sealChunkRaw({
      sender: f.toy,
      recipients: [f.mum],
      clipId: sealer.clipId,
      contentKey: sealer.contentKey(),
      index: pieces.length,
      final: true,
      previous: chunkChainHash(decodeChunk(chunks.at(-1)!)),
      sequence: 40,
      createdAt: Date.now(),
      durationMs: 100,
      ogg: pieces[0]!.ogg,
      random: seededRandom('replay-extra'),
    }).bytes;
    await toy.publishClip(extra);
    await until(() => ev.errors.length === 1, 'the replay reported');
    expect(ev.errors.map((e) => [e.error.code, e.fatal, e.index])).toEqual([
      ['PLK_E_CHUNK_REPLAY', true, pieces.length],
    ]);
    expect(ev.chunks.filter((c) => c.duplicate)).toEqual([]);
    expect(ev.got.length).toBe(1);
    // An older chunk (a lower sequence) is refused at the gateway and audited; the connection closes.
    const old = new ChunkedClipSealer({
      sender: f.toy,
      recipients: [f.mum],
      random: seededRandom('replay-old'),
    });
    toy
      .publishClip(
        old.seal({ ogg: pieces[0]!.ogg, durationMs: 500, sequence: 5, createdAt: Date.now(), final: true }),
      )
      .catch(() => {});
    await closed(toy.client);
    expect(h.audit.reasons('clip.refused').at(-1)).toBe('replay');
    await mum.stop();
    expect(ev.got.length).toBe(1);
  });
});
