// `plushlink loadtest --gateway URL1,URL2`: the fleet spread over two nodes of one gateway on PostgreSQL and Redis — every toy on another node than its parent, every clip delivered and receipted, none lost.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadtestReport } from '../../scripts/loadtest/types.ts';
import { type Cluster, type Engines, startCluster, startEngines, until } from './cluster.ts';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'plushlink.js');

let engines: Engines;
let cluster: Cluster;
beforeAll(async () => {
  engines = await startEngines();
  cluster = await startCluster(engines, 2);
}, 90_000);
afterAll(async () => {
  await cluster?.close();
  await engines?.destroy();
});

/** Established TCP connections whose local port is `port` (from /proc/net/tcp: state 01). */
function established(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(`:${hex}`) && f[3] === '01') n++;
    }
  }
  return n;
}

describe('plushlink loadtest --gateway URL1,URL2', () => {
  it('spreads toys and parents over both nodes, and every acknowledged clip is delivered', async () => {
    const [a, b] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    const child = spawn(
      process.execPath,
      [
        CLI,
        'loadtest',
        '--gateway',
        `${a.url},${b.url}`,
        '--gateway-identity',
        join(cluster.keyDataDir, 'gateway', 'identity.json'),
        '--gateway-data',
        cluster.keyDataDir,
        '--gateway-postgres',
        engines.pg.url,
        '--gateway-pg-schema',
        cluster.schema,
        '--toys',
        '12',
        '--toys-per-family',
        '2',
        '--clip-rate',
        '20',
        '--clip-seconds',
        '1',
        '--duration',
        '3s',
        '--workers',
        '1',
        '--no-progress',
        '--json',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let done = false;
    void exited.then(() => {
      done = true;
    });
    // While it runs, both nodes hold connections of the fleet (checked, not assumed).
    const seen = { a: 0, b: 0 };
    await until(
      'both nodes serve part of the fleet',
      () => {
        seen.a = Math.max(seen.a, established(a.port));
        seen.b = Math.max(seen.b, established(b.port));
        return (seen.a > 0 && seen.b > 0) || done;
      },
      60_000,
    );
    const code = await exited;
    expect(err).not.toMatch(/Error|error:/);
    expect(code, err).toBe(0);
    expect(seen.a).toBeGreaterThan(0);
    expect(seen.b).toBeGreaterThan(0);
    const report = JSON.parse(out) as LoadtestReport;
    expect(report.result?.status).toBe('passed');
    // The report and the log name every node, not only the first.
    expect(report.run.target.url).toBe(`${a.url},${b.url}`);
    expect(err).toContain(`toys to ${a.url} ${b.url}`);
    const t = report.run.totals;
    expect(t.clipsAcked).toBeGreaterThan(0);
    expect(t.lost).toBe(0);
    expect(t.clipsDelivered).toBeGreaterThanOrEqual(t.clipsAcked);
    await until('every delivery receipted', async () => (await cluster.admin.store.backlog()) === 0);
  });
});
