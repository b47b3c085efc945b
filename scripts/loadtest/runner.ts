// Load-test orchestration: fleet identities, target set-up and provisioning, scenarios, compare runs, the report.

import { encodePcmToOgg } from '../../device/codec/clip.ts';
import type { FamilyRegistration } from '../../gateway/admin.ts';
import { sealClip } from '../../shared/envelope.ts';
import { type PrivateIdentity, publicPart } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import type { DriverInit, EndpointSecrets, TargetInfo } from '../../sim/load-driver.ts';
import { familyPublics, generateRoster, planForToys, type Roster } from '../../sim/roster.ts';
import { BANK_SAMPLE_RATE, buildSpeechBank, randomUint32 } from '../../sim/speech-bank.ts';
import { preflight, rampSteps, type SpeechFile } from './preflight.ts';
import { Session, type SessionProgress } from './session.ts';
import {
  externalGateway,
  findMosquitto,
  startEmbeddedGateway,
  startForkedGateway,
  startMosquitto,
  startPlainAedes,
  type Target,
} from './targets.ts';
import { evaluateThreshold, runResult } from './thresholds.ts';
import type { AttackResult, LoadtestOptions, LoadtestReport, RampStep, RunSummary } from './types.ts';

export interface RunHooks {
  readonly signal?: AbortSignal;
  readonly onProgress?: (p: SessionProgress & { plannedMs: number }) => void;
  readonly log?: (line: string) => void;
}

/** The load test's fleet: toys in families with one parent each, and (attack scenario) one attacker family per worker. */
export interface LoadFleet {
  readonly roster: Roster;
  /** Registered toys that attack from their own family (whose only other member is a parent). */
  readonly attackers: Roster | null;
}

/** Deterministic identities from --seed (the same seed gives the same fleet), through the shared roster. */
export function buildFleet(opts: LoadtestOptions): LoadFleet {
  const roster = generateRoster(planForToys(opts.toys, opts.toysPerFamily, 1, `loadtest/${opts.seed}`));
  const attackers =
    opts.scenario === 'attack'
      ? generateRoster({
          families: opts.workers,
          toysPerFamily: 8,
          parentsPerFamily: 1,
          seed: `loadtest-attackers/${opts.seed}`,
        })
      : null;
  return { roster, attackers };
}

const secrets = (p: PrivateIdentity): EndpointSecrets => ({ signSeed: p.signSeed, boxSecret: p.boxSecret });

/** Splits families across workers whole, so a toy and its parent share a clock (e2e latency). */
export function workerInits(
  fleet: LoadFleet,
  target: TargetInfo,
  pool: { clips: readonly Uint8Array[]; clipDurationMs: number },
  opts: LoadtestOptions,
): DriverInit[] {
  const inits: DriverInit[] = [];
  for (let w = 0; w < opts.workers; w++) {
    const fams = fleet.roster.families.filter((_f, i) => i % opts.workers === w);
    const toys: PrivateIdentity[] = [];
    const toyParent: number[] = [];
    fams.forEach((f, pi) => {
      for (const t of f.toys) {
        toys.push(t.identity);
        toyParent.push(pi);
      }
    });
    const att = target.mode === 'gateway' ? fleet.attackers?.families[w] : undefined;
    inits.push({
      index: w,
      target,
      toys: toys.map(secrets),
      toyParent,
      parents: fams.map((f) => secrets(f.parents[0]!.identity)),
      attackers: att ? att.toys.map((t) => secrets(t.identity)) : [],
      attackerParent: att ? secrets(att.parents[0]!.identity) : null,
      oggPool: pool.clips,
      clipDurationMs: pool.clipDurationMs,
      receipts: opts.receipts && target.mode === 'gateway',
      parentsOpen: opts.parentsOpen,
      oversizeBytes: 2 * 1024 * 1024,
      seal: opts.seal,
      pubackTimeoutMs: 10_000,
      maxInflight: opts.maxInflight ?? 20_000,
    });
  }
  return inits;
}

/** Clips the generator seals, Opus-encoded once (complexity 5, 24 kbit/s), and where their speech came from. */
export interface AudioPool {
  clips: Uint8Array[];
  clipDurationMs: number;
  oggBytesMean: number;
  source: string;
}

