// The CloudPets failures of 2017 — an exposed store, public recording URLs, weak passwords, a BLE toy anyone could use, apps that trusted any server, a wiped and ransomed database, unsigned firmware — each replayed as an attack on PlushLink's real parts, and refused: counted, audited within bounds, while a real toy → parent clip still goes through.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { type AddressInfo, createServer, Server, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Aedes } from 'aedes';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bleAddress } from '../../device/ble/air.ts';
import { ATT_ERR, type AttError } from '../../device/ble/att.ts';
import { COMMAND, HANDLES } from '../../device/ble/gatt.ts';
import {
  AUTH_REQ,
  IO_CAP,
  NUMERIC_COMPARISON_FEATURES,
  PAIRING_FAILED,
  type PairingFeatures,
} from '../../device/ble/pairing.ts';
import { BlePhone, type PhoneLink, PhoneRelay } from '../../device/ble/phone.ts';
import { SeededRandom } from '../../device/ble/random.ts';
import type { Endpoint, EndpointEvents, EndpointOptions } from '../../device/endpoint.ts';
import { type FirmwareReport, FirmwareUpdater } from '../../device/firmware.ts';
import { Outbox } from '../../device/outbox.ts';
import { ParentApp } from '../../device/parent.ts';
import { loadPcm } from '../../device/recorder.ts';
import { Toy } from '../../device/toy.ts';
import { GatewayProofError } from '../../device/transport/mqtt-connect.ts';
import { WifiConnector } from '../../device/transport/wifi.ts';
import {
  AdminError,
  backup,
  eraseFamily,
  openAdmin,
  registerFamilies,
  restore,
  verifyAudit,
} from '../../gateway/admin.ts';
import {
  DataDirError,
  type EmbeddedGateway,
  LOOPBACK_FLEET_RATE_LIMITS,
  startEmbeddedGateway,
} from '../../gateway/embedded.ts';
import { firmwarePaths, publishRelease, releaseFileName, trustVendor } from '../../gateway/firmware.ts';
import type { FamilyId } from '../../gateway/interfaces.ts';
import { createGatewayMetrics, serveMetrics } from '../../gateway/metrics.ts';
import { toBase32, toHex } from '../../shared/bytes.ts';
import { decodeClip, openClip, sealClip } from '../../shared/envelope.ts';
import { type ErrorCode, isPlushlinkError } from '../../shared/errors.ts';
import { createFirmwareManifest, encodeFirmwareMessage } from '../../shared/firmware.ts';
import {
  deriveEndpointId,
  generateIdentity,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { createConnectToken, createGatewayProof, decodeConnectToken } from '../../shared/token.ts';
import { registerRoster } from '../../sim/provision.ts';
import { familyPublics, generateRoster, type RosterFamily, rosterMembers } from '../../sim/roster.ts';
import { bytes, scriptedUi, type World, world } from '../ble/helpers.ts';
import {
  type Family,
  type Harness,
  inbox,
  makeClip,
  rawConnect,
  startHarness,
} from '../gateway/helpers/harness.ts';
import { selfSignedCert } from '../helpers/tls.ts';

/** Only keeps a broken gateway from hanging a test; nothing is asserted about how long anything takes. */
const HANG_GUARD_MS = 15_000;
const fast = { baseMs: 20, capMs: 200 } as const;

interface MetricReader {
  get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>> }[] }>;
}

/** Sum of a prom-client counter's values whose labels match `labels`. */
async function counter(c: MetricReader, labels: Record<string, string> = {}): Promise<number> {
  const m = await c.get();
  return m.values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((n, v) => n + v.value, 0);
}

/** Polls `cond` until it holds (a hang guard, not a timing assertion). */
async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = HANG_GUARD_MS,
): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Every event of `kind` an endpoint emits from now on. */
function collect<K extends keyof EndpointEvents>(ep: Endpoint, kind: K): EndpointEvents[K][] {
  const got: EndpointEvents[K][] = [];
  ep.on(kind, (e) => got.push(e));
  return got;
}

const online = (ep: Endpoint): Promise<void> => until(() => ep.online, 'the endpoint to be online');

/**
 * Sequence numbers for toys and apps without persistent state: strictly increasing across every
 * endpoint of this file, so that a new Toy with an old identity never reuses one [PLK-8.1].
 */
let lastSequence = Date.now();
const sequenceFloor = (): number => {
  lastSequence = Math.max(lastSequence + 1, Date.now());
  return lastSequence;
};
const freshOutbox = (): Promise<Outbox> => Outbox.open({ sequenceFloor });

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'plk-cloudpets-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
let dirs = 0;
const freshDir = (name: string): string => join(root, `${name}-${dirs++}`);

interface AuditRow {
  readonly kind: string;
  readonly endpoint: string | null;
  readonly detail: Record<string, unknown>;
}

/** The rows of an embedded gateway's SQLite audit table (queued rows flushed first). */
async function auditRows(eg: EmbeddedGateway): Promise<AuditRow[]> {
  await eg.audit.verify(); // writes what is queued
  const rows = eg.audit.db.prepare('SELECT kind, endpoint, detail FROM audit ORDER BY seq').all() as {
    kind: string;
    endpoint: string | null;
    detail: string;
  }[];
  return rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
}

function startGateway(dataDir: string, extra: Parameters<typeof startEmbeddedGateway>[0]['gateway'] = {}) {
  return startEmbeddedGateway({
    dataDir,
    limits: LOOPBACK_FLEET_RATE_LIMITS,
    gateway: { registryWatchMs: 50, ...extra },
  });
}

/** Options for a real Toy / ParentApp of `fam` talking to `eg` over Wi-Fi (MQTT), knowing its family. */
function endpointOptions(
  eg: EmbeddedGateway,
  identity: PrivateIdentity,
  family: readonly PublicIdentity[],
  extra: Partial<EndpointOptions> = {},
): EndpointOptions {
  return {
    identity,
    gateway: eg.identity,
    family,
    connector: new WifiConnector({ url: eg.url, timeoutMs: 3000 }),
    backoff: fast,
    outbox: { sequenceFloor },
    ...extra,
  };
}

/**
 * A legitimate clip, end to end through the real parts: a Toy records 1 s of speech, seals it to
 * the family's parents, the gateway stores and forwards it, the first parent's app (the only one
 * online) opens and receipts it; the other parents' copies wait in the store.
 */
async function legitimateClip(eg: EmbeddedGateway, fam: RosterFamily, seed: number): Promise<string> {
  const family = familyPublics(fam);
  const accepted = await counter(eg.gateway.metrics.clipsAccepted);
  const toy = new Toy(endpointOptions(eg, fam.toys[0]!.identity, family));
  const mum = new ParentApp(endpointOptions(eg, fam.parents[0]!.identity, family));
  const received = collect(mum, 'received');
  await Promise.all([toy.start(), mum.start()]);
  try {
    const sent = await toy.record(1, { kind: 'synth', seed });
    await until(() => received.some((r) => r.clipId === sent.clipId), 'the legitimate clip');
    const got = received.find((r) => r.clipId === sent.clipId)!;
    expect(Buffer.from(got.ogg).equals(Buffer.from(sent.ogg))).toBe(true);
    // [PLK-12.9] the clip may reach the parent before its commit: wait for the commit.
    await until(async () => (await counter(eg.gateway.metrics.clipsAccepted)) > accepted, 'the commit');
    expect(await counter(eg.gateway.metrics.clipsAccepted)).toBe(accepted + 1);
    return sent.clipId;
  } finally {
    await Promise.all([toy.stop(), mum.stop()]);
  }
}

/** A legitimate clip through a test harness (raw endpoint connections). */
async function legitimateHarnessClip(h: Harness): Promise<void> {
  const f = await h.family();
  const accepted = await counter(h.metrics.clipsAccepted);
  const [toy, mum] = await Promise.all([h.connect(f.toy), h.connect(f.mum)]);
  const box = inbox(mum);
  const env = makeClip(f.toy, [f.mum], { now: h.clock.now, sequence: 1 });
  await toy.publishClip(env);
  await box.wait(1, 'clip', HANG_GUARD_MS);
  expect(toHex(decodeClip(box.clips[0]!).header.clipId)).toBe(toHex(decodeClip(env).header.clipId));
  expect(await counter(h.metrics.clipsAccepted)).toBe(accepted + 1);
  await Promise.all([toy.close(), mum.close()]);
}

// ---- reading a data directory byte by byte ------------------------------------------------------

