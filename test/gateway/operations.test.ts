// Operations conventions on a real `plushlink gateway`: /healthz, /readyz, process_*/nodejs_* metrics and the ingest latency histogram on the metrics port.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEndpoint } from '../../device/transport/mqtt-connect.ts';
import { openAdmin, registerFamilies } from '../../gateway/admin.ts';
import { serveMetrics } from '../../gateway/metrics.ts';
import { readIdentity } from '../../platform/keyfiles.ts';
import { sealClip } from '../../shared/envelope.ts';
import { generateIdentity, publicPart } from '../../shared/identity.ts';
import { clipTopic } from '../../shared/topics.ts';
import { fakeOggOpus } from '../protocol/fake-ogg.ts';

const BIN = fileURLToPath(new URL('../../bin/plushlink.js', import.meta.url));

interface Reply {
  status: number;
  type: string;
  body: string;
}

function http(url: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

let dir = '';
let child: ChildProcessWithoutNullStreams;
let stderr = '';
let listening: { port: number; metrics: string; identity: string };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plushlink-ops-'));
  child = spawn(
    process.execPath,
    [BIN, 'gateway', '--data', join(dir, 'data'), '--port', '0', '--metrics-port', '0'],
    { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`gateway exited (${code}): ${stderr}`)));
  });
  const m = /port=(\d+) .* identity=(\S+) \(new\) metrics=(http:\S+)\/metrics$/.exec(line);
  if (!m) throw new Error(`unexpected listening line: ${line}`);
  listening = { port: Number(m[1]), identity: m[2]!, metrics: m[3]! };
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGINT');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('plushlink gateway --metrics-port', () => {
  it('says that a first start created a new data directory', async () => {
    // pino writes stderr asynchronously: the line may follow the listening line on stdout.
    await new Promise<void>((resolve) => {
      const seen = () =>
        stderr
          .split('\n')
          .slice(0, -1)
          .some((l) => l.includes('"datadir.created"'));
      if (seen()) return resolve();
      const check = () => {
        if (!seen()) return;
        child.stderr.off('data', check);
        resolve();
      };
      child.stderr.on('data', check);
    });
    const events = stderr
      .split('\n')
      .slice(0, -1) // complete lines only
      .map((l) => JSON.parse(l) as { event?: string; msg?: string });
    const created = events.find((e) => e.event === 'datadir.created');
    expect(created?.msg).toMatch(/^first start: new data directory .*data with a new gateway identity/);
  });

  it('serves /healthz (process up) and /readyz (broker listening, store answering)', async () => {
    const [health, ready, head, missing, post] = await Promise.all([
      http(`${listening.metrics}/healthz`),
      http(`${listening.metrics}/readyz`),
      http(`${listening.metrics}/readyz`, 'HEAD'),
      http(`${listening.metrics}/nope`),
      http(`${listening.metrics}/readyz`, 'POST'),
    ]);
    expect(health).toMatchObject({ status: 200, body: 'ok\n' });
    expect(ready.status).toBe(200);
    expect(ready.type).toBe('application/json');
    const r = JSON.parse(ready.body) as { ready: boolean; checks: Record<string, string> };
    expect(r.ready).toBe(true);
    expect(r.checks.broker).toBe(`listening on port ${listening.port}`);
    expect(r.checks.store).toMatch(/^answering \(\d+\.\d ms\)$/);
    expect(head).toMatchObject({ status: 200, body: '' });
    expect(missing.status).toBe(404);
    expect(post.status).toBe(405);
  });

  it('exports process_* and nodejs_* defaults and the ingest latency of an accepted clip', async () => {
    // A family registered beside the running gateway, as `plushlink provision` does.
    const toy = generateIdentity('toy');
    const mum = generateIdentity('parent');
    const admin = await openAdmin(join(dir, 'data'), { gatewayKey: join(dir, 'data', 'gateway') });
    await registerFamilies(admin.store, admin.audit, [{ members: [publicPart(toy), publicPart(mum)] }]);
    await admin.close();

    const before = await http(`${listening.metrics}/metrics`);
    expect(before.body).toMatch(/^plushlink_gateway_ingest_latency_seconds_count 0$/m);

    const conn = await connectEndpoint({
      url: `mqtt://127.0.0.1:${listening.port}`,
      identity: toy,
      gateway: await readIdentity(listening.identity),
    });
    try {
      const envelope = sealClip({
        sender: toy,
        recipients: [publicPart(mum)],
        sequence: 1,
        createdAt: Date.now(),
        durationMs: 1000,
        ogg: fakeOggOpus({ durationMs: 1000 }),
      });
      await conn.client.publishAsync(clipTopic(toy.id), Buffer.from(envelope), { qos: 1 }); // resolves on PUBACK
    } finally {
      conn.client.end(true);
    }

    const after = await http(`${listening.metrics}/metrics`);
    expect(after.status).toBe(200);
    const text = after.body;
    expect(text).toMatch(/^plushlink_gateway_clips_accepted_total 1$/m);
    expect(text).toMatch(/^# TYPE plushlink_gateway_ingest_latency_seconds histogram$/m);
    expect(text).toMatch(/^plushlink_gateway_ingest_latency_seconds_count 1$/m);
    expect(text).toMatch(/^plushlink_gateway_ingest_latency_seconds_bucket\{le="\+Inf"\} 1$/m);
    const sum = Number(/^plushlink_gateway_ingest_latency_seconds_sum (\S+)$/m.exec(text)?.[1]);
    expect(sum).toBeGreaterThan(0);
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'process_open_fds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(text).toMatch(new RegExp(`^${name} \\S+$`, 'm'));
    }
  });
});