/** Up to `count` windows of `samples` from `pcm`, one after the other; a short recording is looped. */
export function speechWindows(pcm: Int16Array, samples: number, count: number): Int16Array[] {
  const n = Math.max(1, Math.min(count, Math.floor(pcm.length / samples)));
  const out: Int16Array[] = [];
  for (let i = 0; i < n; i++) {
    const w = new Int16Array(samples);
    for (let j = 0, at = (i * samples) % pcm.length; j < samples; ) {
      const take = Math.min(samples - j, pcm.length - at);
      w.set(pcm.subarray(at, at + take), j);
      j += take;
      at = 0;
    }
    out.push(w);
  }
  return out;
}

/**
 * Speech the generator seals: up to 4 clips of `seconds`, Opus-encoded once. From the `speech`
 * recordings when given (cut one after the other, a short one looped), else synthetic speech.
 * `bundled` says the recordings are assets/speech (for the report's wording).
 */
export function audioPool(
  seconds: number,
  seed: string,
  speech: readonly SpeechFile[] = [],
  bundled = false,
): AudioPool {
  const clipDurationMs = Math.round(seconds * 1000);
  if (speech.length === 0) {
    const bank = buildSpeechBank({ count: 4, seconds, seed: `loadtest/${seed}`, encode: { complexity: 5 } });
    return {
      clips: bank.clips.map((c) => c.ogg ?? new Uint8Array(0)),
      clipDurationMs,
      oggBytesMean: bank.oggBytesMean,
      source: 'synthetic speech (sim/speech-bank.ts)',
    };
  }
  const all = new Int16Array(speech.reduce((a, f) => a + f.pcm.length, 0));
  let at = 0;
  for (const f of speech) {
    all.set(f.pcm, at);
    at += f.pcm.length;
  }
  const random = seededRandom(`plushlink/loadtest-wav/${seed}`);
  const clips = speechWindows(all, Math.round(seconds * BANK_SAMPLE_RATE), 4).map(
    (pcm) =>
      encodePcmToOgg(pcm, {
        serial: randomUint32(random),
        settings: { complexity: 5, sampleRate: BANK_SAMPLE_RATE },
      }).ogg,
  );
  return {
    clips,
    clipDurationMs,
    oggBytesMean: Math.round(clips.reduce((a, c) => a + c.length, 0) / clips.length),
    source: bundled
      ? `bundled speech (assets/speech: ${speech.length} recordings, ${(all.length / BANK_SAMPLE_RATE).toFixed(1)} s)`
      : `recorded speech: ${speech.map((f) => `${f.file} (${(f.pcm.length / BANK_SAMPLE_RATE).toFixed(1)} s)`).join(', ')}`,
  };
}

/** What the gateway's admin API registers: every family's public identities under its roster id. */
export function registrations(fleet: LoadFleet): FamilyRegistration[] {
  return [...fleet.roster.families, ...(fleet.attackers?.families ?? [])].map((f) => ({
    id: f.id,
    members: familyPublics(f),
  }));
}

/** Planned wall time of the traffic phases (for the progress bar). */
export function plannedMs(opts: LoadtestOptions): number {
  if (opts.scenario === 'ramp') return opts.rampStepMs * Math.max(1, rampSteps(opts));
  return opts.durationMs;
}

interface ScenarioOut {
  ramp?: NonNullable<LoadtestReport['scenario']['ramp']>;
  storm?: NonNullable<LoadtestReport['scenario']['storm']>;
  attack?: AttackResult;
}

