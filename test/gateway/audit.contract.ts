// AuditLog contract: written once, run against the embedded SQLite log (test/gateway/audit.test.ts) and the PostgreSQL one (test/cluster/audit-postgres.test.ts) [PLK-12.2].
import { describe, expect, it } from 'vitest';
import type { AuditLog } from '../../gateway/interfaces.ts';
import { generateIdentity } from '../../shared/identity.ts';
import { seededRandom } from '../../shared/random.ts';

const toy = generateIdentity('toy', seededRandom('audit-contract-toy')).id;

/** One log's home (a data directory, a schema): every `open` is another instance on the same log — a restart, or another node. */
export interface AuditPlace {
  open(): Promise<AuditLog>;
}

export function runAuditLogContract(name: string, newPlace: () => Promise<AuditPlace>): void {
  describe(`AuditLog contract: ${name}`, () => {
    it('an empty log verifies with no rows', async () => {
      const log = await (await newPlace()).open();
      expect(await log.verify()).toMatchObject({ ok: true, rows: 0 });
      await log.close();
    });

    it('every append is there after a restart, and the chain still verifies', async () => {
      const place = await newPlace();
      const log = await place.open();
      for (let i = 1; i <= 7; i++) {
        await log.append({ at: 1000 + i, kind: 'clip.accepted', endpoint: toy, detail: { i, ok: true } });
      }
      expect(await log.verify()).toMatchObject({ ok: true, rows: 7 });
      await log.close();
      const again = await place.open();
      expect(await again.verify()).toMatchObject({ ok: true, rows: 7 });
      await again.append({ at: 2000, kind: 'family.erased', detail: { clips: 3 } });
      expect(await again.verify()).toMatchObject({ ok: true, rows: 8 });
      await again.close();
    });

    it('two instances appending at once (two nodes, two processes) form one chain', async () => {
      const place = await newPlace();
      const [a, b] = [await place.open(), await place.open()];
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          (i % 2 ? a : b).append({ at: 3000 + i, kind: 'auth.refused', detail: { i, node: i % 2 } }),
        ),
      );
      expect(await a.verify()).toMatchObject({ ok: true, rows: 40 });
      expect(await b.verify()).toMatchObject({ ok: true, rows: 40 });
      await a.close();
      await b.close();
    });

    it('refuses a malformed kind or time, and appends nothing for it', async () => {
      const log = await (await newPlace()).open();
      await expect(log.append({ at: 1, kind: 'Bad Kind!' })).rejects.toThrow(TypeError);
      await expect(log.append({ at: -1, kind: 'clip.accepted' })).rejects.toThrow(TypeError);
      await expect(log.append({ at: Number.NaN, kind: 'clip.accepted' })).rejects.toThrow(TypeError);
      expect(await log.verify()).toMatchObject({ ok: true, rows: 0 });
      await log.close();
    });

    it('an endpoint that is not an endpoint id is not echoed into the log, and the row still verifies', async () => {
      const log = await (await newPlace()).open();
      await log.append({
        at: 5,
        kind: 'auth.refused',
        endpoint: 'attacker-chosen/#' as typeof toy,
        detail: { reason: 'unknown', nested: { a: 1 } as unknown as string },
      });
      expect(await log.verify()).toMatchObject({ ok: true, rows: 1 });
      await log.close();
    });
  });
}
