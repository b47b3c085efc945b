// The load-test driver in-process against a real gateway: connect, send, drain, storm and every attack through the endpoint connect client.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedGateway, startEmbeddedGateway, UNLIMITED_RATE_LIMITS } from '../../gateway/embedded.ts';
import type { PrivateIdentity } from '../../shared/identity.ts';
import { ATTACK_KINDS, type DriverInit, type EndpointSecrets, LoadDriver } from '../../sim/load-driver.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster, planForToys } from '../../sim/roster.ts';
import { buildSpeechBank } from '../../sim/speech-bank.ts';

const secrets = (p: PrivateIdentity): EndpointSecrets => ({ signSeed: p.signSeed, boxSecret: p.boxSecret });

let dir: string;
let eg: EmbeddedGateway;
let init: DriverInit;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-driver-'));
  eg = await startEmbeddedGateway({ dataDir: join(dir, 'data'), limits: UNLIMITED_RATE_LIMITS });
  // 6 toys in families of 4 (the last family holds 2), one parent each; one attacker family.
  const roster = generateRoster(planForToys(6, 4, 1, 'driver'));
  const attackers = generateRoster({
    families: 1,
    toysPerFamily: 8,
    parentsPerFamily: 1,
    seed: 'driver-att',
  });
  await registerRoster(eg.store, eg.audit, roster);
  await registerRoster(eg.store, eg.audit, attackers);
  const bank = buildSpeechBank({ count: 2, seconds: 1, seed: 'driver', encode: { complexity: 0 } });
  const toys = roster.families.flatMap((f) => f.toys);
  init = {
    index: 0,
    target: {
      kind: 'embedded',
      mode: 'gateway',
      url: eg.url,
      gatewayId: eg.identity.id,
      gatewaySignPublicKey: eg.identity.signPublicKey,
    },
    toys: toys.map((t) => secrets(t.identity)),
    toyParent: toys.map((t) => t.family),
    parents: roster.families.map((f) => secrets(f.parents[0]!.identity)),
    attackers: attackers.families[0]!.toys.map((t) => secrets(t.identity)),
    attackerParent: secrets(attackers.families[0]!.parents[0]!.identity),
    oggPool: bank.clips.map((c) => c.ogg!),
    clipDurationMs: 1000,
    receipts: true,
    parentsOpen: true,
    oversizeBytes: 2 * 1024 * 1024,
    seal: 'full',
    pubackTimeoutMs: 10_000,
    maxInflight: 1000,
  };
});

afterAll(async () => {
  await eg?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('LoadDriver (in-process)', () => {
  it('connects, sends, drains: every clip acknowledged and delivered once, receipts sent', async () => {
    const d = new LoadDriver(init);
    try {
      expect(await d.connect('parents', 0, 5000)).toEqual({ ok: 2, failed: 0 });
      expect(await d.connect('toys', 0, 5000)).toEqual({ ok: 6, failed: 0 });
      expect(d.connectedToys).toBe(6);
      await d.run(40, 0, 600);
      const drained = await d.drain(10_000);
      expect(drained).toEqual({ lost: 0, timedOut: 0, held: 0 });
      const iv = d.interval();
      expect(iv.counters.clipsSent).toBeGreaterThanOrEqual(10);
      expect(iv.counters.clipsAcked).toBe(iv.counters.clipsSent);
      expect(iv.counters.clipsDelivered).toBe(iv.counters.clipsSent);
      expect(iv.counters.receiptsSent).toBe(iv.counters.clipsDelivered);
      expect(iv.e2e.totalCount).toBe(iv.counters.clipsDelivered);
      expect(iv.connect.totalCount).toBe(8);
      expect(iv.errors).toEqual({});
      d.resetInterval();
      expect(d.interval().counters.clipsSent).toBe(0);
    } finally {
      await d.stop();
    }
  });

  it('drain: a clip acknowledged for a parent that is offline at the end is held for it, not lost', async () => {
    const d = new LoadDriver({ ...init, index: 3 });
    try {
      await d.connect('parents', 0, 5000);
      await d.connect('toys', 0, 5000);
      // The second family's parent goes away (as when its gateway node is down) before any clip.
      expect(d.dropParent(1)).toBe(true);
      await d.run(40, 0, 600);
      const drained = await d.drain(3000);
      const iv = d.interval();
      expect(drained.lost).toBe(0);
      expect(drained.timedOut).toBe(0);
      expect(drained.held).toBeGreaterThan(0);
      // Every acknowledged clip was either delivered or is held for the offline parent.
      expect(iv.counters.clipsDelivered + drained.held).toBe(iv.counters.clipsAcked);
      expect(iv.counters.clipsAcked).toBe(iv.counters.clipsSent);
      expect(d.dropParent(1)).toBe(false); // already offline
    } finally {
      await d.stop();
    }
  });

  it('storm: every toy is dropped and comes back authenticated', async () => {
    const d = new LoadDriver({ ...init, index: 1 });
    try {
      await d.connect('parents', 0, 5000);
      await d.connect('toys', 0, 5000);
      const s = await d.storm(10_000);
      expect(s).toMatchObject({ toys: 6, back: 6, failed: 0 });
      expect(d.connectedToys).toBe(6);
    } finally {
      await d.stop();
    }
  });

  it('every attack goes through the same connect client and is refused by the gateway', async () => {
    const d = new LoadDriver({ ...init, index: 2 });
    try {
      await d.connect('parents', 0, 5000);
      await d.connect('toys', 0, 5000);
      // Something to capture for the replayed-envelope attack. The same toys sent clips in the
      // first test: sequence numbers that follow the clock keep them acceptable [PLK-8.1].
      await d.run(20, 0, 300);
      expect(await d.drain(10_000)).toEqual({ lost: 0, timedOut: 0, held: 0 });
      for (const kind of ATTACK_KINDS) await d.runAttack(kind);
      const attacks = d.interval().attacks;
      for (const kind of ATTACK_KINDS) {
        expect(attacks[kind], kind).toMatchObject({ attempted: 1, refused: 1, leaked: 0, inconclusive: 0 });
      }
      // The replayed token is refused at CONNECT as a replay (CONNACK 4), not by a timeout.
      expect(attacks['replayed-token']?.signals).toEqual({ 'connack-4': 1 });
      expect(attacks['unknown-id']?.signals).toEqual({ 'connack-5': 1 });
      expect(attacks['wildcard-subscription']?.signals).toEqual({ 'suback-128': 1 });
    } finally {
      await d.stop();
    }
  });

  it('stop: clips still waiting for their PUBACK become interrupted errors (sent = acked + errors)', async () => {
    const d = new LoadDriver({ ...init, index: 3 });
    await d.connect('parents', 0, 5000);
    await d.connect('toys', 0, 5000);
    for (let i = 0; i < 6; i++) d.sendClip();
    await d.stop();
    const iv = d.interval();
    expect(iv.counters.clipsSent).toBe(6);
    expect(iv.counters.clipsAcked + (iv.errors.interrupted ?? 0)).toBe(6);
  });
});
