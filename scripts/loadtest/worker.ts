// Load-generator worker thread: owns a slice of toys and their parents, connects them, sends sealed clips, measures.
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import { defaultCrypto } from '../../shared/crypto.ts';
import { decodeClip, openClip, sealClip } from '../../shared/envelope.ts';
import {
  generateIdentity,
  identityFromSecrets,
  idToBytes,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../../shared/identity.ts';
import { CONTEXT, MSG } from '../../shared/limits.ts';
import { systemRandom } from '../../shared/random.ts';
import { createReceipt } from '../../shared/receipt.ts';
import { signBody } from '../../shared/signed.ts';
import { createConnectToken, verifyGatewayProof } from '../../shared/token.ts';
import { clipTopic, inboxTopic, receiptTopic } from '../../shared/topics.ts';
import type { EndpointId } from '../../shared/types.ts';
import { CAPS } from './safety.ts';
import { encodeHistogram, type Histogram, newHistogram, recordMs } from './stats.ts';
import {
  ATTACK_KINDS,
  type AttackKind,
  type AttackTally,
  type Counters,
  type MainToWorker,
  type WorkerInit,
  type WorkerToMain,
  zeroCounters,
} from './types.ts';

const init = (workerData as { init: WorkerInit }).init;
const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');
const post = (m: WorkerToMain): void => port.postMessage(m);
const crypto = defaultCrypto();
const target = init.target;
const gatewayMode = target.mode === 'gateway';
const gatewayPublic: PublicIdentity | null =
  target.gatewayId && target.gatewaySignPublicKey
    ? {
        role: 'gateway',
        id: target.gatewayId as EndpointId,
        signPublicKey: target.gatewaySignPublicKey,
        boxPublicKey: new Uint8Array(32),
      }
    : null;

interface Endpoint {
  readonly index: number;
  readonly identity: PrivateIdentity;
  readonly pub: PublicIdentity;
  client: MqttClient | null;
  ready: boolean;
  /** True while we are closing it on purpose (storm, stop): the close is not an error. */
  dropping: boolean;
  seq: number;
  /** Index into parents (toys only). */
  readonly parent: number;
}

const mk = (
  s: { signSeed: Uint8Array; boxSecret: Uint8Array },
  role: 'toy' | 'parent',
  index: number,
  parent = -1,
) => {
  const identity = identityFromSecrets(role, s.signSeed, s.boxSecret, crypto);
  return {
    index,
    identity,
    pub: publicPart(identity),
    client: null,
    ready: false,
    dropping: false,
    seq: 0,
    parent,
  } satisfies Endpoint as Endpoint;
};
const parents: Endpoint[] = init.parents.map((s, i) => mk(s, 'parent', i));
const toys: Endpoint[] = init.toys.map((s, i) => mk(s, 'toy', i, init.toyParent[i] ?? 0));
const attackers: Endpoint[] = init.attackers.map((s, i) => mk(s, 'toy', i));
const attackerParent = init.attackerParent
  ? publicPart(
      identityFromSecrets('parent', init.attackerParent.signSeed, init.attackerParent.boxSecret, crypto),
    )
  : null;
const toyBySender = new Map<string, Endpoint>(toys.map((t) => [t.identity.id, t]));
const attackerBusy = new Set<number>();

// ---- measurement state -----------------------------------------------------------------------

let counters: Counters = zeroCounters();
let errors: Record<string, number> = {};
const hConnect: Histogram = newHistogram();
const hPuback: Histogram = newHistogram();
const hE2e: Histogram = newHistogram();
let attacks: Partial<Record<AttackKind, AttackTally>> = {};
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
let elu = performance.eventLoopUtilization();
let lastCpuMs = threadCpuMs();
const countError = (kind: string): void => {
  errors[kind] = (errors[kind] ?? 0) + 1;
};

interface Inflight {
  readonly t0: number;
  readonly bytes: number;
  state: 'pending' | 'acked' | 'failed';
  delivered: boolean;
}
/** Clips sent and not yet both acknowledged and delivered, by "toyIndex:seq". */
const inflight = new Map<string, Inflight>();
let pendingAcks = 0;
/** A few recent legitimate envelopes, for the replayed-envelope attack. */
const captured: Uint8Array[] = [];

/** CPU time of this thread in ms from /proc/thread-self/stat (Linux), or -1. */
function threadCpuMs(): number {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * 10 : -1; // CLK_TCK = 100 on Linux
  } catch {
    return -1;
  }
}