/** Every file under `dir` (relative path → bytes), except the gateway's own private key. */
function snapshot(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (relative(dir, p) !== join('gateway', 'endpoint.key'))
        files.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return files;
}

/** The files of `files` that contain `needle`. */
function filesWith(files: Map<string, Buffer>, needle: Uint8Array | string): string[] {
  const n = typeof needle === 'string' ? Buffer.from(needle, 'utf8') : Buffer.from(needle);
  return [...files].filter(([, b]) => b.includes(n)).map(([name]) => name);
}

/** `count` windows of `width` 16-bit samples from the speech (not the pauses) of `pcm`, as the bytes a WAV file would hold. */
function pcmWindows(pcm: Int16Array, count: number, width = 16): Buffer[] {
  const loud: number[] = [];
  for (let i = 0; i + width <= pcm.length; i += width) {
    let peak = 0;
    for (let j = i; j < i + width; j++) peak = Math.max(peak, Math.abs(pcm[j]!));
    if (peak >= 2000) loud.push(i);
  }
  return Array.from({ length: Math.min(count, loud.length) }, (_, k) => {
    const start = loud[Math.floor((k * loud.length) / count)]!;
    const w = pcm.slice(start, start + width);
    return Buffer.from(w.buffer, w.byteOffset, w.byteLength);
  });
}

/** Windows of the Ogg Opus bytes (audio pages, past the headers). */
function oggWindows(ogg: Uint8Array, width = 32): Buffer[] {
  return [200, Math.floor(ogg.length / 2), ogg.length - width - 1]
    .filter((o) => o > 0 && o + width <= ogg.length)
    .map((o) => Buffer.from(ogg.subarray(o, o + width)));
}

/** Column names of every table of a SQLite file. */
function columns(path: string): string[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
      .pluck()
      .all() as string[];
    return tables.flatMap((t) =>
      (db.prepare(`PRAGMA table_info("${t}")`).all() as { name: string }[]).map((c) => `${t}.${c.name}`),
    );
  } finally {
    db.close();
  }
}

/** Tables of a SQLite file in which some text column contains `needle`. */
function tablesMentioning(path: string, needle: string): string[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const hits = new Set<string>();
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
      .pluck()
      .all() as string[];
    for (const t of tables) {
      for (const c of db.prepare(`PRAGMA table_info("${t}")`).all() as { name: string }[]) {
        const n = db
          .prepare(
            `SELECT count(*) FROM "${t}" WHERE typeof("${c.name}") = 'text' AND instr("${c.name}", ?) > 0`,
          )
          .pluck()
          .get(needle) as number;
        if (n > 0) hits.add(t);
      }
    }
    return [...hits].sort();
  } finally {
    db.close();
  }
}

// =================================================================================================

describe('exposed store (CloudPets: an open MongoDB of 821,396 accounts and a public bucket of 2.2 million recordings)', () => {
  it('after real clips and a family erasure, no file of the data directory holds audio, a name, a birthday or an e-mail, and the store keeps nothing of the erased family but its tombstoned ids', async () => {
    const data = freshDir('store');
    const eg = await startGateway(data);
    try {
      const roster = generateRoster({
        families: 2,
        toysPerFamily: 1,
        parentsPerFamily: 2,
        seed: 'cloudpets-store',
      });
      await registerRoster(eg.store, eg.audit, roster);
      const [kept, erased] = roster.families as [RosterFamily, RosterFamily];
      // Local labels the apps use (roster names like "bear-1", "mum-1", and names a parent typed in).
      const given = new Map<string, string>([
        [kept.toys[0]!.identity.id, 'Lily Bear'],
        [kept.parents[0]!.identity.id, 'Grandma Rose'],
        [erased.toys[0]!.identity.id, 'Captain Fluff'],
        [erased.parents[0]!.identity.id, 'Auntie Meg'],
      ]);
      const labels = [...rosterMembers(roster).map((m) => m.name), ...given.values()];
      const nameOf = (id: string) => given.get(id) ?? id.slice(0, 8);

      const sealedOgg: Uint8Array[] = [];
      const pcm: Int16Array[] = [];
      const envelopes = new Map<FamilyId, Uint8Array[]>([
        [kept.id, []],
        [erased.id, []],
      ]);
      const running: Endpoint[] = [];
      let nextSeed = 100;

      /** Toy and mum online (dad stays offline: the toy's clips wait for him, sealed); clips both ways. */
      async function talk(fam: RosterFamily, toyClips: number) {
        const family = familyPublics(fam);
        const [toyM, mumM] = [fam.toys[0]!, fam.parents[0]!];
        const toy = new Toy(
          endpointOptions(eg, toyM.identity, family, { name: nameOf(toyM.identity.id), nameOf }),
        );
        const mum = new ParentApp(
          endpointOptions(eg, mumM.identity, family, { name: nameOf(mumM.identity.id), nameOf }),
        );
        running.push(toy, mum);
        const toyDelivered = collect(toy, 'delivered');
        const mumDelivered = collect(mum, 'delivered');
        const mumGot = collect(mum, 'received');
        const toyGot = collect(toy, 'received');
        await Promise.all([toy.start(), mum.start()]);
        await Promise.all([online(toy), online(mum)]);
        for (let i = 0; i < toyClips; i++) {
          const seed = nextSeed++;
          pcm.push(await loadPcm(1, { kind: 'synth', seed }));
          const sent = await toy.record(1, { kind: 'synth', seed });
          sealedOgg.push(sent.ogg);
          envelopes.get(fam.id)!.push(sent.envelope);
          await until(() => mumGot.some((r) => r.clipId === sent.clipId), 'mum to receive the clip');
          await until(
            () => toyDelivered.some((d) => d.clipId === sent.clipId),
            "mum's receipt to reach the toy",
          );
        }
        const seed = nextSeed++;
        pcm.push(await loadPcm(1, { kind: 'synth', seed }));
        const back = await mum.sendVoice(1, { kind: 'synth', seed });
        sealedOgg.push(back.ogg);
        envelopes.get(fam.id)!.push(back.envelope);
        await until(() => toyGot.some((r) => r.clipId === back.clipId), 'the toy to receive the message');
        await until(() => mumDelivered.some((d) => d.clipId === back.clipId), "the toy's receipt");
        return { toy, mum };
      }

      const keptEps = await talk(kept, 2);
      const erasedEps = await talk(erased, 2);
      // Both families' toy clips are still stored for their dads (offline): ciphertext at rest.
      expect((await eg.store.pendingFor(kept.parents[1]!.identity.id, 10)).length).toBe(2);
      expect((await eg.store.pendingFor(erased.parents[1]!.identity.id, 10)).length).toBe(2);

      // The erased family's parents ask for erasure [PLK-12.5]: its live sessions are cut at once.
      const cut = await counter(eg.gateway.metrics.sessionsClosed, { reason: 'erased' });
      const result = await eraseFamily(eg.store, eg.audit, erased.id);
      expect(result).toEqual({ clips: 2, endpoints: 3 });
      await until(() => !erasedEps.toy.online && !erasedEps.mum.online, 'the erased sessions to close');
      expect(await counter(eg.gateway.metrics.sessionsClosed, { reason: 'erased' })).toBeGreaterThanOrEqual(
        cut + 2,
      );
      await Promise.all([erasedEps.toy.stop(), erasedEps.mum.stop()]);

      // The other family keeps talking.
      const keptGot = collect(keptEps.mum, 'received');
      const seed = nextSeed++;
      pcm.push(await loadPcm(1, { kind: 'synth', seed }));
      const after = await keptEps.toy.record(1, { kind: 'synth', seed });
      sealedOgg.push(after.ogg);
      envelopes.get(kept.id)!.push(after.envelope);
      await until(() => keptGot.some((r) => r.clipId === after.clipId), 'a clip after the erasure');
      await Promise.all(running.map((e) => e.stop()));
      expect(await counter(eg.gateway.metrics.clipsAccepted)).toBe(7);
      expect(await counter(eg.gateway.metrics.clipsRefused)).toBe(0);
      const rows = await auditRows(eg);
      expect(rows.filter((r) => r.kind === 'family.erased')).toEqual([
        { kind: 'family.erased', endpoint: null, detail: { family: erased.id, clips: 2, endpoints: 3 } },
      ]);
      for (const m of [...erased.toys, ...erased.parents])
        expect(await eg.store.isTombstoned(m.identity.id)).toBe(true);

      // Read every file twice: while the gateway runs (WAL and shm present), and after it closed.
      const live = snapshot(data);
      await eg.close();
      const closed = snapshot(data);
      expect([...live.keys()]).toEqual(
        expect.arrayContaining(['gateway.db', 'audit.db', join('gateway', 'identity.json')]),
      );
      expect([...closed.keys()]).toEqual(expect.arrayContaining(['audit.anchor']));

      for (const files of [live, closed]) {
        // No audio: no Ogg page, no Opus header, no Ogg Opus bytes, no PCM of what was recorded.
        for (const magic of ['OggS\0', 'OpusHead', 'OpusTags'])
          expect(filesWith(files, magic), magic).toEqual([]);
        for (const ogg of sealedOgg) for (const w of oggWindows(ogg)) expect(filesWith(files, w)).toEqual([]);
        for (const p of pcm) {
          const windows = pcmWindows(p, 6);
          expect(windows).toHaveLength(6);
          for (const w of windows) expect(filesWith(files, w)).toEqual([]);
        }
        // No local labels, in UTF-8 or UTF-16.
        for (const label of labels) {
          expect(filesWith(files, label), label).toEqual([]);
          expect(filesWith(files, Buffer.from(label, 'utf16le')), label).toEqual([]);
        }
        // Nothing of the erased family in the store (any of its files): no keys, no envelope, no clip id, no family id.
        const store = new Map([...files].filter(([name]) => name.startsWith('gateway.db')));
        const all = files;
        for (const m of [...erased.toys, ...erased.parents]) {
          for (const key of [m.identity.signPublicKey, m.identity.boxPublicKey]) {
            expect(filesWith(all, key)).toEqual([]);
            expect(filesWith(all, toHex(key))).toEqual([]);
          }
        }
        for (const env of envelopes.get(erased.id)!) {
          const clipId = decodeClip(env).header.clipId;
          expect(filesWith(all, env.subarray(env.length - 64))).toEqual([]); // its signature
          expect(filesWith(all, env.subarray(200, 264))).toEqual([]); // its sealed keys and body
          expect(filesWith(all, clipId)).toEqual([]);
          expect(filesWith(all, toHex(clipId))).toEqual([]);
        }
        // The family id is a pseudonymous id the (never erased, hash-chained) audit log keeps in its
        // family.* rows; the store forgets it.
        expect(filesWith(store, erased.id)).toEqual([]);
        expect(filesWith(all, erased.id).every((f) => f.startsWith('audit.db'))).toBe(true);
        // The kept family's undelivered clips are stored — as the ciphertext they arrived as.
        for (const env of envelopes.get(kept.id)!.slice(0, 2))
          expect(filesWith(store, env.subarray(env.length - 64)).length).toBeGreaterThan(0);
      }
      // The erased ids survive only as tombstones (and in the registry change feed that tails them).
      for (const m of [...erased.toys, ...erased.parents]) {
        expect(tablesMentioning(join(data, 'gateway.db'), m.identity.id)).toEqual([
          'registry_changes',
          'tombstones',
        ]);
      }
      // No column anywhere for a name, an e-mail, a birthday or a phone number; no such value in the audit log.
      const personal = /(^|[._])(name|display|nick|e?mail|birth|birthday|dob|phone|address)($|_)/i;
      const cols = [...columns(join(data, 'gateway.db')), ...columns(join(data, 'audit.db'))];
      expect(cols.filter((c) => personal.test(c.split('.')[1]!) && !c.startsWith('sqlite_'))).toEqual([]);
      const adb = new Database(join(data, 'audit.db'), { readonly: true });
      const details = adb.prepare('SELECT detail FROM audit').pluck().all() as string[];
      adb.close();
      expect(details.filter((d) => /[\w.+-]+@[\w-]+\.[\w.]+|\b(19|20)\d\d-\d\d-\d\d\b/.test(d))).toEqual([]);
      for (const text of ['audit.anchor', join('gateway', 'identity.json')])
        expect(closed.get(text)!.toString('utf8')).not.toMatch(/@|\b(19|20)\d\d-\d\d-\d\d\b/);
    } finally {
      await eg.close();
    }
  });
});

