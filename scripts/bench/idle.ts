// Idle-toy benchmark (`npm run bench:idle`): N toys (default 100,000) connect, authenticate and subscribe to one gateway pinned to core 0, from several 127.x source addresses, and stay; gateway memory per connected toy beside bare Aedes, connects/s, all held.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command, InvalidArgumentError } from 'commander';
import mqttPacket from 'mqtt-packet';
import type { FamilyRegistration } from '../../gateway/admin.ts';
import { nodeFlags } from '../../platform/node-flags.ts';
import { generateIdentity, type PrivateIdentity, publicPart } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { createConnectToken } from '../../shared/token.ts';
import { inboxTopic } from '../../shared/topics.ts';
import type { EndpointId } from '../../shared/types.ts';
import {
  benchCode,
  type ForkedGateway,
  type MemorySample,
  openFileLimit,
  procSample,
  startForkedGateway,
} from '../loadtest/targets.ts';

const count = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};
const program = new Command('bench:idle')
  .description(
    'connect N idle toys to one gateway (and, as the reference, to bare Aedes) and measure memory per toy',
  )
  .option('--toys <n>', 'idle toys to connect', count, 100_000)
  .option('--rate <n>', 'connects offered per second', count, 4000)
  .option('--inflight <n>', 'connects in flight at most', count, 400)
  .option('--hold <seconds>', 'seconds to hold every toy connected after the last one is in', count, 10)
  .option(
    '--per-source <n>',
    'connections per 127.x source address (ephemeral ports are per address)',
    count,
    20_000,
  )
  .option(
    '--targets <list>',
    'which systems to run: gateway, aedes (the bare-Aedes reference) or both',
    'gateway,aedes',
  )
  .option('--cpu-prof <dir>', "write the gateway's V8 CPU profile (node --cpu-prof) into DIR")
  .option('--quick', 'shorthand for --toys 10000 --hold 3')
  .parse();
const o = program.opts<{
  toys: number;
  rate: number;
  inflight: number;
  hold: number;
  perSource: number;
  targets: string;
  quick?: boolean;
  cpuProf?: string;
}>();
const ASKED = o.quick ? Math.min(o.toys, 10_000) : o.toys;
/** Descriptors each side keeps besides the toys' sockets (listeners, SQLite, pipes, node itself). */
const FD_SLACK = 1000;
const HOLD_MS = (o.quick ? 3 : o.hold) * 1000;
let TOYS = ASKED;
/** Toys connected before memory is sampled: max(1, min(200, 2 % of the toys)). */
const warmupFor = (n: number): number => Math.max(1, Math.min(200, Math.floor(n / 50)));
let fdNote = '';
const KEEPALIVE_S = 600; // longer than any run: idle toys send nothing at all while measured
const OUT_DIR = join(process.cwd(), 'bench-results');
const log = (s: string): void => {
  process.stderr.write(`[bench:idle ${(performance.now() / 1000).toFixed(0)}s] ${s}\n`);
};

/** The hard open-file limit of this process (what an unprivileged raise can reach). */
function hardFileLimit(): number | null {
  const r = spawnSync(
    'prlimit',
    ['--pid', String(process.pid), '--nofile', '--raw', '--noheadings', '--output', 'HARD'],
    {
      encoding: 'utf8',
    },
  );
  const n = Number(r.stdout.trim());
  return r.status === 0 && Number.isFinite(n) ? n : null;
}

/** Raises the open-file limit of `pid` (soft and hard) to `n`; false when prlimit refuses (not root). */
function raiseFileLimit(pid: number, n: number): boolean {
  return spawnSync('prlimit', ['--pid', String(pid), `--nofile=${n}:${n}`], { stdio: 'ignore' }).status === 0;
}
function pin(pid: number, core: number): boolean {
  return spawnSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' }).status === 0;
}

