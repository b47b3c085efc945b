// The toy and parent simulators speaking protocol v2 over the transport double and a virtual clock: streaming chunks, playback from chunk 0, idle truncation, outbox persistence, re-sealing to a new roster [PLK-14].
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synthesizeSpeech } from '../../device/audio/synth.ts';
import { VirtualClock } from '../../device/clock.ts';
import { encodePcmToOgg } from '../../device/codec/clip.ts';
import { splitOggIntoChunks } from '../../device/codec/ogg-chunks.ts';
import { EncoderPool } from '../../device/codec/pool.ts';
import { CHUNK_IDLE_MS, type Endpoint, type EndpointEvents } from '../../device/endpoint.ts';
import { Outbox } from '../../device/outbox.ts';
import { ParentApp } from '../../device/parent.ts';
import { Toy } from '../../device/toy.ts';
import { toHex } from '../../shared/bytes.ts';
import { ChunkedClipSealer, decodeChunk } from '../../shared/chunked.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { createRoster } from '../../shared/roster.ts';
import { FakeNet } from './fake-net.ts';

const ids = seededRandom('v2-device-identities');
const gateway = generateIdentity('gateway', ids);
const toyId = generateIdentity('toy', ids);
const mumId = generateIdentity('parent', ids);
const dadId = generateIdentity('parent', ids);
const family = [toyId, mumId, dadId].map(publicPart);

let dir: string;
const pool = new EncoderPool({ maxEncoders: 2 });
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-v2-device-'));
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

/** Lets real I/O (outbox file writes) finish: polls on real event-loop turns, up to 5 s. */
async function until(cond: () => boolean, what: string, clock?: VirtualClock): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > 5000) throw new Error(`timed out waiting for ${what}`);
    if (clock) await clock.advance(10);
    else await new Promise((r) => setTimeout(r, 5));
  }
}

function endpoints(
  clock: VirtualClock,
  net: FakeNet,
  toyOpts: Partial<ConstructorParameters<typeof Toy>[0]> = {},
) {
  const common = { gateway: publicPart(gateway), family, connector: net, clock, encoderPool: pool };
  const toy = new Toy({
    ...common,
    identity: toyId,
    seed: 't',
    protocol: { version: 2, chunkMs: 500 },
    ...toyOpts,
  });
  const mum = new ParentApp({ ...common, identity: mumId, seed: 'm', playDir: dir, name: 'mum' });
  const dad = new ParentApp({ ...common, identity: dadId, seed: 'd' });
  return { toy, mum, dad };
}

