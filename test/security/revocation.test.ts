// Attacks on revocation and erasure: revoked or erased endpoints are cut off at once, never come back, and toys re-seal to the family's current roster [PLK-4.6][PLK-12.5][PLK-12.7].
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoint, EndpointEvents } from '../../device/endpoint.ts';
import { ParentApp } from '../../device/parent.ts';
import { Toy } from '../../device/toy.ts';
import { ConnectRefusedError, connectEndpoint } from '../../device/transport/mqtt-connect.ts';
import { WifiConnector } from '../../device/transport/wifi.ts';
import { addFamilyMember, eraseFamily, registerFamilies, revoke } from '../../gateway/admin.ts';
import {
  type EmbeddedGateway,
  LOOPBACK_FLEET_RATE_LIMITS,
  startEmbeddedGateway,
} from '../../gateway/embedded.ts';
import { StoreError } from '../../gateway/store/common.ts';
import { decodeClip } from '../../shared/envelope.ts';
import { generateIdentity, type PrivateIdentity, publicPart } from '../../shared/identity.ts';
import type { EndpointId } from '../../shared/types.ts';
import { registerRoster } from '../../sim/provision.ts';
import { generateRoster, type RosterFamily } from '../../sim/roster.ts';
import { closed } from '../gateway/helpers/harness.ts';
import { expectCodeAsync } from '../helpers/errors.ts';

