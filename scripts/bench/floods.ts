// Flood benchmark: a legitimate clip round trip at idle and during each flood (SUBSCRIBE, PINGREQ, bad CONNECTs), as ratios to idle — target ≤ 2× [PLK-9.2][PLK-12.8]. Run: npm run bench:floods
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import { connectEndpoint } from '../../device/transport/mqtt-connect.ts';
import { toHex } from '../../shared/bytes.ts';
import { decodeClip, sealClip } from '../../shared/envelope.ts';
import { generateIdentity, type PublicIdentity, publicPart } from '../../shared/identity.ts';
import { createReceipt } from '../../shared/receipt.ts';
import { createConnectToken } from '../../shared/token.ts';
import type { EndpointId } from '../../shared/types.ts';
import { generateRoster } from '../../sim/roster.ts';
import { newHistogram, recordMs, summarize } from '../../sim/stats.ts';
import { registrations } from '../loadtest/runner.ts';
import { startForkedGateway } from '../loadtest/targets.ts';

const PHASE_MS = Number(process.env.PLK_FLOOD_PHASE_MS ?? 5000);
const ROUND_TRIPS_EVERY_MS = 50;
const root = new URL('../../', import.meta.url).pathname;

function pin(pid: number, core: number): boolean {
  const r = spawnSync('taskset', ['-cp', String(core), String(pid)], { stdio: 'ignore' });
  return r.status === 0;
}

const gw = await startForkedGateway('gateway');
const pinned = pin(gw.pid, 0) && pin(process.pid, 1);
const roster = generateRoster({ families: 3, toysPerFamily: 1, parentsPerFamily: 1, seed: 'bench-floods' });
await gw.provision(registrations({ roster, attackers: null }));
const url = gw.info.url;
const gateway: PublicIdentity = {
  role: 'gateway',
  id: gw.info.gatewayId as EndpointId,
  signPublicKey: gw.info.gatewaySignPublicKey!,
  boxPublicKey: new Uint8Array(32),
};
const [legit, attackerA, attackerB] = roster.families;
const toyId = legit!.toys[0]!.identity;
const mumId = legit!.parents[0]!.identity;
const toy = await connectEndpoint({ url, identity: toyId, gateway });
const mum = await connectEndpoint({ url, identity: mumId, gateway });
const waiting = new Map<string, () => void>();
mum.onInbox((kind, bytes) => {
  if (kind !== 'clip') return;
  const h = decodeClip(bytes).header;
  waiting.get(toHex(h.clipId))?.();
  const r = createReceipt({ recipient: mumId, sender: h.sender, clipId: h.clipId, receivedAt: Date.now() });
  void mum.publishReceipt(r).catch(() => {});
});
let seq = Date.now();
const ogg = new Uint8Array(18_000).fill(7);

/** One clip toy → gateway (verified, durable) → mum; ms from publish to arrival. */
async function roundTrip(): Promise<number> {
  const env = sealClip({
    sender: toyId,
    recipients: [publicPart(mumId)],
    sequence: ++seq,
    createdAt: Date.now(),
    durationMs: 8000,
    ogg,
  });
  const id = toHex(decodeClip(env).header.clipId);
  const t0 = performance.now();
  const arrived = new Promise<void>((res) => waiting.set(id, res));
  await toy.publishClip(env);
  await Promise.race([arrived, new Promise((r) => setTimeout(r, 5000))]);
  waiting.delete(id);
  return performance.now() - t0;
}

async function measure(ms: number): Promise<ReturnType<typeof summarize>> {
  const h = newHistogram();
  const until = performance.now() + ms;
  while (performance.now() < until) {
    recordMs(h, await roundTrip());
    await new Promise((r) => setTimeout(r, ROUND_TRIPS_EVERY_MS));
  }
  return summarize(h);
}

const port = Number(new URL(url).port);
const write = (s: Socket, p: mqttPacket.Packet) => s.write(mqttPacket.generate(p));

/** An authenticated raw connection of `who` (for the floods that need one). */
function rawAuthed(who: (typeof roster.families)[number]['toys'][number]['identity']): Promise<Socket> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1', () => {
      const token = createConnectToken({ identity: who, gatewayId: gateway.id, now: Date.now() });
      write(s, {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        clientId: who.id,
        keepalive: 60,
        username: who.id,
        password: Buffer.from(token.bytes),
      });
      resolve(s);
    });
    s.on('error', () => {});
  });
}

type Flood = { name: string; run: (stop: () => boolean) => Promise<number> };