describe('v2 toy and parents over the transport double', () => {
  it('a paced recording streams: chunk 0 is played half a second in, while the toy is still recording', async () => {
    const clock = new VirtualClock();
    const net = new FakeNet();
    const { toy, mum, dad } = endpoints(clock, net, { pacedRecording: true });
    const chunks = collect(mum, 'chunk');
    const got = collect(mum, 'received');
    const sealed = collect(toy, 'sealed');
    const played = collect(mum, 'played');
    for (const e of [toy, mum, dad]) await e.start();
    await clock.advance(10);
    const t0 = clock.now();
    const recording = toy.record(2, { kind: 'synth', seed: 1 });
    await until(() => chunks.length >= 1, 'chunk 0 played', clock);
    expect(chunks[0]).toMatchObject({ index: 0, final: false, duplicate: false });
    expect(clock.now() - t0).toBeLessThan(1000); // the rest of the clip is still being recorded
    expect(sealed).toEqual([]);
    await until(() => got.length === 1, 'the whole clip', clock);
    const r = await recording;
    expect(chunks.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(Buffer.from(got[0]!.ogg).equals(Buffer.from(r.ogg))).toBe(true);
    expect(sealed[0]).toMatchObject({ version: 2, chunks: 4, clipId: r.clipId });
    // Decoded chunk by chunk and written as one file.
    await until(() => played.length === 1, 'the file written');
    expect(played[0]!.file).toBe(join(dir, readdirSync(dir).find((n) => n.includes(r.clipId.slice(0, 12)))!));
    expect(played[0]!.durationMs).toBe(r.durationMs);
    expect(Buffer.from(await readFile(played[0]!.file!)).equals(Buffer.from(r.ogg))).toBe(true);
    await until(() => toy.drained, 'every chunk receipted', clock);
    for (const e of [toy, mum, dad]) await e.stop();
  });

  it('a clip whose chunks stop coming is truncated after the idle limit of the device clock, not before', async () => {
    const clock = new VirtualClock();
    const net = new FakeNet();
    const { mum } = endpoints(clock, net);
    const errors = collect(mum, 'chunkError');
    const chunks = collect(mum, 'chunk');
    await mum.start();
    await clock.advance(10);
    const { ogg } = encodePcmToOgg(synthesizeSpeech({ seed: 2, durationMs: 1500 }), {
      serial: 2,
      maxPageDurationMs: 500,
    });
    const pieces = splitOggIntoChunks(ogg, 500);
    const sealer = new ChunkedClipSealer({
      sender: toyId,
      recipients: [mumId],
      random: seededRandom('idle'),
    });
    for (let i = 0; i < 2; i++) {
      const p = pieces[i]!;
      net.push(
        mumId.id,
        sealer.seal({
          ogg: p.ogg,
          durationMs: p.durationMs,
          sequence: i + 1,
          createdAt: clock.now(),
          final: false,
        }),
      );
    }
    await until(() => chunks.length === 2, 'two chunks', clock);
    await clock.advance(CHUNK_IDLE_MS - 1000);
    expect(errors).toEqual([]);
    await clock.advance(CHUNK_IDLE_MS);
    expect(errors.map((e) => [e.error.code, e.fatal, e.clipId])).toEqual([
      ['PLK_E_CHUNK_TRUNCATED', true, toHex(sealer.clipId)],
    ]);
    await mum.stop();
  });

  it('queued chunks survive a restart in the outbox file and are resent; the parent completes the clip', async () => {
    const clock = new VirtualClock();
    const net = new FakeNet();
    net.up = false;
    const path = join(dir, 'toy-v2.outbox');
    const first = endpoints(clock, net, { outbox: { path } }).toy;
    await first.start();
    const r = await first.record(1.5, { kind: 'synth', seed: 3 });
    expect(first.outbox?.size).toBe(3);
    await first.stop();
    const reopened = await Outbox.open({ path });
    expect(reopened.items().map((i) => i.clipId)).toEqual(
      r.chunks!.map((c) => toHex(decodeChunk(c).deliveryId)),
    );
    net.up = true;
    const { toy, mum } = endpoints(clock, net, { outbox: reopened });
    const got = collect(mum, 'received');
    for (const e of [toy, mum]) await e.start();
    await until(() => got.length === 1, 'the clip', clock);
    expect(Buffer.from(got[0]!.ogg).equals(Buffer.from(r.ogg))).toBe(true);
    for (const e of [toy, mum]) await e.stop();
  });

  it('a queued clip is re-sealed whole to a new roster [PLK-4.6]: the removed parent gets nothing', async () => {
    const clock = new VirtualClock();
    const net = new FakeNet();
    net.up = false;
    net.sendsRoster = true;
    const { toy, mum, dad } = endpoints(clock, net);
    const rosters = collect(toy, 'roster');
    const mumGot = collect(mum, 'received');
    const dadChunks = collect(dad, 'chunk');
    await toy.start();
    const r = await toy.record(1.5, { kind: 'synth', seed: 4 });
    expect(toy.outbox?.items()[0]?.recipients).toEqual([mumId.id, dadId.id]);
    // Dad left the family while the toy was offline: the roster waits in its inbox.
    net.push(
      toyId.id,
      createRoster({ gateway, version: 7, issuedAt: clock.now(), members: [toyId, mumId].map(publicPart) }),
    );
    for (const e of [mum, dad]) await e.start();
    net.up = true;
    await until(() => mumGot.length === 1, 'mum has the clip', clock);
    expect(rosters.map((x) => x.resealed)).toEqual([1]);
    expect(Buffer.from(mumGot[0]!.ogg).equals(Buffer.from(r.ogg))).toBe(true);
    const sent = net.published.filter((p) => p.from === toyId.id).map((p) => decodeChunk(p.payload));
    expect(sent.map((d) => d.header.recipients.map((x) => x.id))).toEqual(sent.map(() => [mumId.id]));
    // Same clip, same delivery ids and sequence numbers, sealed anew.
    expect(sent.map((d) => toHex(d.deliveryId))).toEqual(
      r.chunks!.map((c) => toHex(decodeChunk(c).deliveryId)),
    );
    expect(dadChunks).toEqual([]);
    for (const e of [toy, mum, dad]) await e.stop();
  });

  it('options: v1 stays the default; a chunk length outside 250..10000 ms is refused', () => {
    const clock = new VirtualClock();
    const net = new FakeNet();
    const base = {
      identity: toyId,
      gateway: publicPart(gateway),
      family,
      connector: net,
      clock,
      encoderPool: pool,
    };
    expect(() => new Toy({ ...base, protocol: { version: 2, chunkMs: 100 } })).toThrow(RangeError);
    expect(() => new Toy({ ...base, protocol: { version: 3 as 2 } })).toThrow(RangeError);
    expect(() => new Toy(base)).not.toThrow();
  });
});
