// Attack: a connect token captured on the wire is replayed after the gateway restarts (SIGTERM or SIGKILL) — refused, the nonce is durable [PLK-3.5].
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConnectRefusedError, connectEndpoint } from '../../device/transport/mqtt-connect.ts';
import { addFamilyMember, createFamily, openAdmin } from '../../gateway/admin.ts';
import { writeKeyDir } from '../../platform/keyfiles.ts';
import { generateIdentity, type PrivateIdentity, publicPart } from '../../shared/identity.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** `plushlink gateway` (the compiled CLI) on `dir`, port 0; resolves with its port once it listens. */
function startGateway(dir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    ['bin/plushlink.js', 'gateway', '--data', dir, '--port', '0', '--log-level', 'warn'],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const t = setTimeout(() => reject(new Error(`gateway did not start: ${err}`)), 25_000);
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /port=(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`gateway exited with ${code}: ${err}`));
    });
  });
}

const stopped = (child: ChildProcess): Promise<void> =>
  new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));

describe('attack: connect-token replay after a gateway restart', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  async function setUp(): Promise<{
    dir: string;
    toy: PrivateIdentity;
    gateway: ReturnType<typeof publicPart>;
  }> {
    const dir = await mkdtemp(join(tmpdir(), 'plk-replay-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const gwId = generateIdentity('gateway');
    await writeKeyDir(join(dir, 'gateway'), gwId);
    const toy = generateIdentity('toy');
    const mum = generateIdentity('parent');
    const admin = await openAdmin(dir, { create: true, gatewayKey: join(dir, 'gateway') });
    const fam = await createFamily(admin.store, admin.audit);
    for (const e of [toy, mum]) {
      await admin.store.addEndpoint({
        id: e.id,
        role: e.role === 'toy' ? 'toy' : 'parent',
        signPublicKey: e.signPublicKey,
        boxPublicKey: e.boxPublicKey,
        createdAt: Date.now(),
      });
      await addFamilyMember(admin.store, admin.audit, fam, e.id);
    }
    await admin.close();
    return { dir, toy, gateway: publicPart(gwId) };
  }

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`a token captured before a ${signal} is refused after the restart (CONNACK 4, replay); a fresh one works`, async () => {
      const { dir, toy, gateway } = await setUp();
      const first = await startGateway(dir);
      cleanup.push(() => void first.child.kill('SIGKILL'));
      let captured: Uint8Array | undefined;
      const conn = await connectEndpoint({
        url: `mqtt://127.0.0.1:${first.port}`,
        identity: toy,
        gateway,
        onToken: (t) => (captured = t),
      });
      expect(captured).toBeDefined();
      await conn.close();
      first.child.kill(signal);
      await stopped(first.child);

      const second = await startGateway(dir);
      cleanup.push(() => void second.child.kill('SIGKILL'));
      const url = `mqtt://127.0.0.1:${second.port}`;
      // The attacker replays the captured bytes, still well within the ±60 s token window.
      const replay = connectEndpoint({
        url,
        identity: toy,
        gateway,
        ...(captured ? { token: captured } : {}),
      });
      await expect(replay).rejects.toBeInstanceOf(ConnectRefusedError);
      await replay.catch((err: unknown) => expect((err as ConnectRefusedError).returnCode).toBe(4));
      // The real toy, with a fresh token, is served as usual.
      const again = await connectEndpoint({ url, identity: toy, gateway });
      expect(again.proof.endpointId).toBe(toy.id);
      await again.close();
      second.child.kill('SIGTERM');
      await stopped(second.child);
      // The refusal is on the record, with its reason.
      const admin = await openAdmin(dir, { gatewayKey: join(dir, 'gateway') });
      const rows = admin.audit.db.prepare("SELECT detail FROM audit WHERE kind = 'auth.refused'").all() as {
        detail: string;
      }[];
      await admin.close();
      expect(rows.map((r) => (JSON.parse(r.detail) as { reason?: string }).reason)).toContain('replay');
    }, 60_000);
  }
});
