// Toy and parent state machines over a transport test double and a virtual clock: connect/backoff, outbox, inbox, receipts, determinism.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backoffCeiling, backoffSettings } from '../../device/backoff.ts';
import { VirtualClock } from '../../device/clock.ts';
import { EncoderPool } from '../../device/codec/pool.ts';
import type { EndpointEvents, EndpointState } from '../../device/endpoint.ts';
import { ParentApp } from '../../device/parent.ts';
import { Toy } from '../../device/toy.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { MSG } from '../../shared/limits.ts';
import { seededRandom } from '../../shared/random.ts';
import { FakeNet } from './fake-net.ts';

const ids = seededRandom('toy-test-identities');
const gateway = generateIdentity('gateway', ids);
const toyId = generateIdentity('toy', ids);
const mumId = generateIdentity('parent', ids);
const dadId = generateIdentity('parent', ids);
const family = [toyId, mumId, dadId].map(publicPart);

let dir: string;
const pool = new EncoderPool({ maxEncoders: 2 });
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-toy-'));
});
afterAll(async () => {
  pool.close();
  await rm(dir, { recursive: true, force: true });
});

/** Lets real I/O (file writes) finish: polls `cond` on real event-loop turns, up to 5 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > 5000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function collect<K extends keyof EndpointEvents>(ep: Toy | ParentApp, kind: K): EndpointEvents[K][] {
  const out: EndpointEvents[K][] = [];
  ep.on(kind, (e) => out.push(e));
  return out;
}

describe('toy state machine', () => {
  it('unprovisioned → idle → connecting (backoff with full jitter) → checking → online → connecting on loss', async () => {
    const clock = new VirtualClock();
    const net = new FakeNet();
    net.up = false;
    const toy = new Toy({
      connector: net,
      clock,
      seed: 'sm',
      encoderPool: pool,
      backoff: { baseMs: 100, capMs: 1600 },
    });
    const states: EndpointState[] = [toy.state];
    toy.on('state', (e) => states.push(e.to));
    const retries = collect(toy, 'retry');
    await expect(toy.start()).rejects.toThrow(/not provisioned/);
    toy.provision({ identity: toyId, gateway: publicPart(gateway), family });
    await toy.start();
    await clock.advance(20_000);
    expect(toy.state).toBe('connecting');
    expect(retries.length).toBeGreaterThan(8);
    const s = backoffSettings({ baseMs: 100, capMs: 1600 });
    retries.forEach((r, i) => {
      expect(r.delayMs).toBeGreaterThanOrEqual(0);
      expect(r.delayMs).toBeLessThan(backoffCeiling(i, s));
    });
    net.up = true;
    await clock.advance(2000);
    expect(toy.state).toBe('online');
    expect(states.slice(0, 4)).toEqual(['unprovisioned', 'idle', 'connecting', 'checking']);
    expect(states.at(-1)).toBe('online');
    toy.dropConnection();
    await clock.advance(0);
    expect(toy.state).toBe('connecting');
    await clock.advance(200); // first delay after a loss is < baseMs
    expect(toy.state).toBe('online');
    await toy.stop();
    expect(toy.state).toBe('stopped');
  });
});

describe('toy ↔ parent over the transport double', () => {
  it('records, seals to both parents, publishes, gets PUBACK, delivery receipts; parents play and discard duplicates', async () => {
    const clock = new VirtualClock();
    const net = new FakeNet();
    const toy = new Toy({
      identity: toyId,
      gateway: publicPart(gateway),
      family,
      connector: net,
      clock,
      seed: 'x',
      encoderPool: pool,
    });
    const mum = new ParentApp({
      identity: mumId,
      gateway: publicPart(gateway),
      family,
      connector: net,
      clock,
      seed: 'm',
      playDir: dir,
      name: 'mum',
    });
    const dad = new ParentApp({
      identity: dadId,
      gateway: publicPart(gateway),
      family,
      connector: net,
      clock,
      seed: 'd',
    });
    const sealed = collect(toy, 'sealed');
    const acked = collect(toy, 'acked');
    const delivered = collect(toy, 'delivered');
    const mumGot = collect(mum, 'received');
    const mumPlayed = collect(mum, 'played');
    const dadGot = collect(dad, 'received');
    for (const ep of [toy, mum, dad]) await ep.start();
    await clock.advance(10);
    const rec = await toy.record(1.5, { kind: 'synth', seed: 1 });
    await clock.advance(10);
    expect(sealed[0]?.recipients.slice().sort()).toEqual([mumId.id, dadId.id].sort());
    expect(acked.map((a) => a.clipId)).toEqual([rec.clipId]);
    expect(toy.outbox?.size).toBe(0);
    expect(mumGot).toHaveLength(1);
    expect(dadGot).toHaveLength(1);
    expect(Buffer.from(mumGot[0]!.ogg).equals(Buffer.from(rec.ogg))).toBe(true);
    await until(() => mumPlayed.length === 1, 'mum played');
    expect(mumPlayed[0]?.durationMs).toBe(1500);
    const file = mumPlayed[0]?.file;
    expect(file && Buffer.from(await readFile(file)).equals(Buffer.from(rec.ogg))).toBe(true);
    expect(delivered.map((d) => d.recipient).sort()).toEqual([mumId.id, dadId.id].sort());

    // The same envelope again (at-least-once delivery): discarded, receipted again, not played again.
    const receiptsBefore = net.published.filter(
      (p) => p.from === mumId.id && p.payload[0] === MSG.RECEIPT,
    ).length;
    net.link(mumId.id)?.deliver(rec.envelope);
    await clock.advance(10);
    await until(() => mumGot.length === 2, 'duplicate');
    expect(mumGot.map((r) => r.duplicate)).toEqual([false, true]);
    expect(mumPlayed).toHaveLength(1);
    expect(net.published.filter((p) => p.from === mumId.id && p.payload[0] === MSG.RECEIPT).length).toBe(
      receiptsBefore + 1,
    );
    expect((await readdir(dir)).filter((f) => f.endsWith('.opus'))).toHaveLength(1);

    // A parent's voice message reaches the toy.
    const toyGot = collect(toy, 'received');
    const msg = await dad.sendVoice(1, { kind: 'synth', seed: 2 });
    await clock.advance(10);
    expect(toyGot.map((r) => r.clipId)).toEqual([msg.clipId]);
    for (const ep of [toy, mum, dad]) await ep.stop();
  });

  it('loses nothing across a restart: the persisted outbox is resent with its sequence numbers', async () => {
    const path = join(dir, 'toy-outbox.json');
    const clock = new VirtualClock();
    const net = new FakeNet();
    net.up = false;
    const opts = {
      identity: toyId,
      gateway: publicPart(gateway),
      family,
      connector: net,
      clock,
      encoderPool: pool,
    };
    const a = new Toy({ ...opts, seed: 'r1', outbox: { path } });
    await a.start();
    const r1 = await a.record(0.5, { kind: 'synth', seed: 3 });
    const r2 = await a.record(0.5, { kind: 'synth', seed: 4 });
    expect([r1.sequence, r2.sequence]).toEqual([1, 2]);
    await a.stop(); // the toy is switched off with two clips unsent

    net.up = true;
    const b = new Toy({ ...opts, seed: 'r2', outbox: { path } });
    const acked = collect(b, 'acked');
    await b.start();
    expect(b.outbox?.size).toBe(2);
    await clock.advance(1000);
    await until(() => acked.length === 2, 'two PUBACKs');
    expect(acked.map((x) => x.sequence)).toEqual([1, 2]);
    const sent = net.published.filter((p) => p.payload[0] === MSG.CLIP).map((p) => Buffer.from(p.payload));
    expect(sent.map((p) => p.equals(Buffer.from(r1.envelope)) || p.equals(Buffer.from(r2.envelope)))).toEqual(
      [true, true],
    );
    const r3 = await b.record(0.5, { kind: 'synth', seed: 5 });
    expect(r3.sequence).toBe(3);
    await b.stop();
  });

  it('a clip whose PUBACK was lost and whose receipt came first is reported acknowledged once, not resent', async () => {
    const clock = new VirtualClock();
    const net = new FakeNet();
    const base = { gateway: publicPart(gateway), family, connector: net, clock };
    const toy = new Toy({ ...base, identity: toyId, seed: 'lost-ack', encoderPool: pool });
    const mum = new ParentApp({ ...base, identity: mumId, seed: 'lm' });
    const dad = new ParentApp({ ...base, identity: dadId, seed: 'ld' });
    const acked = collect(toy, 'acked');
    const delivered = collect(toy, 'delivered');
    await toy.start();
    await clock.advance(10);
    net.loseAcksOf.add(toyId.id);
    const rec = await toy.record(0.5, { kind: 'synth', seed: 7 });
    await clock.advance(10);
    // Stored and queued for the parents (offline), but its PUBACK never came: the Wi-Fi drops.
    expect(net.published.filter((p) => p.from === toyId.id)).toHaveLength(1);
    expect(acked).toEqual([]);
    net.loseAcksOf.delete(toyId.id);
    toy.dropConnection();
    // Both parents come online meanwhile, open the clip and receipt it; the receipts wait for the toy.
    await mum.start();
    await dad.start();
    await clock.advance(1);
    await until(() => net.published.filter((p) => p.payload[0] === MSG.RECEIPT).length === 2, 'two receipts');
    // The toy reconnects: the receipts arrive before its pump resends, and prove the clip stored.
    await clock.advance(1000);
    await until(() => delivered.length === 2, 'receipts at the toy');
    await clock.advance(1000);
    await until(() => acked.length >= 1, 'the clip reported acknowledged');
    expect(acked.map((a) => [a.clipId, a.sequence, a.via])).toEqual([[rec.clipId, rec.sequence, 'receipt']]);
    expect(toy.outbox?.size).toBe(0);
    expect(net.published.filter((p) => p.from === toyId.id && p.payload[0] === MSG.CLIP)).toHaveLength(1);
    for (const ep of [toy, mum, dad]) await ep.stop();
  });

  it('refuses to record into a full outbox with a typed error', async () => {
    const net = new FakeNet();
    net.up = false;
    const clock = new VirtualClock();
    const toy = new Toy({
      identity: toyId,
      gateway: publicPart(gateway),
      family,
      connector: net,
      clock,
      seed: 'f',
      encoderPool: pool,
      outbox: { maxItems: 2 },
    });
    await toy.record(0.2, { kind: 'synth', seed: 1 });
    await toy.record(0.2, { kind: 'synth', seed: 2 });
    await expect(toy.record(0.2, { kind: 'synth', seed: 3 })).rejects.toMatchObject({
      name: 'OutboxError',
      code: 'OUTBOX_FULL',
    });
    expect(toy.outbox?.items().map((i) => i.sequence)).toEqual([1, 2]);
  });
});

describe('WAV in, WAV out', () => {
  it('a parent sends the repo speech fixture; the toy plays it as a 16 kHz WAV file', async () => {
    const clock = new VirtualClock();
    const net = new FakeNet();
    const playDir = await mkdtemp(join(dir, 'wav-'));
    const toy = new Toy({
      identity: toyId,
      gateway: publicPart(gateway),
      family,
      connector: net,
      clock,
      seed: 'w',
      encoderPool: pool,
      playDir,
      playFormat: 'wav',
    });
    const mum = new ParentApp({
      identity: mumId,
      gateway: publicPart(gateway),
      family,
      connector: net,
      clock,
      seed: 'wm',
      encoderPool: pool,
    });
    const played = collect(toy, 'played');
    await toy.start();
    await mum.start();
    await clock.advance(5);
    const fixture = join(import.meta.dirname, '../fixtures/speech-16k.wav');
    const msg = await mum.sendVoice(2, { kind: 'wav', path: fixture });
    expect(msg.durationMs).toBe(2000);
    await clock.advance(5);
    await until(() => played.length === 1, 'toy played');
    const wav = await readFile(played[0]!.file!);
    expect(wav.subarray(0, 4).toString('latin1')).toBe('RIFF');
    expect(wav.readUInt32LE(24)).toBe(16000);
    expect(wav.length).toBe(44 + 2000 * 16 * 2);
    await toy.stop();
    await mum.stop();
  });
});

describe('determinism', () => {
  async function run(seed: string): Promise<Buffer[]> {
    const clock = new VirtualClock(Date.UTC(2026, 5, 1));
    const net = new FakeNet();
    const p = new EncoderPool({ maxEncoders: 1 });
    const toy = new Toy({
      identity: toyId,
      gateway: publicPart(gateway),
      family,
      connector: net,
      clock,
      seed,
      encoderPool: p,
    });
    await toy.start();
    await clock.advance(5);
    await toy.record(1, { kind: 'synth', seed: 11 });
    await clock.advance(3000);
    await toy.record(0.6, { kind: 'synth', seed: 12 });
    await clock.advance(5);
    await toy.stop();
    p.close();
    return net.published.filter((x) => x.payload[0] === MSG.CLIP).map((x) => Buffer.from(x.payload));
  }

  it('same seed → identical envelope bytes in virtual time; another seed → different bytes', async () => {
    const a = await run('seed-A');
    const b = await run('seed-A');
    const c = await run('seed-B');
    expect(a).toHaveLength(2);
    expect(b.map((x) => x.toString('hex'))).toEqual(a.map((x) => x.toString('hex')));
    expect(c).toHaveLength(2);
    expect(c[0]!.equals(a[0]!)).toBe(false);
    expect(c[1]!.equals(a[1]!)).toBe(false);
  });
});