const floods: Flood[] = [
  {
    name: 'subscribe (30,000 refused filters per SUBSCRIBE)',
    async run(stop) {
      let n = 0;
      // Built once: the generator's own work must not be what slows the legitimate client down.
      const packet = mqttPacket.generate({
        cmd: 'subscribe',
        messageId: 1,
        subscriptions: Array.from({ length: 30_000 }, (_, i) => ({
          topic: `plk/1/x${i}/#`,
          qos: 1 as const,
        })),
      });
      while (!stop()) {
        const s = await rawAuthed(attackerA!.toys[0]!.identity);
        s.write(packet);
        n++;
        await new Promise((r) => setTimeout(r, 100));
        s.destroy();
      }
      return n;
    },
  },
  {
    name: 'PINGREQ (10,000 per connection)',
    async run(stop) {
      let n = 0;
      const ping = mqttPacket.generate({ cmd: 'pingreq' });
      const pings = Buffer.concat(Array.from({ length: 10_000 }, () => ping));
      while (!stop()) {
        const s = await rawAuthed(attackerB!.toys[0]!.identity);
        s.write(pings);
        n++;
        await new Promise((r) => setTimeout(r, 100));
        s.destroy();
      }
      return n;
    },
  },
  {
    name: 'bad CONNECTs (forged tokens, 20 source addresses)',
    async run(stop) {
      let n = 0;
      const stranger = generateIdentity('toy');
      while (!stop()) {
        await Promise.all(
          Array.from({ length: 20 }, (_, i) => {
            return new Promise<void>((res) => {
              const s = netConnect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + i}` }, () => {
                const token = createConnectToken({
                  identity: stranger,
                  gatewayId: gateway.id,
                  now: Date.now(),
                });
                token.bytes[token.bytes.length - 1]! ^= 1;
                write(s, {
                  cmd: 'connect',
                  protocolId: 'MQTT',
                  protocolVersion: 4,
                  clean: true,
                  clientId: toyId.id,
                  keepalive: 60,
                  username: toyId.id,
                  password: Buffer.from(token.bytes),
                });
                n++;
              });
              s.on('error', () => res());
              s.on('close', () => res());
              setTimeout(() => {
                s.destroy();
                res();
              }, 200);
            });
          }),
        );
      }
      return n;
    },
  },
];

process.stderr.write(
  `gateway pid ${gw.pid} on ${url}; ${pinned ? 'gateway on core 0, floods + legit on core 1' : 'taskset unavailable: not pinned'}\n`,
);
await measure(1000); // warm-up
const idle = await measure(PHASE_MS);
const results: {
  flood: string;
  attempts: number;
  p50: number;
  p99: number;
  p50Ratio: number;
  p99Ratio: number;
}[] = [];
for (const f of floods) {
  let stopping = false;
  const running = f.run(() => stopping);
  const during = await measure(PHASE_MS);
  stopping = true;
  const attempts = await running;
  results.push({
    flood: f.name,
    attempts,
    p50: during.p50,
    p99: during.p99,
    p50Ratio: Math.round((during.p50 / idle.p50) * 100) / 100,
    p99Ratio: Math.round((during.p99 / idle.p99) * 100) / 100,
  });
  await measure(1000); // let it settle
}
const counters = await gw.counters();
await Promise.all([toy.close(), mum.close()]).catch(() => {});
await gw.close();

const out = {
  when: new Date().toISOString(),
  pinned,
  phaseMs: PHASE_MS,
  idle: { p50: idle.p50, p99: idle.p99, count: idle.count },
  floods: results,
  gatewayCounters: Object.fromEntries(
    Object.entries(counters ?? {}).filter(
      ([k, v]) => v > 0 && /socket_violations|auth_failures|subscribe_refusals/.test(k),
    ),
  ),
};
process.stdout.write(
  `idle round trip: p50 ${idle.p50.toFixed(1)} ms, p99 ${idle.p99.toFixed(1)} ms (n=${idle.count})\n`,
);
for (const r of results) {
  const ok = r.p99Ratio <= 2 ? 'met' : 'MISSED';
  process.stdout.write(
    `${r.flood}: ${r.attempts} attempts; p50 ${r.p50.toFixed(1)} ms (${r.p50Ratio}×), p99 ${r.p99.toFixed(1)} ms (${r.p99Ratio}×) — target ≤ 2× idle: ${ok}\n`,
  );
}
const dir = join(root, 'bench-results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'floods.json'), `${JSON.stringify(out, null, 2)}\n`);
process.stdout.write(`written ${join(dir, 'floods.json')}\n`);