describe('docs/OPERATIONS.md and docs/grafana-dashboard.json', () => {
  const docs = (name: string) =>
    readFileSync(fileURLToPath(new URL(`../../docs/${name}`, import.meta.url)), 'utf8');
  const NAME = /\b(?:plushlink_gateway|process|nodejs)_[a-z0-9_]+/g;
  /** A histogram's series name → the metric's name. */
  const metricOf = (series: string, histograms: Set<string>) => {
    const base = series.replace(/_(bucket|sum|count)$/, '');
    return histograms.has(base) ? base : series;
  };

  it('use only metric names the running gateway exports, and document every gateway metric', async () => {
    const text = (await http(`${listening.metrics}/metrics`)).body;
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)];
    const exported = new Set(types.map((m) => m[1]!));
    const histograms = new Set(types.filter((m) => m[2] === 'histogram').map((m) => m[1]!));

    interface Panel {
      id: number;
      type: string;
      title: string;
      gridPos: { x: number; y: number; w: number; h: number };
      targets?: { expr: string; refId: string }[];
    }
    const dashboard = JSON.parse(docs('grafana-dashboard.json')) as {
      uid: string;
      title: string;
      schemaVersion: number;
      panels: Panel[];
      templating: { list: { name: string }[] };
    };
    expect(dashboard.uid).toBe('plushlink-gateway');
    expect(typeof dashboard.schemaVersion).toBe('number');
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'instance']);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const exprs: string[] = [];
    for (const p of dashboard.panels) {
      expect(p.title).not.toBe('');
      expect(p.gridPos.w).toBeGreaterThan(0);
      if (p.type === 'row') continue;
      expect(['timeseries', 'stat']).toContain(p.type);
      expect(p.targets?.length).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.refId).toMatch(/^[A-Z]$/);
        exprs.push(t.expr);
      }
    }
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(NAME)].map((m) => metricOf(m[0], histograms))));
    expect([...used].filter((n) => !exported.has(n))).toEqual([]);
    // The panels the runbook promises.
    const all = exprs.join('\n');
    for (const q of [
      'plushlink_gateway_connections',
      'sum by (reason) (rate(plushlink_gateway_clips_refused_total',
      'sum(rate(plushlink_gateway_clips_accepted_total',
      'histogram_quantile(0.5, sum by (le) (rate(plushlink_gateway_ingest_latency_seconds_bucket',
      'histogram_quantile(0.99, sum by (le) (rate(plushlink_gateway_ingest_latency_seconds_bucket',
      'sum by (reason) (rate(plushlink_gateway_auth_failures_total',
      'plushlink_gateway_store_latency_seconds_bucket',
      'plushlink_gateway_delivery_backlog',
      'rate(process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
    ]) {
      expect(all).toContain(q);
    }

    const runbook = docs('OPERATIONS.md');
    const documented = new Set([...runbook.matchAll(NAME)].map((m) => metricOf(m[0], histograms)));
    expect([...documented].filter((n) => !exported.has(n))).toEqual([]);
    expect([...exported].filter((n) => n.startsWith('plushlink_gateway_') && !documented.has(n))).toEqual([]);
    expect(runbook).toMatch(/job_name: plushlink-gateway/);
  });
});

describe('serveMetrics readiness', () => {
  it('answers 503 with the failing part when a check says not ready, throws or never answers', async () => {
    const servers = await Promise.all([
      serveMetrics(new Registry(), {
        port: 0,
        ready: async () => ({ ready: false, checks: { broker: 'shutting down', store: 'answering' } }),
      }),
      serveMetrics(new Registry(), {
        port: 0,
        ready: async () => {
          throw new Error('SQLITE_BUSY: database is locked\nmore');
        },
      }),
      serveMetrics(new Registry(), { port: 0, ready: () => new Promise(() => undefined), readyTimeoutMs: 1 }),
      serveMetrics(new Registry(), { port: 0 }),
    ]);
    try {
      const replies = await Promise.all(
        servers.map((s) => http(`http://127.0.0.1:${s.address.port}/readyz`)),
      );
      expect(replies.map((r) => r.status)).toEqual([503, 503, 503, 200]);
      expect(replies.map((r) => JSON.parse(r.body))).toEqual([
        { ready: false, checks: { broker: 'shutting down', store: 'answering' } },
        { ready: false, checks: { check: 'failed: SQLITE_BUSY: database is locked' } },
        { ready: false, checks: { check: 'no answer within 1 ms' } },
        { ready: true, checks: { process: 'up' } },
      ]);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});