/** Brings the fleet up and runs `scenario` against one target. Returns when done or aborted. */
async function drive(
  session: Session,
  opts: LoadtestOptions,
  scenario: LoadtestOptions['scenario'],
  fleet: LoadFleet,
  hooks: RunHooks,
): Promise<ScenarioOut> {
  const aborted = (): boolean => hooks.signal?.aborted === true;
  const parents = fleet.roster.families.length;
  const out: ScenarioOut = {};
  hooks.log?.(
    `connecting ${parents} parents and ${opts.toys} toys to ${(session.target.info.urls ?? [session.target.info.url]).join(' ')}`,
  );
  // --connect-rate 0 means all at once, for the parents too.
  await session.connect('parents', opts.connectRate, parents);
  if (aborted()) return out;
  const c = await session.connect('toys', opts.connectRate, opts.toys);
  hooks.log?.(`connected ${c.ok} toys (${c.failed} failed)`);
  if (aborted()) return out;
  if (scenario === 'steady') {
    await session.run(opts.clipRate, 0, opts.durationMs, 'steady');
    await session.drain();
  } else if (scenario === 'attack') {
    const attackRate = (opts.clipRate * opts.attackShare) / Math.max(0.01, 1 - opts.attackShare);
    await session.run(opts.clipRate, attackRate, opts.durationMs, 'attack');
    await session.drain();
    const byKind: Record<string, (typeof session.attacks)[keyof typeof session.attacks] & object> = {};
    for (const [k, v] of Object.entries(session.attacks)) if (v) byKind[k] = v;
    const sum = (f: 'attempted' | 'refused' | 'leaked' | 'inconclusive') =>
      Object.values(byKind).reduce((a, v) => a + v[f], 0);
    const counters = await session.target.counters();
    out.attack = {
      share: opts.attackShare,
      byKind,
      attempted: sum('attempted'),
      refused: sum('refused'),
      leaked: sum('leaked'),
      inconclusive: sum('inconclusive'),
      gatewayCounters: counters
        ? Object.fromEntries(
            Object.entries(counters).filter(
              ([k, v]) => v > 0 && /auth_failures|clips_refused|subscribe_refusals|socket_violations/.test(k),
            ),
          )
        : null,
    };
  } else if (scenario === 'storm') {
    // --duration is the traffic: half of it before the storm, half after.
    const half = Math.floor(opts.durationMs / 2);
    await session.run(opts.clipRate, 0, half, 'before-storm');
    await session.drain();
    if (aborted()) return out;
    hooks.log?.(`storm: dropping and reconnecting ${opts.toys} toys at once`);
    out.storm = await session.storm(60_000);
    if (aborted()) return out;
    await session.run(opts.clipRate, 0, half, 'after-storm');
    await session.drain();
  } else {
    const steps: RampStep[] = [];
    let rate = opts.clipRate;
    let knee: number | null = null;
    let note = '';
    // As many steps as fit in --duration, at most --ramp-steps.
    const maxSteps = Math.max(1, rampSteps(opts));
    for (let i = 0; i < maxSteps && !aborted(); i++) {
      session.phaseAcc.e2e.reset();
      session.phaseAcc.puback.reset();
      session.phaseAcc.counters.clipsAcked = 0;
      session.phaseAcc.counters.notSent = 0;
      session.phaseAcc.errors = {};
      const t0 = session.elapsedMs();
      await session.run(rate, 0, opts.rampStepMs, `ramp ${Math.round(rate)}/s`);
      const wall = (session.elapsedMs() - t0) / 1000;
      const e2e =
        session.phaseAcc.e2e.totalCount > 0 ? session.phaseAcc.e2e.getValueAtPercentile(99) / 1000 : null;
      const pub =
        session.phaseAcc.puback.totalCount > 0
          ? session.phaseAcc.puback.getValueAtPercentile(99) / 1000
          : null;
      const achieved = session.phaseAcc.counters.clipsAcked / Math.max(0.001, wall);
      const sat = session.phaseAcc.counters.notSent > 0;
      const errors = Object.values(session.phaseAcc.errors).reduce((a, b) => a + b, 0);
      steps.push({
        clipRate: Math.round(rate),
        achievedClipsPerSec: Math.round(achieved * 10) / 10,
        e2eP99Ms: e2e === null ? null : Math.round(e2e * 1000) / 1000,
        pubackP99Ms: pub === null ? null : Math.round(pub * 1000) / 1000,
        errors,
        generatorSaturated: sat,
      });
      hooks.log?.(
        `ramp step ${i + 1}: offered ${Math.round(rate)}/s, achieved ${achieved.toFixed(1)}/s, e2e p99 ${e2e?.toFixed(2) ?? '-'} ms`,
      );
      const good = e2e !== null && e2e <= opts.rampTargetP99Ms && achieved >= 0.9 * rate && errors === 0;
      if (!good) {
        note =
          e2e !== null && e2e > opts.rampTargetP99Ms
            ? `p99 ${e2e.toFixed(1)} ms exceeded the ${opts.rampTargetP99Ms} ms target at ${Math.round(rate)}/s offered`
            : `throughput fell behind (${achieved.toFixed(0)}/s achieved of ${Math.round(rate)}/s offered${sat ? ', generator back-pressure' : ''})`;
        break;
      }
      knee = Math.round(achieved * 10) / 10;
      rate *= opts.rampFactor;
    }
    if (!note)
      note =
        knee === null
          ? 'no step met the target'
          : `target still met at the last step (${maxSteps} steps of ${opts.rampStepMs / 1000} s fit in --duration): the knee is above`;
    await session.drain();
    out.ramp = { targetP99Ms: opts.rampTargetP99Ms, steps, kneeClipsPerSec: knee, note };
  }
  return out;
}

