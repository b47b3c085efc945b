// Store micro-benchmark: durable acceptClip/s with 25 kB envelopes, and bulk provisioning. Run: npm run bench:store
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { provisionMany } from '../../gateway/admin.ts';
import { openSqliteAuditLog } from '../../gateway/audit.ts';
import type { NewEndpoint } from '../../gateway/interfaces.ts';
import { openSqliteStore } from '../../gateway/store/sqlite.ts';
import { toHex } from '../../shared/bytes.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import type { EndpointId } from '../../shared/types.ts';

const ENVELOPE_BYTES = 25_000;
const rnd = seededRandom('store-bench');

async function run(label: string, total: number, inFlight: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'plushlink-bench-'));
  const store = openSqliteStore(dir);
  try {
    const senders: NewEndpoint[] = [];
    for (let i = 0; i < 200; i++) {
      const id = generateIdentity(i % 4 === 0 ? 'parent' : 'toy', rnd);
      senders.push({
        id: id.id,
        role: id.role === 'toy' ? 'toy' : 'parent',
        signPublicKey: id.signPublicKey,
        boxPublicKey: id.boxPublicKey,
        createdAt: 1,
      });
    }
    await store.addEndpoints(senders);
    const recipients = senders.slice(0, 3).map((s) => s.id);
    const envelope = rnd(ENVELOPE_BYTES);
    const seq = new Map<EndpointId, number>();
    let next = 0;
    const one = async (): Promise<void> => {
      while (next < total) {
        const i = next++;
        const sender = senders[i % senders.length]!.id;
        const s = (seq.get(sender) ?? 0) + 1;
        seq.set(sender, s);
        const r = await store.acceptClip(
          { sender, clipId: toHex(rnd(16)), sequence: s, createdAt: i, receivedAt: i, envelope },
          recipients,
        );
        if (!r.ok) throw new Error(`refused: ${r.reason}`);
      }
    };
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await Promise.all(Array.from({ length: inFlight }, one));
    const rate = (total / (performance.now() - t0)) * 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuUs = Math.round((cpu.user + cpu.system) / total);
    process.stdout.write(
      `${label}: ${Math.round(rate)} acceptClip/s (${total} clips, ${inFlight} in flight, 25 kB, synchronous=FULL; ${cpuUs} us CPU/clip)\n`,
    );
    return rate;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await run('sequential (await each)', 500, 1);
await run('concurrent (group commit)', 10_000, 256);

{
  const dir = mkdtempSync(join(tmpdir(), 'plushlink-bench-'));
  const store = openSqliteStore(dir);
  const audit = openSqliteAuditLog(dir);
  const t0 = performance.now();
  await provisionMany(store, audit, 'toy', 10_000, seededRandom('fleet'));
  const ms = performance.now() - t0;
  process.stdout.write(
    `provisionMany: 10,000 endpoints in ${Math.round(ms)} ms (${Math.round(10_000_000 / ms)}/s)\n`,
  );
  await audit.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
