// The PostgreSQL audit log against the same contract as the SQLite one (a throwaway PostgreSQL), plus its append-only trigger [PLK-12.2].
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayAuditKeys } from '../../gateway/audit.ts';
import { openPostgresAuditLog, type PostgresAuditLog } from '../../gateway/audit-postgres.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';
import { runAuditLogContract } from '../gateway/audit.contract.ts';
import { type PostgresEngine, startPostgres } from '../helpers/engines.ts';

const keys = gatewayAuditKeys(generateIdentity('gateway', seededRandom('audit-pg-gateway')));
let engine: PostgresEngine;
let schemas = 0;
const opened: PostgresAuditLog[] = [];

beforeAll(async () => {
  engine = await startPostgres();
}, 60_000);
afterAll(async () => {
  for (const l of opened) await l.close().catch(() => {});
  await engine?.destroy();
});

/** A log on a schema of its own; each `open` is another node's connection pool on it. */
function place(schema = `a${++schemas}`) {
  return {
    schema,
    open: async () => {
      const log = await openPostgresAuditLog({ url: engine.url, schema, ...keys });
      opened.push(log);
      return log;
    },
  };
}

runAuditLogContract('PostgresAuditLog', async () => place());

describe('PostgresAuditLog specifics', () => {
  it('rows cannot be updated or deleted through SQL (the trigger), and verify still finds the chain intact', async () => {
    const p = place();
    const log = await p.open();
    await log.append({ at: 1, kind: 'clip.accepted', detail: { i: 1 } });
    await expect(log.pool.query(`UPDATE ${p.schema}.audit SET kind = 'x'`)).rejects.toThrow();
    await expect(log.pool.query(`DELETE FROM ${p.schema}.audit`)).rejects.toThrow();
    expect(await log.verify()).toMatchObject({ ok: true, rows: 1 });
  });
});