/** Runs one complete session (workers up, scenario, workers down) against `target`. */
async function sessionOn(
  target: Target,
  fleet: LoadFleet,
  pool: AudioPool,
  opts: LoadtestOptions,
  scenario: LoadtestOptions['scenario'],
  hooks: RunHooks,
): Promise<{ summary: RunSummary; out: ScenarioOut; fatal: string[] }> {
  const inits = workerInits(fleet, target.info, pool, opts);
  const planned = plannedMs(opts);
  const session = new Session(target, inits, (p) => hooks.onProgress?.({ ...p, plannedMs: planned }));
  let out: ScenarioOut = {};
  const onAbort = (): void => {
    void session.abort();
  };
  hooks.signal?.addEventListener('abort', onAbort);
  try {
    await session.start();
    if (hooks.signal?.aborted) onAbort();
    out = await drive(session, opts, scenario, fleet, hooks);
  } finally {
    hooks.signal?.removeEventListener('abort', onAbort);
    await session.stop();
  }
  return { summary: session.summary(), out, fatal: session.fatal };
}

/** The whole `plushlink loadtest` run. Always resolves with a report of what ran (also after abort). */
export async function runLoadtest(opts: LoadtestOptions, hooks: RunHooks = {}): Promise<LoadtestReport> {
  // Every refusal that needs no work comes first (target, thresholds, --out, open files, --wav).
  const pre = preflight(opts);
  const startedAt = new Date();
  const notes: string[] = [];
  const deadline = new AbortController();
  const hardStop = setTimeout(() => deadline.abort(), opts.maxRunMs);
  hardStop.unref();
  const signal = hooks.signal ? AbortSignal.any([hooks.signal, deadline.signal]) : deadline.signal;
  const h: RunHooks = { ...hooks, signal };

  hooks.log?.(
    `encoding ${opts.clipSeconds} s clips of ${{ bundled: 'the bundled recorded', wav: 'your recorded', synth: 'synthetic' }[pre.speech.kind]} speech (Opus 24 kbit/s)`,
  );
  const pool = audioPool(opts.clipSeconds, opts.seed, pre.speech.files, pre.speech.kind === 'bundled');
  const fleet = buildFleet(opts);
  const sample = fleet.roster.families[0];
  const envelopeBytes = sample
    ? sealClip({
        sender: sample.toys[0]!.identity,
        recipients: [publicPart(sample.parents[0]!.identity)],
        sequence: 1,
        createdAt: Date.now(),
        durationMs: pool.clipDurationMs,
        ogg: pool.clips[0]!,
      }).length
    : 0;

  let target: Target;
  if (opts.gateway === 'forked') {
    const f = await startForkedGateway();
    hooks.log?.(`gateway in child process ${f.pid} on ${f.info.url}`);
    await f.provision(registrations(fleet));
    target = f;
  } else if (opts.gateway === 'embedded') {
    const emb = await startEmbeddedGateway();
    hooks.log?.(`embedded gateway on ${emb.info.url}, store in ${emb.dataDir}`);
    await emb.register(registrations(fleet));
    target = emb;
  } else {
    if (!opts.gatewayIdentityFile)
      throw new Error('--gateway-identity is required with an external --gateway');
    // URL1,URL2,…: nodes of one gateway; toys and their parents on different nodes (TargetInfo.urls).
    const urls = opts.gateway.split(',');
    if (urls.length > 1) hooks.log?.(`${urls.length} gateway nodes: ${urls.join(' ')}`);
    const ext = await externalGateway({
      url: urls[0]!,
      urls,
      identityFile: opts.gatewayIdentityFile,
      dataDir: opts.gatewayDataDir,
      pid: opts.gatewayPid,
      postgres: opts.gatewayPostgres ? { url: opts.gatewayPostgres, schema: opts.gatewayPgSchema } : null,
    });
    if (ext.register) await ext.register(registrations(fleet));
    else notes.push('no --gateway-data: the toys must already be provisioned in the gateway');
    target = ext;
  }
  let main: Awaited<ReturnType<typeof sessionOn>>;
  try {
    main = await sessionOn(target, fleet, pool, opts, opts.scenario, h);
  } finally {
    await target.close();
  }
  notes.push(...main.fatal);

  let compare: LoadtestReport['compare'];
  if (opts.compare === 'plain' && !signal.aborted) {
    const runs: RunSummary[] = [];
    const brokers: (() => Promise<Target>)[] = [startPlainAedes];
    const mosq = findMosquitto();
    if (mosq) brokers.push(() => startMosquitto(mosq));
    else notes.push('mosquitto not installed: compared with bare Aedes only (apt-get install mosquitto)');
    for (const start of brokers) {
      if (signal.aborted) break;
      const t = await start();
      hooks.log?.(`plain broker ${t.info.kind} on ${t.info.url}`);
      try {
        const r = await sessionOn(t, fleet, pool, opts, 'steady', h);
        runs.push(r.summary);
        notes.push(...r.fatal);
      } finally {
        await t.close();
      }
    }
    const g = main.summary;
    compare = {
      runs,
      ratios: runs.map((r) => ({
        broker: r.target.kind,
        throughput:
          r.throughput.clipsPerSec > 0 ? round3(g.throughput.clipsPerSec / r.throughput.clipsPerSec) : null,
        p99: r.latency.e2e.p99 > 0 ? round3(g.latency.e2e.p99 / r.latency.e2e.p99) : null,
      })),
    };
  }
  clearTimeout(hardStop);
  if (deadline.signal.aborted) notes.push(`stopped by the --max-run limit (${opts.maxRunMs} ms)`);
  const report: LoadtestReport = {
    tool: 'plushlink loadtest',
    version: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    interrupted: signal.aborted,
    options: optionsRecord(opts),
    audio: {
      clips: pool.clips.length,
      clipSeconds: opts.clipSeconds,
      oggBytesMean: pool.oggBytesMean,
      envelopeBytesMean: envelopeBytes,
      source: pool.source,
      sealing:
        opts.seal === 'full'
          ? `audio Opus-encoded once into a pool of ${pool.clips.length} clip(s); every clip is sealed (fresh content key, sealed box per recipient, secretbox body) and signed when sent, with its own sequence number`
          : 'audio Opus-encoded once; one sealed envelope per recipient is the template; every clip gets its own sender, clip id, sequence number, time and Ed25519 signature when sent (content key and body shared: --seal resign)',
    },
    fleet: {
      toys: opts.toys,
      parents: fleet.roster.families.length,
      attackers: (fleet.attackers?.families ?? []).reduce((a, x) => a + x.toys.length, 0),
      workers: opts.workers,
    },
    run: main.summary,
    scenario: { name: opts.scenario, ...main.out },
    ...(compare ? { compare } : {}),
    notes,
  };
  const thresholds = pre.thresholds.map((t) => evaluateThreshold(t, report));
  if (thresholds.length) report.thresholds = thresholds;
  report.result = runResult(report, thresholds, main.fatal);
  return report;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

function optionsRecord(o: LoadtestOptions): Record<string, string | number | boolean | null> {
  const r: Record<string, string | number | boolean | null> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') r[k] = v;
  }
  return r;
}