interface IdleRun {
  target: 'gateway' | 'aedes';
  toys: number;
  connected: number;
  refused: Record<string, number>;
  errors: number;
  connectMs: number;
  connectsPerSec: number;
  /** Toys connected before the "before" sample (one-off costs), not counted per toy. */
  warmupToys: number;
  heldAfterMs: number;
  stillConnected: number;
  rssBeforeBytes: number | null;
  rssAfterBytes: number | null;
  rssPerToyBytes: number | null;
  cpuMsPerConnect: number | null;
  /** CPU of the system under test while the toys connected, % of one core. */
  systemCpuPercent: number | null;
  /** CPU of this generator while the toys connected, % of one core: near 100 means it set the pace. */
  generatorCpuPercent: number;
  /** Live JS heap per toy after a full collection. */
  heapPerToyBytes: number | null;
  /** Buffers and other memory outside the JS heap per toy, after a full collection. */
  externalPerToyBytes: number | null;
  /**
   * Where the RSS growth went, in bytes per toy: V8's committed young generation (a fixed cost that
   * grows to its cap during a connect burst, not per toy), its committed old generation (live heap
   * plus free space in its pages), and the rest (malloc: sockets, OpenSSL, SQLite, libuv).
   */
  rssSplitPerToyBytes: { youngCommitted: number; oldCommitted: number; rest: number } | null;
  /** RSS growth per toy without the young generation's growth: the marginal cost of one more toy. */
  rssPerToyExcludingYoungBytes: number | null;
}

/** Committed bytes of V8's young generation (new space and its large-object space) and of the rest of the heap. */
function committed(m: MemorySample): { young: number; old: number } {
  let young = 0;
  let old = 0;
  for (const s of m.spaces) {
    if (s.space_name === 'new_space' || s.space_name === 'new_large_object_space') young += s.space_size;
    else old += s.space_size;
  }
  return { young, old };
}

/**
 * One idle toy on a raw socket: CONNECT with a fresh token, SUBSCRIBE to its inbox, PUBACK whatever
 * arrives (the gateway proof, rosters). No MQTT.js client per toy: at 100,000 toys the generator's
 * own memory and CPU would otherwise be what is measured.
 */
function idleToy(
  port: number,
  localAddress: string,
  toy: PrivateIdentity,
  gatewayId: EndpointId,
  onReady: (ok: boolean, why: string) => void,
  onClose: () => void,
): Socket {
  const sock = netConnect({ host: '127.0.0.1', port, localAddress });
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  let settled = false;
  const settle = (ok: boolean, why: string): void => {
    if (settled) return;
    settled = true;
    onReady(ok, why);
  };
  sock.setNoDelay(true);
  sock.on('connect', () => {
    const token = createConnectToken({ identity: toy, gatewayId, now: Date.now() });
    sock.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        clientId: toy.id,
        keepalive: KEEPALIVE_S,
        username: toy.id,
        password: Buffer.from(token.bytes),
      }),
    );
  });
  parser.on('packet', (p) => {
    if (p.cmd === 'connack') {
      if (p.returnCode !== 0) {
        settle(false, `connack-${p.returnCode}`);
        sock.destroy();
        return;
      }
      sock.write(
        mqttPacket.generate({
          cmd: 'subscribe',
          messageId: 1,
          subscriptions: [{ topic: inboxTopic(toy.id), qos: 1 }],
        }),
      );
    } else if (p.cmd === 'suback') {
      settle(true, 'ok');
    } else if (p.cmd === 'publish' && p.qos === 1 && p.messageId !== undefined) {
      sock.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId }));
    }
  });
  parser.on('error', () => sock.destroy());
  sock.on('data', (b) => parser.parse(b));
  sock.on('error', () => settle(false, 'socket-error'));
  sock.on('close', () => {
    settle(false, 'closed');
    onClose();
  });
  return sock;
}