function tick(): void {
  const now = performance.eventLoopUtilization();
  const d = performance.eventLoopUtilization(now, elu);
  elu = now;
  const cpu = threadCpuMs();
  const cpuMs = cpu < 0 || lastCpuMs < 0 ? -1 : cpu - lastCpuMs;
  lastCpuMs = cpu;
  let connected = 0;
  for (const t of toys) if (t.ready) connected++;
  post({
    type: 'tick',
    index: init.index,
    at: performance.timeOrigin + performance.now(),
    counters,
    errors,
    connect: encodeHistogram(hConnect),
    puback: encodeHistogram(hPuback),
    e2e: encodeHistogram(hE2e),
    cpuMs,
    elu: d.utilization,
    lagP99Ms: lag.count > 0 ? lag.percentile(99) / 1e6 : 0,
    lagMaxMs: lag.count > 0 ? lag.max / 1e6 : 0,
    connected,
    inflight: pendingAcks,
    attacks,
  });
  counters = zeroCounters();
  errors = {};
  hConnect.reset();
  hPuback.reset();
  hE2e.reset();
  attacks = {};
  lag.reset();
  sweepTimeouts();
}
const ticker = setInterval(tick, 1000);

/** Clips whose PUBACK is overdue become errors (bounded wait: nothing stays pending forever). */
function sweepTimeouts(): void {
  const limit = performance.now() - init.pubackTimeoutMs;
  for (const [key, f] of inflight) {
    if (f.state === 'pending' && f.t0 < limit) {
      f.state = 'failed';
      pendingAcks--;
      countError('puback-timeout');
      inflight.delete(key);
    }
  }
}

// ---- connecting ------------------------------------------------------------------------------

type ConnectOutcome = { ok: true; client: MqttClient; ms: number } | { ok: false; error: string };

interface ConnectOpts {
  readonly identity: PrivateIdentity;
  readonly timeoutMs: number;
  /** Replay these token bytes instead of signing a fresh token. */
  readonly token?: Uint8Array;
  readonly onToken?: (token: Uint8Array) => void;
  readonly onMessage?: (payload: Buffer) => void;
}

/**
 * Opens one MQTT connection and, in gateway mode, completes PlushLink authentication: signed
 * connect token as password, inbox SUBSCRIBE, then the gateway proof checked against the pinned
 * gateway key and our nonce [PLK-3.6]. The latency covers TCP, CONNECT/CONNACK, SUBSCRIBE and
 * the proof check. In plain mode: anonymous CONNECT and inbox SUBSCRIBE.
 */
function openConnection(o: ConnectOpts): Promise<ConnectOutcome> {
  const t0 = performance.now();
  const id = o.identity.id;
  const opts: IClientOptions = {
    clientId: id,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: o.timeoutMs,
    keepalive: 600,
    protocolVersion: 4,
    resubscribe: false,
  };
  let nonce: Uint8Array | null = null;
  if (gatewayMode) {
    if (!gatewayPublic) return Promise.resolve({ ok: false, error: 'no-gateway-identity' });
    let tokenBytes = o.token;
    if (!tokenBytes) {
      const t = createConnectToken({
        identity: o.identity,
        gatewayId: gatewayPublic.id,
        now: Date.now(),
        crypto,
      });
      tokenBytes = t.bytes;
    }
    nonce = tokenBytes.subarray(50, 66);
    o.onToken?.(tokenBytes);
    opts.username = id;
    opts.password = Buffer.from(tokenBytes);
  }
  return new Promise<ConnectOutcome>((resolve) => {
    let settled = false;
    const client = connect(target.url, opts);
    const finish = (r: ConnectOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!r.ok) client.end(true);
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, error: 'connect-timeout' }), o.timeoutMs);
    const ready = (): void => finish({ ok: true, client, ms: performance.now() - t0 });
    client.on('error', (err: Error & { code?: unknown }) => {
      if (typeof err.code === 'number') finish({ ok: false, error: `connack-${err.code}` });
      else finish({ ok: false, error: `socket-${String(err.code ?? 'error')}` });
    });
    client.on('close', () => finish({ ok: false, error: 'closed-before-ready' }));
    client.on('message', (_topic, payload) => {
      if (!settled && gatewayMode) {
        if (payload[0] !== MSG.PROOF || !gatewayPublic || !nonce) return;
        try {
          verifyGatewayProof(payload, {
            gatewayId: gatewayPublic.id,
            gatewaySignPublicKey: gatewayPublic.signPublicKey,
            endpointId: id,
            nonce,
            crypto,
          });
          ready();
        } catch {
          finish({ ok: false, error: 'bad-gateway-proof' });
        }
        return;
      }
      o.onMessage?.(payload);
    });
    client.on('connect', () => {
      client.subscribe(inboxTopic(id), { qos: 1 }, (err, granted) => {
        if (err || !granted || granted[0]?.qos === 128) {
          finish({ ok: false, error: 'inbox-subscribe-refused' });
          return;
        }
        if (!gatewayMode) ready();
      });
    });
  });
}