/** Ports of every listening TCP server of this process (Node's handle list: servers are handles). */
function listeningPorts(): Set<number> {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return new Set(
    handles
      .filter((x): x is Server => x instanceof Server && x.listening)
      .map((x) => (x.address() as AddressInfo).port),
  );
}

// =================================================================================================

describe('public recording URLs (CloudPets: every recording was a public S3 URL)', () => {
  it('the gateway’s only HTTP listener is the metrics server: every path but /metrics is 404, /metrics names no clip, endpoint or family, and the MQTT port answers HTTP with nothing', async () => {
    const before = listeningPorts();
    const metrics = createGatewayMetrics();
    const eg = await startGateway(freshDir('urls'), { metrics });
    const http = await serveMetrics(metrics.registry, { port: 0 });
    try {
      // One listener for MQTT, one for the metrics: nothing else was opened.
      const opened = [...listeningPorts()].filter((p) => !before.has(p)).sort();
      expect(opened).toEqual([eg.port, http.address.port].sort());
      const roster = generateRoster({
        families: 1,
        toysPerFamily: 1,
        parentsPerFamily: 2,
        seed: 'cloudpets-urls',
      });
      await registerRoster(eg.store, eg.audit, roster);
      const fam = roster.families[0]!;
      const clipId = await legitimateClip(eg, fam, 7);
      // One more clip for the offline dad: a recording at rest that a URL could try to name.
      const stored = await legitimateClip(eg, fam, 8);
      const ids = rosterMembers(roster).map((m) => m.identity.id);
      const base = `http://127.0.0.1:${http.address.port}`;
      const paths = [
        '/',
        '/clips',
        `/clips/${clipId}`,
        `/${stored}`,
        `/recordings/${stored}.ogg`,
        `/${stored}.opus`,
        `/inbox/${ids[1]}`,
        `/plk/1/${ids[1]}/inbox`,
        `/families/${fam.id}`,
        '/metrics/',
        `/metrics/${stored}`,
        '/metrics/../gateway.db',
        '/METRICS',
        '/gateway.db',
        '/audit.db',
        '/backup',
        '/.well-known/security.txt',
        '/favicon.ico',
      ];
      for (const path of paths) {
        for (const method of ['GET', 'POST', 'PUT', 'DELETE']) {
          const r = await fetch(base + path, { method });
          expect(r.status, `${method} ${path}`).toBe(404);
          expect(await r.text()).toBe('not found\n');
        }
      }
      expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
      const page = await (await fetch(`${base}/metrics`)).text();
      expect(page).toMatch(/plushlink_gateway_clips_accepted_total 2\b/);
      for (const secret of [clipId, stored, fam.id, ...ids]) expect(page).not.toContain(secret);
      expect(page).not.toMatch(/[a-z2-7]{32}|[0-9a-f]{32}/);

      // An HTTP request to the MQTT port: closed without a byte, counted and audited as not-connect.
      const notConnect = await counter(metrics.socketViolations, { reason: 'not-connect' });
      const answer = await new Promise<Buffer>((resolve, reject) => {
        const s = tcpConnect(eg.port, '127.0.0.1', () =>
          s.write(`GET /clips/${stored} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`),
        );
        const got: Buffer[] = [];
        s.on('data', (d: Buffer) => got.push(d));
        s.on('error', reject);
        s.on('close', () => resolve(Buffer.concat(got)));
      });
      expect(answer.length).toBe(0);
      expect(await counter(metrics.socketViolations, { reason: 'not-connect' })).toBe(notConnect + 1);
      await until(
        async () => (await auditRows(eg)).some((r) => r.detail.reason === 'not-connect'),
        'the socket violation audit row',
        3000,
      ).catch(() => undefined);
      expect((await auditRows(eg)).filter((r) => r.detail.reason === 'not-connect')).toHaveLength(1);
    } finally {
      await http.close();
      await eg.close();
    }
  });

  it('clip ids are 16 random bytes: 10,000 sealed clips have unique ids and roughly uniform bits', () => {
    const toy = generateIdentity('toy');
    const mum = publicPart(generateIdentity('parent'));
    const ogg = new Uint8Array(64);
    const N = 10_000;
    const seen = new Set<string>();
    const ones = new Array<number>(128).fill(0);
    for (let i = 0; i < N; i++) {
      const env = sealClip({
        sender: toy,
        recipients: [mum],
        sequence: i + 1,
        createdAt: 1,
        durationMs: 1,
        ogg,
      });
      const id = env.subarray(22, 38); // [PLK-5.1] clip id, offset 22, 16 bytes
      if (i % 1000 === 0) expect(toHex(id)).toBe(toHex(decodeClip(env).header.clipId));
      seen.add(toHex(id));
      for (let b = 0; b < 128; b++) ones[b]! += (id[b >> 3]! >> (7 - (b & 7))) & 1;
    }
    expect(seen.size).toBe(N);
    // Each bit is set in about half the ids: 5000 ± 6σ (σ = 50), and all bits together within 0.5 ± 0.005.
    expect(ones.filter((n) => Math.abs(n - N / 2) > 300)).toEqual([]);
    const total = ones.reduce((a, b) => a + b, 0) / (N * 128);
    expect(Math.abs(total - 0.5)).toBeLessThan(0.005);
  });

  it('endpoint ids derive from keys (PLK-1.2): nobody registers a chosen id, and a guessed id is refused (unknown-id), counted and audited', async () => {
    const eg = await startGateway(freshDir('ids'));
    try {
      const roster = generateRoster({
        families: 1,
        toysPerFamily: 1,
        parentsPerFamily: 1,
        seed: 'cloudpets-ids',
      });
      for (const m of rosterMembers(roster)) {
        const digest = createHash('sha256')
          .update(Buffer.concat([Buffer.from('plushlink/v1/endpoint-id\0'), m.identity.signPublicKey]))
          .digest();
        expect(m.identity.id).toBe(toBase32(digest.subarray(0, 20)));
        expect(deriveEndpointId(m.identity.signPublicKey)).toBe(m.identity.id);
      }
      await registerRoster(eg.store, eg.audit, roster);
      // An attacker's key under a chosen ("vanity") id, or under the toy's id: refused by the registry.
      const attacker = generateIdentity('toy');
      for (const id of ['a'.repeat(32), roster.families[0]!.toys[0]!.identity.id]) {
        await expect(
          registerFamilies(eg.store, eg.audit, [
            { members: [{ ...publicPart(attacker), id } as PublicIdentity] },
          ]),
        ).rejects.toThrow();
      }
      // A guessed id (32 random base32 characters) with a token signed by some key: not authorized (5).
      const guessed = {
        ...attacker,
        id: toBase32(seededRandom('cloudpets-ids/guess')(20)),
      } as PrivateIdentity;
      const token = createConnectToken({ identity: guessed, gatewayId: eg.identity.id, now: Date.now() });
      const r = await rawConnect(eg.port, {
        clientId: guessed.id,
        username: guessed.id,
        password: Buffer.from(token.bytes),
      });
      expect(r.ok ? 0 : r.code).toBe(5);
      expect(await counter(eg.gateway.metrics.authFailures, { reason: 'unknown-id' })).toBe(1);
      const rows = (await auditRows(eg)).filter((x) => x.kind === 'auth.refused');
      expect(rows.map((x) => [x.endpoint, x.detail.reason])).toEqual([[guessed.id, 'unknown-id']]);
      await legitimateClip(eg, roster.families[0]!, 9);
    } finally {
      await eg.close();
    }
  });
});