let dir: string;
let eg: EmbeddedGateway;
const running: Endpoint[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'plk-revoke-'));
  eg = await startEmbeddedGateway({
    dataDir: join(dir, 'data'),
    limits: LOOPBACK_FLEET_RATE_LIMITS,
    gateway: { registryWatchMs: 50 },
  });
});
afterAll(async () => {
  await Promise.all(running.map((e) => e.stop()));
  await eg?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A family of one toy and two parents, registered through the admin API. */
async function family(seed: string): Promise<RosterFamily> {
  const roster = generateRoster({ families: 1, toysPerFamily: 1, parentsPerFamily: 2, seed });
  await registerRoster(eg.store, eg.audit, roster);
  return roster.families[0]!;
}

const connector = () => new WifiConnector({ url: eg.url, timeoutMs: 3000 });
const fast = { baseMs: 20, capMs: 200 };

/** A started endpoint that knows only itself: the gateway's roster tells it its family. */
async function start<T extends Endpoint>(
  make: (o: ConstructorParameters<typeof Toy>[0]) => T,
  identity: PrivateIdentity,
): Promise<T> {
  const ep = make({
    identity,
    gateway: eg.identity,
    family: [publicPart(identity)],
    connector: connector(),
    backoff: fast,
    decodeReceived: false,
  });
  running.push(ep);
  await ep.start();
  return ep;
}

function next<K extends keyof EndpointEvents>(
  ep: Endpoint,
  kind: K,
  pred: (e: EndpointEvents[K]) => boolean = () => true,
  ms = 10_000,
): Promise<EndpointEvents[K]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${String(kind)} event within ${ms} ms`)), ms);
    const off = ep.on(kind, (e) => {
      if (!pred(e)) return;
      clearTimeout(t);
      off();
      resolve(e);
    });
  });
}

const online = (ep: Endpoint) =>
  ep.online ? Promise.resolve() : next(ep, 'state', (e) => e.to === 'online').then(() => undefined);

async function metric(name: 'sessionsClosed', reason: string): Promise<number> {
  const m = await eg.gateway.metrics[name].get();
  return m.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

describe('attack: a revoked parent keeps its live session', () => {
  it('is cut off at once, cannot reconnect, and the toy seals to the remaining parent only', async () => {
    const f = await family('revoke-live');
    const toyId = f.toys[0]!.identity;
    const [mumId, dadId] = f.parents.map((p) => p.identity);
    const toy = await start((o) => new Toy(o), toyId);
    const mum = await start((o) => new ParentApp(o), mumId!);
    const dad = await start((o) => new ParentApp(o), dadId!);
    await Promise.all([online(toy), online(mum), online(dad)]);
    // Every endpoint learned its family from the gateway's signed roster.
    expect(new Set(toy.family().map((m) => m.id))).toEqual(new Set([mumId!.id, dadId!.id]));

    const before = await metric('sessionsClosed', 'revoked');
    const dadGone = next(dad, 'state', (e) => e.from === 'online');
    const toyRoster = next(toy, 'roster', (e) => !e.members.includes(dadId!.id));
    await revoke(eg.store, eg.audit, dadId!.id);
    await dadGone;
    expect(await metric('sessionsClosed', 'revoked')).toBe(before + 1);
    expect((await toyRoster).members).toEqual(expect.arrayContaining([toyId.id, mumId!.id]));
    // The revoked parent's reconnects are refused with CONNACK 5.
    const retry = await next(dad, 'retry');
    expect(retry.error).toBeInstanceOf(ConnectRefusedError);
    expect((retry.error as ConnectRefusedError).returnCode).toBe(5);
    await dad.stop();

    // A new recording goes to mum alone, and arrives.
    const sealed = next(toy, 'sealed');
    const got = next(mum, 'received');
    const sent = await toy.record(1, { kind: 'synth', seed: 1 });
    expect((await sealed).recipients).toEqual([mumId!.id]);
    expect((await got).clipId).toBe(sent.clipId);
  });
});

describe('attack: clips queued for a parent who is then revoked are refused and lost', () => {
  it('the toy re-seals them to the current roster when it comes back: the remaining parent gets all of them', async () => {
    const f = await family('revoke-queued');
    const toyId = f.toys[0]!.identity;
    const [mumId, dadId] = f.parents.map((p) => p.identity);
    // The toy records three clips while offline, sealed to the roster it knew (mum and dad).
    const toy = new Toy({
      identity: toyId,
      gateway: eg.identity,
      family: [toyId, mumId!, dadId!].map(publicPart),
      connector: connector(),
      backoff: fast,
    });
    running.push(toy);
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await toy.record(1, { kind: 'synth', seed: 10 + i }));
    for (const q of queued)
      expect(
        decodeClip(q.envelope)
          .header.recipients.map((r) => r.id)
          .sort(),
      ).toEqual([mumId!.id, dadId!.id].sort());
    await revoke(eg.store, eg.audit, dadId!.id);

    const mum = await start((o) => new ParentApp(o), mumId!);
    const got = new Set<string>();
    mum.on('received', (e) => got.add(e.clipId));
    const roster = next(toy, 'roster');
    let abandoned = 0;
    toy.on('abandoned', () => abandoned++);
    await toy.start();
    expect((await roster).resealed).toBe(3);
    const t0 = Date.now();
    while (got.size < 3 && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
    expect([...got].sort()).toEqual(queued.map((q) => q.clipId).sort());
    expect(abandoned).toBe(0);
  });

  it('a parent added later gets the clips still queued, and the recordings after', async () => {
    const f = await family('added-later');
    const toyId = f.toys[0]!.identity;
    const [mumId, dadId] = f.parents.map((p) => p.identity);
    const toy = new Toy({
      identity: toyId,
      gateway: eg.identity,
      family: [toyId, mumId!, dadId!].map(publicPart),
      connector: connector(),
      backoff: fast,
    });
    running.push(toy);
    const queued = await toy.record(1, { kind: 'synth', seed: 20 });
    // Grandma joins the family while the toy is offline.
    const gran2 = generateIdentity('parent');
    await eg.store.addEndpoint({
      id: gran2.id,
      role: 'parent',
      signPublicKey: gran2.signPublicKey,
      boxPublicKey: gran2.boxPublicKey,
      createdAt: Date.now(),
    });
    const famId = (await eg.store.getEndpoint(toyId.id))!.familyId!;
    await addFamilyMember(eg.store, eg.audit, famId, gran2.id);

    const granApp = await start((o) => new ParentApp(o), gran2);
    const got = new Set<string>();
    granApp.on('received', (e) => got.add(e.clipId));
    const roster = next(toy, 'roster');
    await toy.start();
    expect((await roster).resealed).toBe(1);
    const later = await toy.record(1, { kind: 'synth', seed: 21 });
    const t0 = Date.now();
    while (got.size < 2 && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
    expect([...got].sort()).toEqual([queued.clipId, later.clipId].sort());
    expect(
      decodeClip(later.envelope)
        .header.recipients.map((r) => r.id)
        .sort(),
    ).toEqual([mumId!.id, dadId!.id, gran2.id].sort());
  });
});

describe('attack: erasure re-arms what revocation forbade', () => {
  it("erase cuts the toy's session; the same keys cannot register again; an envelope captured before is refused", async () => {
    const f = await family('erase');
    const toyId = f.toys[0]!.identity;
    const mumId = f.parents[0]!.identity;
    const toy = await start((o) => new Toy(o), toyId);
    await online(toy);
    const captured = await toy.record(1, { kind: 'synth', seed: 30 });
    await next(toy, 'acked', (e) => e.clipId === captured.clipId);
    const famId = (await eg.store.getEndpoint(toyId.id))!.familyId!;

    const gone = next(toy, 'state', (e) => e.from === 'online');
    const before = await metric('sessionsClosed', 'erased');
    await eraseFamily(eg.store, eg.audit, famId);
    await gone;
    expect(await metric('sessionsClosed', 'erased')).toBeGreaterThan(before);
    await toy.stop();

    // The ids are tombstones: registering the very same keys again is refused.
    expect(await eg.store.isTombstoned(toyId.id)).toBe(true);
    await expectCodeAsync(
      registerFamilies(eg.store, eg.audit, [{ members: [publicPart(toyId), publicPart(mumId)] }]),
      'STORE_TOMBSTONED',
      StoreError,
    );
    // The toy cannot connect.
    await expect(
      connectEndpoint({ url: eg.url, identity: toyId, gateway: eg.identity }),
    ).rejects.toBeInstanceOf(ConnectRefusedError);
    // An envelope captured before the erasure, relayed by a member of another family, is refused.
    const other = await family('erase-other');
    const relay = await connectEndpoint({
      url: eg.url,
      identity: other.parents[0]!.identity,
      gateway: eg.identity,
    });
    const shut = closed(relay.client, 5000);
    relay.publishRelay(captured.envelope).catch(() => {});
    await shut;
    const refused = await eg.gateway.metrics.clipsRefused.get();
    expect(refused.values.find((v) => v.labels.reason === 'relay-not-family')?.value ?? 0).toBeGreaterThan(0);
    // Nothing of the family is left in the store but the tombstoned ids.
    expect(await eg.store.getEndpoint(mumId.id)).toBeUndefined();
    expect((await eg.store.pendingFor(mumId.id as EndpointId, 10)).length).toBe(0);
  });
});