function onParentMessage(parent: Endpoint, payload: Buffer): void {
  if (payload[0] !== MSG.CLIP) return;
  const now = performance.now();
  let sender: string;
  let seq: number;
  let clipId: Uint8Array;
  try {
    const d = decodeClip(payload);
    sender = d.header.sender;
    seq = d.header.sequence;
    clipId = d.header.clipId;
  } catch {
    countError('delivery-malformed');
    return;
  }
  const toy = toyBySender.get(sender);
  if (!toy) return;
  if (init.parentsOpen) {
    try {
      openClip(payload, { recipient: parent.identity, sender: toy.pub, crypto });
    } catch {
      countError('delivery-open-failed');
    }
  }
  const key = `${toy.index}:${seq}`;
  const f = inflight.get(key);
  if (!f || f.delivered) {
    counters.duplicates++;
  } else {
    f.delivered = true;
    counters.clipsDelivered++;
    recordMs(hE2e, now - f.t0);
    if (f.state !== 'pending') inflight.delete(key);
  }
  if (init.receipts && gatewayMode && parent.client && parent.ready) {
    const r = createReceipt({
      recipient: parent.identity,
      sender: toy.identity.id,
      clipId,
      receivedAt: Date.now(),
      crypto,
    });
    parent.client.publish(receiptTopic(parent.identity.id), Buffer.from(r), { qos: 1 }, (err) => {
      if (err) countError('receipt-publish');
    });
    counters.receiptsSent++;
  }
}

function attach(ep: Endpoint, client: MqttClient, isParent: boolean): void {
  ep.client = client;
  ep.ready = true;
  ep.dropping = false;
  client.removeAllListeners('message');
  client.on('message', (_t, payload) => {
    if (isParent) onParentMessage(ep, payload);
  });
  client.removeAllListeners('close');
  client.on('close', () => {
    if (ep.client !== client) return;
    ep.ready = false;
    ep.client = null;
    if (!ep.dropping) countError(isParent ? 'parent-disconnected' : 'toy-disconnected');
  });
  client.removeAllListeners('error');
  client.on('error', () => {});
}

async function connectOne(ep: Endpoint, isParent: boolean, timeoutMs: number): Promise<boolean> {
  const r = await openConnection({ identity: ep.identity, timeoutMs });
  if (!r.ok) {
    counters.connectFailures++;
    countError(`connect:${r.error}`);
    return false;
  }
  counters.connects++;
  recordMs(hConnect, r.ms);
  attach(ep, r.client, isParent);
  return true;
}