// =================================================================================================

const ATTACKER = bleAddress('de:ad:be:ef:00:66');

/** A phone in BLE range that is not the family's: it confirms anything on its own screen. */
function blePhoneOf(w: World, opts: { address?: string; features?: PairingFeatures; seed?: number } = {}) {
  return new BlePhone({
    address: opts.address ? bleAddress(opts.address) : ATTACKER,
    air: w.air,
    random: new SeededRandom(opts.seed ?? 666).source,
    pairingUi: scriptedUi(true),
    ...(opts.features ? { features: opts.features } : {}),
  });
}

const refusedWith = (code: number) => ({ name: 'AttError', code }) as Partial<AttError>;

/**
 * The family's own phone pairs (the parent compares the six digits on both screens), downloads the
 * toy's sealed clip over the encrypted link and relays it unchanged through the real gateway; the
 * parent's app opens it.
 */
async function pairedRelay(h: Harness, f: Family, w: World, phoneIdentity: PrivateIdentity): Promise<void> {
  const accepted = await counter(h.metrics.clipsAccepted);
  const envelope = makeClip(f.toy, [f.mum], { now: h.clock.now, sequence: 1 });
  w.firmware.clip = envelope;
  w.toy.pressPairingButton();
  const link = w.phone.connect(w.toy);
  expect((await link.pair()).ok).toBe(true);
  await link.exchangeMtu(247);
  await link.enableClipNotifications();
  const [mum, phone] = await Promise.all([h.connect(f.mum), h.connect(phoneIdentity)]);
  const box = inbox(mum);
  const relayed = await new PhoneRelay((e) => phone.publishRelay(e)).recordAndRelay(link);
  expect(toHex(relayed)).toBe(toHex(envelope));
  await box.wait(1, 'clip', HANG_GUARD_MS);
  const opened = openClip(box.clips[0]!, { recipient: f.mum, sender: f.toy });
  expect(opened.ogg.length).toBeGreaterThan(0);
  expect(await counter(h.metrics.clipsAccepted)).toBe(accepted + 1);
  await Promise.all([mum.close(), phone.close()]);
}