async function runOn(
  target: 'gateway' | 'aedes',
  toys: PrivateIdentity[],
  gw: ForkedGateway,
): Promise<IdleRun> {
  const port = Number(new URL(gw.info.url).port);
  // Bare Aedes takes any password: the tokens it gets are addressed to the toy itself.
  const gatewayId = (gw.info.gatewayId ?? null) as EndpointId | null;
  const refused: Record<string, number> = {};
  const sockets: Socket[] = [];
  let connected = 0;
  let errors = 0;
  let open = 0;
  let next = 0;
  let inflight = 0;
  /** Offers connects to toys[next..to) at `rate`, never more than `inflight` at once. */
  const connectUpTo = (to: number, t0: number): Promise<void> =>
    new Promise<void>((resolve) => {
      let lastLog = t0;
      const first = next;
      const tick = setInterval(() => {
        const now = performance.now();
        const due = Math.min(to, first + Math.floor(((now - t0) / 1000) * o.rate));
        while (next < due && inflight < o.inflight) {
          const i = next++;
          inflight++;
          open++;
          const source = `127.0.${1 + Math.floor(i / o.perSource)}.1`;
          sockets.push(
            idleToy(
              port,
              source,
              toys[i]!,
              gatewayId ?? toys[i]!.id,
              (ok, why) => {
                inflight--;
                if (ok) connected++;
                else if (why.startsWith('connack')) refused[why] = (refused[why] ?? 0) + 1;
                else errors++;
              },
              () => {
                open--;
              },
            ),
          );
        }
        if (now - lastLog > 5000) {
          lastLog = now;
          log(`${target}: ${connected}/${TOYS} connected (${errors} errors, ${inflight} in flight)`);
        }
        if (next >= to && inflight === 0) {
          clearInterval(tick);
          resolve();
        }
      }, 5);
    });
  // Warm-up: the first connections pay one-off costs that are not per toy (mqtt-packet builds its
  // table of 65,536 two-byte length buffers, ~6 MB, on first use; JIT code; SQLite page cache), so
  // the "before" sample is taken after warmupFor(TOYS) toys are in, for each system alike.
  await connectUpTo(warmupFor(TOYS), performance.now());
  const warmConnected = connected;
  const heapBefore = await gw.memory();
  const before = procSample(gw.pid);
  const t0 = performance.now();
  const gen0 = process.cpuUsage();
  await connectUpTo(TOYS, t0);
  const connectMs = performance.now() - t0;
  const gen = process.cpuUsage(gen0);
  const generatorCpuPercent = Math.round(((gen.user + gen.system) / 1000 / connectMs) * 100);
  const sutCpu = procSample(gw.pid);
  log(
    `${target}: ${connected}/${TOYS} connected in ${(connectMs / 1000).toFixed(1)} s; holding ${HOLD_MS / 1000} s`,
  );
  await new Promise((r) => setTimeout(r, HOLD_MS));
  const heapAfter = await gw.memory();
  const after = procSample(gw.pid);
  const stillConnected = open;
  for (const s of sockets) s.destroy();
  const measured = connected - warmConnected;
  const perToy =
    before && after && measured > 0 ? Math.round((after.rssBytes - before.rssBytes) / measured) : null;
  const cb = committed(heapBefore);
  const ca = committed(heapAfter);
  const split =
    before && after && measured > 0
      ? {
          youngCommitted: Math.round((ca.young - cb.young) / measured),
          oldCommitted: Math.round((ca.old - cb.old) / measured),
          rest: Math.round(
            (after.rssBytes - before.rssBytes - (ca.young - cb.young) - (ca.old - cb.old)) / measured,
          ),
        }
      : null;
  return {
    target,
    toys: TOYS,
    connected,
    refused,
    errors,
    connectMs: Math.round(connectMs),
    connectsPerSec: Math.round((measured / connectMs) * 1000),
    warmupToys: warmConnected,
    heldAfterMs: HOLD_MS,
    stillConnected,
    rssBeforeBytes: before?.rssBytes ?? null,
    rssAfterBytes: after?.rssBytes ?? null,
    rssPerToyBytes: perToy,
    cpuMsPerConnect:
      before && sutCpu && measured > 0
        ? Math.round(((sutCpu.cpuMs - before.cpuMs) / measured) * 1000) / 1000
        : null,
    systemCpuPercent: before && sutCpu ? Math.round(((sutCpu.cpuMs - before.cpuMs) / connectMs) * 100) : null,
    generatorCpuPercent,
    heapPerToyBytes: measured > 0 ? Math.round((heapAfter.heapUsed - heapBefore.heapUsed) / measured) : null,
    rssSplitPerToyBytes: split,
    rssPerToyExcludingYoungBytes: perToy !== null && split ? perToy - split.youngCommitted : null,
    externalPerToyBytes:
      measured > 0
        ? Math.round(
            (heapAfter.external + heapAfter.arrayBuffers - heapBefore.external - heapBefore.arrayBuffers) /
              measured,
          )
        : null,
  };
}