/** Connects endpoints at `rate` per second (0 = all at once), bounded by `timeoutMs` each. */
async function connectMany(list: readonly Endpoint[], isParent: boolean, rate: number, timeoutMs: number) {
  const start = performance.now();
  const jobs: Promise<boolean>[] = [];
  for (let i = 0; i < list.length; i++) {
    const ep = list[i]!;
    if (stopping) break;
    if (rate > 0) {
      const due = start + (i / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
    }
    jobs.push(connectOne(ep, isParent, timeoutMs));
  }
  const results = await Promise.all(jobs);
  return { ok: results.filter(Boolean).length, failed: results.filter((x) => !x).length };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- clips -----------------------------------------------------------------------------------

let poolIndex = 0;
let nextToy = 0;

function nextReadyToy(): Endpoint | null {
  for (let n = 0; n < toys.length; n++) {
    const t = toys[nextToy]!;
    nextToy = (nextToy + 1) % toys.length;
    if (t.ready && t.client) return t;
  }
  return null;
}

/** Sealed envelopes per recipient, for --seal resign. */
const templates = new Map<string, Uint8Array>();
const idBytes = new Map<string, Uint8Array>();

/**
 * --seal resign: copies a per-recipient sealed template and writes this clip's own sender, clip id,
 * sequence number and creation time at their [PLK-5.1] offsets, then signs it with the toy's key.
 * A valid envelope the recipient can open; only the content key and body are shared between clips.
 */
function resignFor(toy: Endpoint, recipient: PublicIdentity): Uint8Array {
  let tpl = templates.get(recipient.id);
  if (!tpl) {
    tpl = fullSeal(toy, recipient);
    templates.set(recipient.id, tpl);
    return tpl.slice();
  }
  const env = tpl.slice();
  let sender = idBytes.get(toy.identity.id);
  if (!sender) {
    sender = idToBytes(toy.identity.id);
    idBytes.set(toy.identity.id, sender);
  }
  env.set(sender, 2);
  env.set(systemRandom(16), 22);
  const view = new DataView(env.buffer, env.byteOffset, env.byteLength);
  view.setBigUint64(38, BigInt(toy.seq));
  view.setBigUint64(46, BigInt(Date.now()));
  const end = env.length - 64;
  env.set(signBody(crypto, toy.identity.signSeed, CONTEXT.CLIP, env.subarray(0, end)), end);
  return env;
}

/** A fresh envelope for the toy's next sequence number. */
function sealFor(toy: Endpoint, recipient: PublicIdentity): Uint8Array {
  toy.seq++;
  return init.seal === 'resign' ? resignFor(toy, recipient) : fullSeal(toy, recipient);
}

/** Full seal: fresh content key, sealed box per recipient, secretbox body, signature [PLK-5]. */
function fullSeal(toy: Endpoint, recipient: PublicIdentity): Uint8Array {
  const ogg = init.oggPool[poolIndex++ % init.oggPool.length]!;
  return sealClip({
    sender: toy.identity,
    recipients: [recipient],
    sequence: toy.seq,
    createdAt: Date.now(),
    durationMs: init.clipDurationMs,
    ogg,
    crypto,
  });
}

function sendClip(): void {
  if (pendingAcks >= Math.min(init.maxInflight, CAPS.inflightPerWorker)) {
    counters.notSent++;
    countError('not-sent:inflight-limit');
    return;
  }
  const toy = nextReadyToy();
  if (!toy?.client) {
    counters.notSent++;
    countError('not-sent:no-connected-toy');
    return;
  }
  const parent = parents[toy.parent]!;
  const env = sealFor(toy, parent.pub);
  if (captured.length < 8) captured.push(env);
  const key = `${toy.index}:${toy.seq}`;
  const f: Inflight = { t0: performance.now(), bytes: env.length, state: 'pending', delivered: false };
  inflight.set(key, f);
  pendingAcks++;
  counters.clipsSent++;
  counters.bytesSent += env.length;
  const topic = gatewayMode ? clipTopic(toy.identity.id) : inboxTopic(parent.identity.id);
  toy.client.publish(topic, Buffer.from(env.buffer, env.byteOffset, env.length), { qos: 1 }, (err) => {
    if (f.state !== 'pending') return;
    pendingAcks--;
    if (err) {
      f.state = 'failed';
      inflight.delete(key);
      countError(`publish:${err.message.slice(0, 40)}`);
      return;
    }
    f.state = 'acked';
    counters.clipsAcked++;
    counters.bytesAcked += f.bytes;
    recordMs(hPuback, performance.now() - f.t0);
    if (f.delivered) inflight.delete(key);
  });
}

// ---- attacks ---------------------------------------------------------------------------------

let attackIndex = init.index * 3;
let attacksPending = 0;
const WILDCARDS = ['#', 'plk/1/+/inbox', '$SYS/#', 'plk/1/#'];
let oversize: Buffer | null = null;

function tally(kind: AttackKind, verdict: 'refused' | 'leaked' | 'inconclusive', signal: string): void {
  const t = attacks[kind] ?? { attempted: 0, refused: 0, leaked: 0, inconclusive: 0, signals: {} };
  attacks[kind] = t;
  t.attempted++;
  t[verdict]++;
  t.signals[signal] = (t.signals[signal] ?? 0) + 1;
}

/** Waits for the client to be closed by the peer (refused) or for `ack` (leaked), bounded. */
function awaitRefusal(client: MqttClient, publish: (cb: (err?: Error) => void) => void, timeoutMs: number) {
  return new Promise<'refused' | 'leaked' | 'inconclusive'>((resolve) => {
    let done = false;
    const end = (v: 'refused' | 'leaked' | 'inconclusive') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.end(true);
      resolve(v);
    };
    const timer = setTimeout(() => end('inconclusive'), timeoutMs);
    client.on('close', () => end('refused'));
    publish((err) => end(err ? 'refused' : 'leaked'));
  });
}

async function runAttack(kind: AttackKind): Promise<void> {
  const timeoutMs = 5000;
  if (kind === 'unknown-id') {
    const stranger = generateIdentity('toy', undefined, crypto);
    const r = await openConnection({ identity: stranger, timeoutMs });
    if (r.ok) {
      r.client.end(true);
      tally(kind, 'leaked', 'connected');
    } else tally(kind, r.error === 'connect-timeout' ? 'inconclusive' : 'refused', r.error);
    return;
  }
  const slot = attackers.findIndex((_a, i) => !attackerBusy.has(i));
  if (slot < 0) {
    countError('attack-skipped:no-free-attacker');
    return;
  }
  attackerBusy.add(slot);
  const att = attackers[slot]!;
  try {
    let token: Uint8Array | undefined;
    const r = await openConnection({ identity: att.identity, timeoutMs, onToken: (t) => (token = t) });
    if (!r.ok) {
      countError(`attack-setup:${r.error}`);
      return;
    }
    const c = r.client;
    c.on('error', () => {});
    if (kind === 'replayed-token') {
      await new Promise<void>((res) => c.end(true, {}, () => res()));
      const again = await openConnection({ identity: att.identity, timeoutMs, token: token! });
      if (again.ok) {
        again.client.end(true);
        tally(kind, 'leaked', 'connected');
      } else tally(kind, again.error === 'connect-timeout' ? 'inconclusive' : 'refused', again.error);
      return;
    }
    if (kind === 'wildcard-subscription') {
      const topic = WILDCARDS[attackIndex % WILDCARDS.length]!;
      const granted = await new Promise<number>((res) => {
        const timer = setTimeout(() => res(-1), timeoutMs);
        c.subscribe(topic, { qos: 1 }, (err, g) => {
          clearTimeout(timer);
          res(err ? 128 : (g?.[0]?.qos ?? -1));
        });
      });
      c.end(true);
      if (granted === 128) tally(kind, 'refused', 'suback-128');
      else if (granted < 0) tally(kind, 'inconclusive', 'timeout');
      else tally(kind, 'leaked', `suback-${granted}`);
      return;
    }
    let payload: Buffer;
    if (kind === 'bad-signature') {
      if (!attackerParent) return;
      const env = sealFor(att, attackerParent);
      env[env.length - 1]! ^= 0x55;
      payload = Buffer.from(env.buffer, env.byteOffset, env.length);
    } else if (kind === 'replayed-envelope') {
      const env = captured[attackIndex % Math.max(1, captured.length)];
      if (!env) {
        c.end(true);
        countError('attack-skipped:nothing-captured');
        return;
      }
      payload = Buffer.from(env.buffer, env.byteOffset, env.length);
    } else {
      oversize ??= Buffer.alloc(init.oversizeBytes, 0x01);
      payload = oversize;
    }
    const v = await awaitRefusal(
      c,
      (cb) => c.publish(clipTopic(att.identity.id), payload, { qos: 1 }, (err) => cb(err ?? undefined)),
      timeoutMs,
    );
    tally(kind, v, v === 'refused' ? 'closed-without-puback' : v === 'leaked' ? 'puback' : 'timeout');
  } finally {
    attackerBusy.delete(slot);
  }
}

// ---- phases ----------------------------------------------------------------------------------

let stopping = false;
let phaseTimer: NodeJS.Timeout | null = null;

function runPhase(clipRate: number, attackRate: number, durationMs: number): Promise<void> {
  return new Promise((resolve) => {
    const start = performance.now();
    let sent = 0;
    let attacked = 0;
    const step = (): void => {
      const elapsed = performance.now() - start;
      if (stopping || elapsed >= durationMs) {
        if (phaseTimer) clearInterval(phaseTimer);
        phaseTimer = null;
        resolve();
        return;
      }
      const due = Math.floor((elapsed / 1000) * clipRate);
      let budget = CAPS.sendsPerTick;
      while (sent < due && budget-- > 0) {
        sent++;
        sendClip();
      }
      const dueAttacks = Math.floor((elapsed / 1000) * attackRate);
      while (attacked < dueAttacks) {
        attacked++;
        const kind = ATTACK_KINDS[attackIndex++ % ATTACK_KINDS.length]!;
        attacksPending++;
        runAttack(kind)
          .catch((err: unknown) => countError(`attack-error:${String(err).slice(0, 40)}`))
          .finally(() => attacksPending--);
      }
    };
    phaseTimer = setInterval(step, 5);
  });
}

/** Waits (bounded) until every clip is acknowledged and delivered; the rest become errors / losses. */
async function drain(timeoutMs: number): Promise<{ lost: number; timedOut: number }> {
  const until = performance.now() + timeoutMs;
  while (performance.now() < until && !stopping) {
    let open = 0;
    for (const f of inflight.values()) if (f.state === 'pending' || !f.delivered) open++;
    if (open === 0 && attacksPending === 0) break;
    await sleep(20);
  }
  let lost = 0;
  let timedOut = 0;
  for (const [key, f] of inflight) {
    if (f.state === 'pending') {
      f.state = 'failed';
      pendingAcks--;
      timedOut++;
      countError('puback-timeout');
    } else if (f.state === 'acked' && !f.delivered) lost++;
    inflight.delete(key);
  }
  return { lost, timedOut };
}

async function storm(timeoutMs: number): Promise<void> {
  const dropAt = performance.now();
  for (const t of toys) {
    if (!t.client) continue;
    t.dropping = true;
    t.ready = false;
    const c = t.client;
    t.client = null;
    c.stream?.destroy();
    c.end(true);
  }
  const res = await connectMany(toys, false, 0, timeoutMs);
  tick();
  post({
    type: 'stormed',
    index: init.index,
    toys: toys.length,
    back: res.ok,
    failed: res.failed,
    allBackMs: performance.now() - dropAt,
    dropAt: performance.timeOrigin + dropAt,
  });
}

async function closeAll(): Promise<void> {
  const all = [...toys, ...parents];
  await Promise.all(
    all.map(
      (ep) =>
        new Promise<void>((res) => {
          const c = ep.client;
          ep.dropping = true;
          ep.ready = false;
          ep.client = null;
          if (!c) return res();
          const timer = setTimeout(res, 1000);
          c.end(false, {}, () => {
            clearTimeout(timer);
            res();
          });
        }),
    ),
  );
}

port.on('message', (msg: MainToWorker) => {
  const i = init.index;
  switch (msg.type) {
    case 'connect':
      connectMany(
        msg.who === 'parents' ? parents : toys,
        msg.who === 'parents',
        msg.rate,
        msg.timeoutMs,
      ).then(
        (r) => {
          tick();
          post({ type: 'connected', index: i, ...r });
        },
        (err: unknown) => post({ type: 'fatal', index: i, message: String(err) }),
      );
      break;
    case 'run':
      runPhase(msg.clipRate, msg.attackRate, msg.durationMs).then(() => {
        tick();
        post({ type: 'ran', index: i });
      });
      break;
    case 'storm':
      storm(msg.timeoutMs).catch((err: unknown) => post({ type: 'fatal', index: i, message: String(err) }));
      break;
    case 'drain':
      drain(msg.timeoutMs).then((r) => {
        tick();
        post({ type: 'drained', index: i, ...r });
      });
      break;
    case 'stop':
      if (stopping) break;
      stopping = true;
      if (phaseTimer) clearInterval(phaseTimer);
      // Interrupted: clips still waiting for their PUBACK are errors, so sent = acked + errors holds.
      for (const f of inflight.values()) {
        if (f.state === 'pending') {
          f.state = 'failed';
          pendingAcks--;
          countError('interrupted');
        }
      }
      inflight.clear();
      closeAll().then(() => {
        tick();
        clearInterval(ticker);
        lag.disable();
        post({ type: 'stopped', index: i });
      });
      break;
  }
});

post({ type: 'ready', index: init.index });