describe('weak passwords (CloudPets: no password rules — "123456", "qwe" and "password" unlocked accounts)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ auditBudget: { perSourceBurst: 1000, totalBurst: 1000 } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('there is no password: qwe, 123456, an empty one, the id itself, base64 of random bytes and another endpoint’s valid token are refused (CONNACK 4/5), counted and audited', async () => {
    const f = await h.family();
    const random = seededRandom('cloudpets/weak-passwords');
    const rnd = Buffer.from(random(130));
    rnd[0] = 0x99; // not the token type byte
    const otherToken = createConnectToken({
      identity: f.mum,
      gatewayId: h.gatewayIdentity.id,
      now: h.clock.now,
    });
    const attempts: [string, string, Buffer | string][] = [
      ['qwe', 'malformed-token', 'qwe'],
      ['123456', 'malformed-token', '123456'],
      ['password', 'malformed-token', 'password'],
      ['empty', 'anonymous', ''],
      ['the id itself', 'malformed-token', f.toy.id],
      ['base64 of random bytes', 'malformed-token', Buffer.from(random(130)).toString('base64')],
      [
        'base64url of 130 random bytes (decodes to a token-sized blob)',
        'malformed-token',
        rnd.toString('base64url'),
      ],
      ["another endpoint's valid token", 'wrong-endpoint', Buffer.from(otherToken.bytes)],
    ];
    for (const [what, , password] of attempts) {
      const r = await rawConnect(h.port(), { clientId: f.toy.id, username: f.toy.id, password });
      expect(r.ok, what).toBe(false);
      expect([4, 5], what).toContain(r.ok ? 0 : r.code);
    }
    for (const reason of new Set(attempts.map(([, reason]) => reason))) {
      const n = attempts.filter(([, r]) => r === reason).length;
      expect(await counter(h.metrics.authFailures, { reason }), reason).toBe(n);
    }
    expect(await counter(h.metrics.connectsAccepted)).toBe(0);
    await until(() => h.audit.reasons('auth.refused').length >= attempts.length, 'the audit rows', 3000);
    expect(h.audit.reasons('auth.refused')).toEqual(attempts.map(([, reason]) => reason));
    // Audited against the id they claimed, except the one without a password.
    const rows = h.audit.events.filter((e) => e.kind === 'auth.refused');
    expect(rows.filter((e) => e.endpoint === f.toy.id)).toHaveLength(attempts.length - 1);
    // The other endpoint's token cannot be used as itself afterwards either: it was never spent, so it
    // still works exactly once for its owner — proving the refusal consumed nothing of the victim.
    const mumOk = await rawConnect(h.port(), {
      clientId: f.mum.id,
      username: f.mum.id,
      password: Buffer.from(otherToken.bytes),
    });
    expect(mumOk.ok).toBe(true);
    if (mumOk.ok) mumOk.client.end(true);
    await legitimateHarnessClip(h);
  });

  it('the BLE pairing has no code to guess: only numeric comparison is accepted; Just Works, passkey entry, OOB and legacy pairing are refused before any key is exchanged', async () => {
    const offers: [string, PairingFeatures][] = [
      [
        'just works (no input, no output, no MITM)',
        {
          ...NUMERIC_COMPARISON_FEATURES,
          ioCapability: IO_CAP.NO_INPUT_NO_OUTPUT,
          authReq: AUTH_REQ.BONDING | AUTH_REQ.SC,
        },
      ],
      [
        'passkey entry (keyboard only)',
        { ...NUMERIC_COMPARISON_FEATURES, ioCapability: IO_CAP.KEYBOARD_ONLY },
      ],
      ['out of band', { ...NUMERIC_COMPARISON_FEATURES, oobDataFlag: 1 }],
      [
        'legacy pairing (no SC)',
        { ...NUMERIC_COMPARISON_FEATURES, authReq: AUTH_REQ.BONDING | AUTH_REQ.MITM },
      ],
    ];
    for (const [i, [what, features]] of offers.entries()) {
      const w = world(300 + i);
      w.toy.pressPairingButton();
      const link = blePhoneOf(w, { features }).connect(w.toy);
      expect(await link.pair(), what).toMatchObject({
        ok: false,
        reason: PAIRING_FAILED.AUTHENTICATION_REQUIREMENTS,
      });
      expect(w.human.shown.toy, what).toBeUndefined(); // no digits were ever shown: nothing to guess or read
      expect(w.toy.stats.pairingsFailed, what).toBe(1);
      expect(w.toy.bondedPeers, what).toEqual([]);
      await expect(link.startRecording()).rejects.toMatchObject(
        refusedWith(ATT_ERR.INSUFFICIENT_AUTHENTICATION),
      );
      expect(w.firmware.calls, what).toEqual([]);
    }
    // The family's phone, with the parent comparing the digits, pairs and relays a real clip.
    const f = await h.family();
    const w = world(310);
    await pairedRelay(h, f, w, f.dad);
    expect(h.audit.reasons('clip.refused')).toEqual([]);
  });

  it('the pairing "secret" is short-lived, single-use and rate-limited: fresh digits per pairing, a 60 s window, closed by one pairing, exponential back-off and 5 attempts per window from any address', async () => {
    // Failed attempts (nobody confirms on the toy) from ever new addresses.
    const w = world(320, { toyUi: scriptedUi(false), policy: { windowMs: 600_000 } });
    w.toy.pressPairingButton();
    const attempt = async (n: number) =>
      (await blePhoneOf(w, { address: `de:ad:be:ef:01:${n.toString(16).padStart(2, '0')}`, seed: n })
        .connect(w.toy)
        .pair()) as { ok: false; reason: number };
    expect((await attempt(1)).reason).toBe(PAIRING_FAILED.NUMERIC_COMPARISON_FAILED);
    // A new address does not reset the back-off: it is toy-wide.
    expect((await attempt(2)).reason).toBe(PAIRING_FAILED.REPEATED_ATTEMPTS);
    let waited = 2000; // default base back-off
    for (let n = 3; n <= 10; n++) {
      await w.air.advance(waited);
      const r = await attempt(n);
      if (r.reason !== PAIRING_FAILED.NUMERIC_COMPARISON_FAILED) {
        expect(r.reason).toBe(PAIRING_FAILED.REPEATED_ATTEMPTS);
        break;
      }
      waited *= 2; // 2 s, 4 s, 8 s, ... (Vol 3 Part H §2.3.6)
    }
    expect(w.toy.stats.pairingsFailed).toBe(5); // at most maxAttemptsPerWindow (5) got as far as the digits
    expect(w.toy.pairingWindowOpen).toBe(false); // the window is used up
    expect(w.toy.stats.pairingsRefused).toBeGreaterThanOrEqual(2);
    expect(w.toy.bondedPeers).toEqual([]);
    expect(w.firmware.calls).toEqual([]);

    // Short-lived: the window closes by itself.
    const w2 = world(321);
    w2.toy.pressPairingButton();
    await w2.air.advance(60_001);
    expect(await blePhoneOf(w2).connect(w2.toy).pair()).toMatchObject({
      ok: false,
      reason: PAIRING_FAILED.PAIRING_NOT_SUPPORTED,
    });
    // Single-use: one successful pairing closes it; the digits are fresh for every pairing.
    const f = await h.family();
    const w3 = world(322);
    await pairedRelay(h, f, w3, f.dad);
    const firstDigits = w3.human.shown.toy;
    expect(w3.toy.pairingWindowOpen).toBe(false);
    expect(await blePhoneOf(w3).connect(w3.toy).pair()).toMatchObject({
      ok: false,
      reason: PAIRING_FAILED.PAIRING_NOT_SUPPORTED,
    });
    delete w3.human.shown.toy;
    delete w3.human.shown.phone;
    w3.toy.pressPairingButton();
    expect((await w3.phone.connect(w3.toy).pair()).ok).toBe(true);
    expect(w3.human.shown.toy).toMatch(/^\d{6}$/);
    expect(w3.human.shown.toy).not.toBe(firstDigits);
    expect(h.audit.reasons('clip.refused')).toEqual([]);
  });
});

// =================================================================================================

/** (a) "start recording and download it", as an unpaired central. */
async function recordAndDownload(link: PhoneLink): Promise<void> {
  const denied = refusedWith(ATT_ERR.INSUFFICIENT_AUTHENTICATION);
  await expect(link.enableClipNotifications()).rejects.toMatchObject(denied);
  await expect(link.startRecording()).rejects.toMatchObject(denied);
  await expect(link.stopRecordingAndDownload()).rejects.toMatchObject(denied);
  await expect(link.readStatus()).rejects.toMatchObject(denied);
}

/** (b) "upload audio and make it play", as an unpaired central. */
async function uploadAndPlay(link: PhoneLink, clip: Uint8Array): Promise<void> {
  const denied = refusedWith(ATT_ERR.INSUFFICIENT_AUTHENTICATION);
  await expect(link.sendClipAndPlay(clip)).rejects.toMatchObject(denied);
  // Skipping BEGIN: raw Write Commands into Clip in, then PLAY_CLIP.
  for (let i = 0; i < 5; i++) link.writeCommand(HANDLES.CLIP_IN, clip.subarray(i * 20, i * 20 + 20));
  await expect(link.write(HANDLES.CONTROL_POINT, Uint8Array.of(COMMAND.PLAY_CLIP))).rejects.toMatchObject(
    denied,
  );
}

describe('BLE without pairing (CloudPets: anyone within range could record from the toy or play to it)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('remote record and download from an unpaired phone: refused (Insufficient Authentication), counted by the toy, the microphone never starts; the family phone then relays a real clip', async () => {
    const f = await h.family();
    const w = world(401);
    w.toy.pressPairingButton(); // even with the pairing window open, not pairing means no access
    await recordAndDownload(blePhoneOf(w).connect(w.toy));
    expect(w.firmware.calls).toEqual([]);
    expect(w.toy.stats.gatt.refusedForSecurity).toBe(4);
    expect(w.toy.stats.gatt.handlerCalls).toBe(0);
    // The attack left no trace at the gateway, and the family's clip goes through.
    expect(h.audit.events.filter((e) => e.kind.endsWith('.refused'))).toEqual([]);
    await pairedRelay(h, f, w, f.dad);
    expect(w.firmware.calls).toEqual(['startRecording', 'stopRecording']);
  });

  it('upload and play from an unpaired phone: refused, its Write Commands dropped and counted, nothing plays; the family phone’s upload of a parent’s clip plays', async () => {
    const f = await h.family();
    const w = world(402);
    const mumClip = makeClip(f.mum, [f.toy], { now: h.clock.now, sequence: 1 });
    await uploadAndPlay(blePhoneOf(w).connect(w.toy), bytes(100, 9));
    await w.air.settle();
    expect(w.firmware.calls).toEqual([]);
    expect(w.firmware.played).toEqual([]);
    expect(w.toy.stats.gatt.droppedCommands).toBe(5);
    expect(w.toy.stats.gatt.refusedForSecurity).toBe(7); // 2 requests answered 0x05, 5 commands dropped
    // The paired phone uploads mum's sealed clip: the toy gets it byte for byte and can open it.
    w.toy.pressPairingButton();
    const link = w.phone.connect(w.toy);
    expect((await link.pair()).ok).toBe(true);
    await link.exchangeMtu(247);
    await link.sendClipAndPlay(mumClip);
    await w.air.settle();
    expect(w.firmware.played.map(toHex)).toEqual([toHex(mumClip)]);
    expect(openClip(w.firmware.played[0]!, { recipient: f.toy, sender: f.mum }).ogg.length).toBeGreaterThan(
      0,
    );
    await pairedRelay(h, f, world(403), f.dad);
  });
});

// =================================================================================================