async function main(): Promise<void> {
  // The toys' sockets need one descriptor each in the gateway and one in this generator. Past the
  // hard limit only CAP_SYS_RESOURCE can raise it: then fewer toys are run, and the report says so.
  const want = ASKED + FD_SLACK;
  const raised = raiseFileLimit(process.pid, want);
  if (!raised) {
    const hard = hardFileLimit();
    if (hard !== null && hard > (openFileLimit() ?? 0)) raiseFileLimit(process.pid, hard);
  }
  const limit = openFileLimit() ?? want;
  TOYS = Math.min(ASKED, limit - FD_SLACK);
  fdNote = raised
    ? `open-file limit raised to ${want} in both processes`
    : `open-file limit NOT raisable to ${want} here (hard limit ${limit}, no CAP_SYS_RESOURCE): ${TOYS} toys instead of ${ASKED}`;
  const generatorPinned = pin(process.pid, 1);
  log(
    `${fdNote}; ${generatorPinned ? 'systems under test on core 0, generator on core 1' : 'taskset unavailable: NOT pinned'}`,
  );
  const t0 = performance.now();
  // Families of four toys and one parent (who stays offline): identities from a seeded source.
  const rnd = seededRandom('bench-idle');
  const toys: PrivateIdentity[] = [];
  const families: FamilyRegistration[] = [];
  for (let i = 0; i < TOYS; i += 4) {
    const members = Array.from({ length: Math.min(4, TOYS - i) }, () => generateIdentity('toy', rnd));
    toys.push(...members);
    families.push({ members: [...members.map(publicPart), publicPart(generateIdentity('parent', rnd))] });
  }
  log(
    `${toys.length} toy identities in ${families.length} families generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  const runs: IdleRun[] = [];
  const targets = o.targets.split(',').map((t) => t.trim());
  for (const t of targets) {
    if (t !== 'gateway' && t !== 'aedes') {
      process.stderr.write(`bench:idle: --targets: unknown system "${t}" (gateway, aedes)\n`);
      process.exit(2);
    }
  }
  // Both run compiled (dist/), as `plushlink gateway` does; see bench:gateway (docs/LOADTEST.md).
  const { compiled, note: codeNote } = benchCode();
  log(`systems under test run ${codeNote}`);
  for (const target of targets as ('gateway' | 'aedes')[]) {
    const gw = await startForkedGateway(target, {
      compiled,
      ...(target === 'gateway' && o.cpuProf ? { cpuProfDir: o.cpuProf } : {}),
      // pinned to core 0 below, like bench:gateway's systems under test (ONE_CORE_FLAGS)
      oneCore: generatorPinned,
    });
    try {
      const limited = raiseFileLimit(gw.pid, TOYS + FD_SLACK);
      const pinnedSut = pin(gw.pid, 0);
      if (!limited) log(`${target}: could not raise its open-file limit`);
      if (!pinnedSut) log(`${target}: could not pin it to core 0`);
      if (target === 'gateway') {
        const t1 = performance.now();
        await gw.provision(families);
        log(`registered ${toys.length} toys in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
      }
      await new Promise((r) => setTimeout(r, 1000));
      runs.push(await runOn(target, toys, gw));
    } finally {
      await gw.close();
    }
  }
  const g = runs.find((r) => r.target === 'gateway');
  const a = runs.find((r) => r.target === 'aedes');
  const result = {
    bench: 'plushlink idle toys',
    at: new Date().toISOString(),
    toys: TOYS,
    toysAsked: ASKED,
    setup: {
      /** The Node flags of the forked gateway and bare Aedes (platform/node-flags.ts, PLK_NODE_FLAGS). */
      nodeFlags: nodeFlags(process.env, { oneCore: generatorPinned }),
      /** How the forked gateway and bare Aedes ran: compiled (dist/) or from source through tsx. */
      gatewayCode: codeNote,
      fileDescriptors: fdNote,
      pinned: generatorPinned,
      sources: `127.0.k.1, ${o.perSource} connections each`,
      keepaliveSeconds: KEEPALIVE_S,
      offeredConnectsPerSec: o.rate,
      inflight: o.inflight,
      client:
        'raw sockets (mqtt-packet): CONNECT with a fresh signed token, SUBSCRIBE to the inbox, PUBACK the proof',
    },
    runs,
    gatewayRssPerToyBytes: g?.rssPerToyBytes ?? null,
    bareAedesRssPerToyBytes: a?.rssPerToyBytes ?? null,
    ratioRssPerToy:
      g?.rssPerToyBytes && a?.rssPerToyBytes
        ? Math.round((g.rssPerToyBytes / a.rssPerToyBytes) * 100) / 100
        : null,
    ratioConnectsPerSec: g && a ? Math.round((g.connectsPerSec / a.connectsPerSec) * 100) / 100 : null,
    // The young generation is capped (--max-semi-space-size, platform/node-flags.ts) whatever the
    // number of toys: whether it grew during this connect burst or before it (while the toys were
    // registered) decides 0–3.5 kB per toy at 19,000 toys. Per toy counts what each toy adds.
    gatewayRssPerToyExcludingYoungBytes: g?.rssPerToyExcludingYoungBytes ?? null,
    bareAedesRssPerToyExcludingYoungBytes: a?.rssPerToyExcludingYoungBytes ?? null,
    targets: {
      rssPerToy: '<= 20 kB (RSS growth per toy, without the growth of the capped young generation)',
      idleToys: '100,000 held on one gateway',
    },
    met: {
      rssPerToy: (g?.rssPerToyExcludingYoungBytes ?? Number.POSITIVE_INFINITY) <= 20_000,
      rssPerToyIncludingYoung: (g?.rssPerToyBytes ?? Number.POSITIVE_INFINITY) <= 20_000,
      allHeld: g ? g.connected === TOYS && g.stillConnected === TOYS : false,
      hundredThousand: g ? TOYS >= 100_000 && g.connected === TOYS && g.stillConnected === TOYS : false,
    },
  };
  const kB = (b: number | null): string => (b === null ? '?' : (b / 1000).toFixed(1));
  for (const r of runs)
    log(
      `${r.target}: ${r.stillConnected}/${r.toys} held; RSS per toy ${kB(r.rssPerToyBytes)} kB, ` +
        `${kB(r.rssPerToyExcludingYoungBytes)} kB without the young generation's growth ` +
        `(old generation ${kB(r.rssSplitPerToyBytes?.oldCommitted ?? null)} kB committed, live heap ${kB(r.heapPerToyBytes)} kB; ` +
        `outside the heap ${kB(r.rssSplitPerToyBytes?.rest ?? null)} kB)`,
    );
  mkdirSync(OUT_DIR, { recursive: true });
  const out = join(OUT_DIR, o.quick ? 'idle-quick.json' : 'idle.json');
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${out}`);
}

await main();