describe('a client that does not check the server (CloudPets: the app accepted any TLS certificate)', () => {
  let eg: EmbeddedGateway;
  let fam: RosterFamily;
  beforeAll(async () => {
    eg = await startGateway(freshDir('pinning'));
    const roster = generateRoster({
      families: 1,
      toysPerFamily: 1,
      parentsPerFamily: 1,
      seed: 'cloudpets-pinning',
    });
    await registerRoster(eg.store, eg.audit, roster);
    fam = roster.families[0]!;
  });
  afterAll(async () => {
    await eg?.close();
  });

  /** A toy that has a clip queued and is pointed at `url`: resolves with its retry errors once it gave up `n` times. */
  async function toyAgainst(url: string, n: number, outbox: Outbox, ca?: Buffer) {
    const toy = new Toy({
      identity: fam.toys[0]!.identity,
      gateway: eg.identity, // pinned: the real gateway
      family: familyPublics(fam),
      connector: new WifiConnector({ url, timeoutMs: 1000, ...(ca ? { ca } : {}) }),
      backoff: fast,
      outbox,
    });
    const states = collect(toy, 'state');
    const retries = collect(toy, 'retry');
    const published = collect(toy, 'published');
    if (outbox.size === 0) await toy.record(1, { kind: 'synth', seed: 51 });
    await toy.start();
    await until(() => retries.length >= n, `${n} failed connects`);
    await toy.stop();
    return { errors: retries.map((r) => r.error), states: states.map((s) => s.to), published };
  }

  /** The queued clip, handed to a toy that talks to the real gateway, reaches the parent. */
  async function deliverQueued(outbox: Outbox): Promise<void> {
    const family = familyPublics(fam);
    const accepted = await counter(eg.gateway.metrics.clipsAccepted);
    const toy = new Toy({ ...endpointOptions(eg, fam.toys[0]!.identity, family), outbox });
    const mum = new ParentApp(endpointOptions(eg, fam.parents[0]!.identity, family));
    const got = collect(mum, 'received');
    const queued = outbox.peek()!.clipId;
    await Promise.all([toy.start(), mum.start()]);
    await until(() => got.some((g) => g.clipId === queued), 'the queued clip at the real gateway');
    await Promise.all([toy.stop(), mum.stop()]);
    expect(await counter(eg.gateway.metrics.clipsAccepted)).toBe(accepted + 1);
  }

  it('a bare MQTT broker that accepts anyone — even forging a proof with the nonce it read from the token — never gets the toy online nor a single clip [PLK-3.6]', async () => {
    const impostorKey = generateIdentity('gateway');
    const tokens: Buffer[] = [];
    const broker = await Aedes.createBroker({
      authenticate: (_client, _username, password, done) => {
        if (password) tokens.push(Buffer.from(password));
        done(null, true); // anyone, any password
      },
    });
    const clientPublishes: string[] = [];
    broker.on('publish', (packet, client) => {
      if (client) clientPublishes.push(packet.topic);
    });
    broker.on('subscribe', (subs, client) => {
      // The first connection gets no proof at all; every later one a proof forged for its nonce,
      // claiming the real gateway's id but signed with the impostor's key.
      if (tokens.length < 2) return;
      const nonce = decodeConnectToken(tokens.at(-1)!).nonce;
      const forged = createGatewayProof({
        gateway: { ...impostorKey, id: eg.identity.id },
        endpointId: client.id as PrivateIdentity['id'],
        nonce,
        now: Date.now(),
      });
      for (const s of subs)
        broker.publish(
          { cmd: 'publish', topic: s.topic, payload: Buffer.from(forged), qos: 1, retain: false, dup: false },
          () => {},
        );
    });
    const server = createServer((s) => broker.handle(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const outbox = await freshOutbox();
      const { errors, states, published } = await toyAgainst(`mqtt://127.0.0.1:${port}`, 3, outbox);
      expect(states).not.toContain('online');
      expect(published).toEqual([]);
      expect(errors.every((e) => e instanceof GatewayProofError)).toBe(true);
      expect(errors.map((e) => (e as GatewayProofError).code)).toEqual(
        expect.arrayContaining(['PROOF_TIMEOUT', 'PROOF_INVALID']),
      );
      // The impostor saw connects with tokens, and not one PUBLISH: the clip is still in the outbox.
      expect(tokens.length).toBeGreaterThanOrEqual(3);
      expect(clientPublishes).toEqual([]);
      expect(outbox.size).toBe(1);
      // The real gateway saw none of it (nothing refused, nothing audited), and gets the clip.
      expect(await counter(eg.gateway.metrics.authFailures)).toBe(0);
      await deliverQueued(outbox);
      expect((await auditRows(eg)).filter((r) => r.kind.endsWith('.refused'))).toEqual([]);
    } finally {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('a PlushLink gateway with another identity (the toy’s public keys registered there) refuses its token as wrong-gateway, counted and audited there; the toy never goes online', async () => {
    const impostor = await startGateway(freshDir('impostor'));
    try {
      await registerFamilies(impostor.store, impostor.audit, [{ members: familyPublics(fam) }]);
      const outbox = await freshOutbox();
      const { errors, states, published } = await toyAgainst(impostor.url, 2, outbox);
      expect(states).not.toContain('online');
      expect(published).toEqual([]);
      // The toy keeps retrying until stop(), so one more attempt may land after the second: count
      // what happened rather than assume exactly two.
      const codes = errors.map((e) => (e as { returnCode?: number }).returnCode);
      expect(codes.length).toBeGreaterThanOrEqual(2);
      expect(new Set(codes)).toEqual(new Set([4]));
      const refusedHere = () => counter(impostor.gateway.metrics.authFailures, { reason: 'wrong-gateway' });
      // An attempt in flight at stop() may be refused there without the toy seeing it.
      await until(async () => (await refusedHere()) >= codes.length, 'every refusal counted');
      const refused = await refusedHere();
      expect(refused).toBeLessThanOrEqual(codes.length + 1);
      expect(await counter(impostor.gateway.metrics.authFailures)).toBe(refused);
      expect(await counter(impostor.gateway.metrics.clipsAccepted)).toBe(0);
      await until(
        async () => (await auditRows(impostor)).filter((r) => r.kind === 'auth.refused').length >= refused,
        'every refusal audited',
      );
      const rows = (await auditRows(impostor)).filter((r) => r.kind === 'auth.refused');
      expect(rows.map((r) => r.detail.reason)).toEqual(Array(refused).fill('wrong-gateway'));
      await deliverQueued(outbox);
    } finally {
      await impostor.close();
    }
  });

  it('a toy whose pinned TLS certificate is not the server’s never connects; pinned to the right one it delivers', async () => {
    const dir = freshDir('tls');
    mkdirSync(dir, { recursive: true });
    const good = selfSignedCert(dir, 'gateway');
    const other = selfSignedCert(dir, 'impostor');
    const cert = await readFile(good.cert);
    const tlsEg = await startEmbeddedGateway({
      dataDir: join(dir, 'data'),
      tls: { cert, key: await readFile(good.key) },
      limits: LOOPBACK_FLEET_RATE_LIMITS,
    });
    try {
      await registerFamilies(tlsEg.store, tlsEg.audit, [{ id: fam.id, members: familyPublics(fam) }]);
      const outbox = await freshOutbox();
      const toy = new Toy({
        identity: fam.toys[0]!.identity,
        gateway: tlsEg.identity,
        family: familyPublics(fam),
        connector: new WifiConnector({ url: tlsEg.url, ca: await readFile(other.cert), timeoutMs: 1000 }),
        backoff: fast,
        outbox,
      });
      const retries = collect(toy, 'retry');
      const states = collect(toy, 'state');
      await toy.record(1, { kind: 'synth', seed: 52 });
      await toy.start();
      await until(() => retries.length >= 2, 'two failed TLS connects');
      await toy.stop();
      expect(states.map((s) => s.to)).not.toContain('online');
      expect(retries[0]!.error.message).toMatch(/certificate|self.signed|verify/i);
      // Nothing reached MQTT: no CONNECT was refused or accepted.
      expect(await counter(tlsEg.gateway.metrics.connectsAccepted)).toBe(0);
      expect(await counter(tlsEg.gateway.metrics.authFailures)).toBe(0);
      // Pinned to the gateway's certificate, the queued clip goes through.
      const family = familyPublics(fam);
      const pinned = new WifiConnector({ url: tlsEg.url, ca: cert });
      const realToy = new Toy({
        identity: fam.toys[0]!.identity,
        gateway: tlsEg.identity,
        family,
        connector: pinned,
        outbox,
      });
      const mum = new ParentApp({
        identity: fam.parents[0]!.identity,
        gateway: tlsEg.identity,
        family,
        connector: pinned,
      });
      const got = collect(mum, 'received');
      await Promise.all([realToy.start(), mum.start()]);
      await until(() => got.length === 1, 'the clip over pinned TLS');
      await Promise.all([realToy.stop(), mum.stop()]);
      expect(await counter(tlsEg.gateway.metrics.clipsAccepted)).toBe(1);
    } finally {
      await tlsEg.close();
    }
  });
});

// =================================================================================================

describe('wiped and ransomed data (CloudPets: the database was wiped and held to ransom, twice)', () => {
  let data: string;
  let bk: string;
  let fam: RosterFamily;
  let gatewayId: string;
  let gatewayPublic: PublicIdentity;
  let pendingForDad = 0;

  beforeAll(async () => {
    data = freshDir('ransom');
    bk = freshDir('ransom-backup');
    const eg = await startGateway(data);
    try {
      gatewayId = eg.identity.id;
      gatewayPublic = eg.identity;
      const roster = generateRoster({
        families: 1,
        toysPerFamily: 1,
        parentsPerFamily: 2,
        seed: 'cloudpets-ransom',
      });
      await registerRoster(eg.store, eg.audit, roster);
      fam = roster.families[0]!;
      // Three clips mum receives; dad is offline, so they wait for him.
      for (const seed of [61, 62, 63]) await legitimateClip(eg, fam, seed);
      await until(
        async () => (await eg.store.pendingFor(fam.parents[1]!.identity.id, 10)).length === 3,
        'dad’s backlog',
      );
      pendingForDad = 3;
      // The operator's nightly backup, taken online.
      const b = await backup(eg.store, eg.audit, bk);
      expect(b.gatewayId).toBe(gatewayId);
      expect(b.privateKey).toBe(true);
    } finally {
      await eg.close();
    }
    // The attacker, with the disk: every clip and endpoint row deleted, the audit log's guard
    // triggers dropped and every audit row deleted — straight through SQLite.
    const db = new Database(join(data, 'gateway.db'));
    db.exec('DELETE FROM deliveries; DELETE FROM clips; DELETE FROM endpoints;');
    db.close();
    const adb = new Database(join(data, 'audit.db'));
    adb.exec('DROP TRIGGER audit_no_delete; DROP TRIGGER audit_no_update; DELETE FROM audit;');
    adb.close();
  });

  it('audit verify reports the deleted audit rows (not ok) and keeps reporting them; a gateway still starts on the ransomed directory (its checks cannot see deleted rows) but refuses every endpoint, counted and audited', async () => {
    const verifyOnce = async () => {
      const admin = await openAdmin(data, { gatewayKey: join(data, 'gateway') });
      try {
        return await verifyAudit(admin.audit); // what `plushlink audit verify` runs
      } finally {
        await admin.close();
      }
    };
    const first = await verifyOnce();
    expect(first.ok).toBe(false);
    expect(first.reason).toMatch(/rows were deleted|history rewritten/);
    // quick_check passes and the key matches the recorded gateway id: the data-dir checks apply to
    // wiped, corrupt or keyless directories (next test), not to rows deleted by a valid SQLite client.
    const eg = await startGateway(data);
    try {
      expect(eg.check.fresh).toBe(false);
      expect(eg.identity.id).toBe(gatewayId);
      const toy = fam.toys[0]!.identity;
      const r = await rawConnect(eg.port, {
        clientId: toy.id,
        username: toy.id,
        password: Buffer.from(
          createConnectToken({ identity: toy, gatewayId: eg.identity.id, now: Date.now() }).bytes,
        ),
      });
      expect(r.ok ? 0 : r.code).toBe(5);
      expect(await counter(eg.gateway.metrics.authFailures, { reason: 'unknown-id' })).toBe(1);
      expect(
        (await auditRows(eg)).filter((x) => x.kind === 'auth.refused').map((x) => x.detail.reason),
      ).toEqual(['unknown-id']);
      expect((await eg.audit.verify()).ok).toBe(false);
    } finally {
      await eg.close();
    }
    // Tamper evidence must last: the operator's routine `audit verify`, run again and again after
    // the ransom (each run appends a row and signs the new head), keeps reporting the deletion.
    const again: boolean[] = [];
    for (let i = 0; i < 5; i++) again.push((await verifyOnce()).ok);
    expect
      .soft(
        again,
        'audit verify after the ransomed gateway ran (a new head must not overwrite the old signed anchors)',
      )
      .toEqual([false, false, false, false, false]);
    // A ransomed copy is never mistaken for a backup: its audit log does not verify.
    const err = await restore(data, freshDir('restore-ransomed')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect.soft(err, 'restore of the ransomed directory as if it were a backup').toBeInstanceOf(AdminError);
    expect.soft((err as AdminError | undefined)?.code).toBe('RESTORE_BAD_BACKUP');
  });

  it('a wiped (0-byte or deleted), encrypted or keyless data directory is refused at start with one line (DataDirError)', async () => {
    const cases: [string, (dir: string) => void, string][] = [
      ['wiped to 0 bytes', (d) => writeFileSync(join(d, 'gateway.db'), ''), 'DATADIR_STORE_EMPTY'],
      ['deleted', (d) => rmSync(join(d, 'gateway.db')), 'DATADIR_STORE_MISSING'],
      [
        'encrypted by ransomware',
        (d) => {
          const size = statSync(join(d, 'gateway.db')).size;
          writeFileSync(join(d, 'gateway.db'), Buffer.from(seededRandom('ransomware')(size)));
        },
        'DATADIR_CORRUPT',
      ],
      ['its gateway key deleted', (d) => rmSync(join(d, 'gateway', 'endpoint.key')), 'DATADIR_IDENTITY_LOST'],
    ];
    for (const [what, damage, code] of cases) {
      // A copy of the (intact) backup — itself a data directory — damaged the way an attacker would.
      const dir = freshDir('damaged');
      mkdirSync(join(dir, 'gateway'), { recursive: true, mode: 0o700 });
      for (const f of readdirSync(bk)) if (f !== 'gateway') copyFileSync(join(bk, f), join(dir, f));
      for (const f of readdirSync(join(bk, 'gateway')))
        copyFileSync(join(bk, 'gateway', f), join(dir, 'gateway', f));
      damage(dir);
      const err = await startGateway(dir).then(
        async (eg) => {
          await eg.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err, what).toBeInstanceOf(DataDirError);
      expect((err as DataDirError).code, what).toBe(code);
      expect((err as Error).message, what).not.toContain('\n');
    }
  });

  it('restoring the backup into a new directory brings back the same gateway id, a verifying audit log and the pending deliveries, which the offline parent then receives', async () => {
    const target = freshDir('restored');
    const r = await restore(bk, target);
    expect(r.gatewayId).toBe(gatewayId);
    expect(r.audit.ok).toBe(true);
    expect(r.audit.signaturesChecked).toBe(true);
    expect(r.pendingDeliveries).toBe(pendingForDad);
    expect(r.endpoints).toBe(3);
    const eg = await startGateway(target);
    try {
      expect(eg.identity.id).toBe(gatewayId);
      const rows = await auditRows(eg);
      expect(rows.filter((x) => x.kind === 'admin.restored')).toHaveLength(1);
      // Dad's app, pinned to the gateway it always knew, receives the backlog the backup held.
      const dad = new ParentApp({
        identity: fam.parents[1]!.identity,
        gateway: gatewayPublic,
        family: familyPublics(fam),
        connector: new WifiConnector({ url: eg.url, timeoutMs: 3000 }),
        backoff: fast,
      });
      const got = collect(dad, 'received');
      await dad.start();
      await until(() => got.length >= pendingForDad, 'the restored backlog');
      await dad.stop();
      expect(await counter(eg.gateway.metrics.clipsForwarded)).toBeGreaterThanOrEqual(pendingForDad);
      // And new clips flow.
      await legitimateClip(eg, fam, 64);
      const report = await verifyAudit(eg.audit);
      expect(report.ok).toBe(true);
    } finally {
      await eg.close();
    }
  });
});

// =================================================================================================

describe('unsigned firmware (CloudPets: firmware was checked by a CRC16 only)', () => {
  const MODEL = 'plushbear-1';
  const acme = generateIdentity('vendor', seededRandom('cloudpets/acme'));
  const rogue = generateIdentity('vendor', seededRandom('cloudpets/rogue'));
  const image = (v: number, n = 2048) => seededRandom(`cloudpets/image/${v}`)(n);
  const manifest = (o: { version: number; minVersion: number; vendor?: PrivateIdentity; img?: Uint8Array }) =>
    createFirmwareManifest({
      vendor: o.vendor ?? acme,
      model: MODEL,
      version: o.version,
      minVersion: o.minVersion,
      image: o.img ?? image(o.version),
      releasedAt: Date.UTC(2026, 0, o.version),
    });
  const message = (m: Uint8Array, img: Uint8Array) => encodeFirmwareMessage(m, img);

  let data: string;
  let eg: EmbeddedGateway;
  let fam: RosterFamily;
  beforeAll(async () => {
    data = freshDir('firmware');
    eg = await startEmbeddedGateway({
      dataDir: data,
      firmwarePollMs: 100,
      limits: LOOPBACK_FLEET_RATE_LIMITS,
      gateway: { registryWatchMs: 50 },
    });
    const roster = generateRoster({
      families: 1,
      toysPerFamily: 1,
      parentsPerFamily: 1,
      seed: 'cloudpets-fw',
    });
    await registerRoster(eg.store, eg.audit, roster);
    fam = roster.families[0]!;
    await trustVendor(data, eg.audit, publicPart(acme));
  });
  afterAll(async () => {
    await eg?.close();
  });

  /** Four forgeries, versions 5..8 (each above what the toy runs): [what, manifest, image, publish code, toy refusal]. */
  function forgeries(): [string, Uint8Array, Uint8Array, ErrorCode, string][] {
    const unsigned = manifest({ version: 5, minVersion: 1 });
    unsigned.fill(0, unsigned.length - 64);
    const wrongVendor = manifest({ version: 6, minVersion: 1, vendor: rogue });
    const forged = manifest({ version: 7, minVersion: 1, vendor: { ...rogue, id: acme.id } });
    const tampered = image(8);
    tampered[100]! ^= 0x01;
    return [
      ['unsigned', unsigned, image(5), 'PLK_E_UNSIGNED', 'unsigned'],
      ['signed by another vendor', wrongVendor, image(6), 'PLK_E_WRONG_VENDOR', 'wrong-vendor'],
      [
        'signed with a forged key under the vendor id',
        forged,
        image(7),
        'PLK_E_BAD_SIGNATURE',
        'bad-signature',
      ],
      [
        'a tampered image',
        manifest({ version: 8, minVersion: 1 }),
        tampered,
        'PLK_E_IMAGE_MISMATCH',
        'hash-mismatch',
      ],
    ];
  }

  it('an unsigned, a wrongly signed and a tampered image: refused at publish and at every scan (audited, never sent), and refused by the toy’s updater; the signed release installs and clips flow', async () => {
    const fwDir = freshDir('toy-fw');
    const updater = await FirmwareUpdater.open({
      dir: fwDir,
      model: MODEL,
      vendor: publicPart(acme),
      factoryVersion: 1,
    });
    const family = familyPublics(fam);
    const toy = new Toy({ ...endpointOptions(eg, fam.toys[0]!.identity, family), firmware: updater });
    const reports: FirmwareReport[] = collect(toy, 'firmware');
    await publishRelease(data, eg.audit, manifest({ version: 2, minVersion: 1 }), image(2));
    await toy.start();
    await until(() => reports.some((r) => r.outcome === 'installed' && r.version === 2), 'v2 installed');

    const { releases } = firmwarePaths(data);
    for (const [what, m, img, code] of forgeries()) {
      // `plushlink firmware publish` refuses it, audited, nothing written.
      const err = await publishRelease(data, eg.audit, m, img).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isPlushlinkError(err, code), what).toBe(true);
    }
    // The same bytes put into the release folder by hand: the gateway's scan refuses each, once.
    const files = forgeries().map(([, m, img], i) => {
      const file = join(releases, releaseFileName(MODEL, 5 + i));
      writeFileSync(file, message(m, img), { mode: 0o600 });
      return file;
    });
    await until(
      async () =>
        (await auditRows(eg)).filter((r) => r.kind === 'firmware.release_refused').length >= files.length,
      'the scan to refuse every hand-placed release',
    );
    const rows = await auditRows(eg);
    expect(rows.filter((r) => r.kind === 'firmware.publish_refused').map((r) => r.detail.reason)).toEqual([
      'PLK_E_UNSIGNED',
      'PLK_E_WRONG_VENDOR',
      'PLK_E_BAD_SIGNATURE',
      'PLK_E_IMAGE_MISMATCH',
    ]);
    expect(
      rows
        .filter((r) => r.kind === 'firmware.release_refused')
        .map((r) => r.detail.reason)
        .sort(),
    ).toEqual(['PLK_E_BAD_SIGNATURE', 'PLK_E_IMAGE_MISMATCH', 'PLK_E_UNSIGNED', 'PLK_E_WRONG_VENDOR']);
    // The toy reconnects: the gateway still sends only the signed v2 (current), never a forgery.
    const before = reports.length;
    toy.dropConnection();
    await until(() => reports.length > before, 'a release after reconnecting');
    expect(reports.slice(before).map((r) => [r.outcome, r.outcome === 'refused' ? r.reason : ''])).toEqual([
      ['current', ''],
    ]);
    // Even delivered straight to the toy (a compromised channel), each forgery is refused by the updater.
    for (const [what, m, img, , reason] of forgeries()) {
      const r = await updater.handle(message(m, img));
      expect(r, what).toMatchObject({ outcome: 'refused', reason, installedVersion: 2 });
    }
    expect(updater.state).toMatchObject({ version: 2, antiRollback: 1 });
    for (const f of files) rmSync(f);
    // And a real clip still goes through, from the toy that runs the signed firmware.
    const mum = new ParentApp(endpointOptions(eg, fam.parents[0]!.identity, family));
    const got = collect(mum, 'received');
    await mum.start();
    const sent = await toy.record(1, { kind: 'synth', seed: 71 });
    await until(() => got.some((g) => g.clipId === sent.clipId), 'a clip from the updated toy');
    await Promise.all([toy.stop(), mum.stop()]);
    expect(await counter(eg.gateway.metrics.clipsRefused)).toBe(0);
  });

  it('a downgraded image — an older, correctly signed release replayed — is refused (below-security-version, downgrade), before and after a restart', async () => {
    const fwDir = freshDir('toy-fw-downgrade');
    const open = () =>
      FirmwareUpdater.open({ dir: fwDir, model: MODEL, vendor: publicPart(acme), factoryVersion: 1 });
    let updater = await open();
    const v2 = message(manifest({ version: 2, minVersion: 1 }), image(2));
    const v3 = message(manifest({ version: 3, minVersion: 1 }), image(3));
    const v4 = message(manifest({ version: 4, minVersion: 3 }), image(4));
    expect((await updater.handle(v4)).outcome).toBe('installed');
    for (let restart = 0; restart < 2; restart++) {
      expect(await updater.handle(v2)).toMatchObject({
        outcome: 'refused',
        reason: 'below-security-version',
      });
      expect(await updater.handle(v3)).toMatchObject({
        outcome: 'refused',
        reason: 'below-security-version',
      });
      const v35 = message(manifest({ version: 3, minVersion: 3, img: image(35) }), image(35));
      expect(await updater.handle(v35)).toMatchObject({ outcome: 'refused', reason: 'downgrade' });
      expect(updater.state).toMatchObject({ version: 4, antiRollback: 3 });
      updater = await open(); // a reboot keeps the counter
    }
    // Through the gateway: an older, correctly signed release is the latest the gateway has (as after
    // an operator, or an intruder in DATA/firmware, withdrew the newer ones) — the toy refuses it.
    await publishRelease(data, eg.audit, manifest({ version: 3, minVersion: 1 }), image(3));
    const family = familyPublics(fam);
    const toy = new Toy({ ...endpointOptions(eg, fam.toys[0]!.identity, family), firmware: updater });
    const reports: FirmwareReport[] = collect(toy, 'firmware');
    await toy.start();
    await until(
      () => reports.some((r) => r.outcome === 'refused' && r.version === 3),
      'v3 offered and refused',
    );
    expect(reports.filter((r) => r.outcome === 'installed')).toEqual([]);
    expect(updater.state).toMatchObject({ version: 4, antiRollback: 3 });
    await toy.stop();
    await legitimateClip(eg, fam, 72);
  });
});
