// Catalog sync: shared/errors.ts ⇄ PROTOCOL.md §10, the gateway's refusal reasons ⇄ §12.6, and every [PLK-n.m] cited in code exists in the document.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AUTH_REASONS } from '../../gateway/auth.ts';
import { INGEST_REASONS } from '../../gateway/ingest.ts';
import { SOCKET_VIOLATIONS } from '../../gateway/packet-limit.ts';
import { SUBSCRIBE_REASONS } from '../../gateway/subscribe.ts';
import { ERROR_CATALOG, type ErrorCode } from '../../shared/errors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOC_PATH = join(ROOT, 'docs', 'PROTOCOL.md');
const doc = readFileSync(DOC_PATH, 'utf8');
const CODE_DIRS = ['shared', 'platform', 'device', 'gateway', 'sim', 'scripts'];

/** Rows of the §10 catalog table: | `PLK_E_X` | PLK-n.m | meaning |. */
function catalogRows(text: string): Map<string, { clause: string; meaning: string }> {
  const rows = new Map<string, { clause: string; meaning: string }>();
  for (const m of text.matchAll(/^\|\s*`(PLK_E_[A-Z0-9_]+)`\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|/gm)) {
    rows.set(m[1]!, { clause: m[2]!.replace(/^\[|\]$/g, ''), meaning: m[3]! });
  }
  return rows;
}

/** Clause numbers that exist as headings (`## PLK-5`, `### PLK-5.1 ...`) or explicit anchors. */
function docClauses(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/^#{1,6}\s+PLK-(\d+(?:\.\d+)?)\b/gm)) out.add(m[1]!);
  for (const m of text.matchAll(/<a\s+(?:id|name)="PLK-(\d+(?:\.\d+)?)"/g)) out.add(m[1]!);
  return out;
}

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|js|mjs|c|py)$/.test(name)) out.push(path);
  }
  return out;
}

/** Every clause cited as [PLK-n.m], [PLK-n], [PLK-3.3..3.5] or [PLK-4.2, PLK-4.3] in code. */
function citedClauses(): Map<string, string[]> {
  const cited = new Map<string, string[]>();
  for (const dir of CODE_DIRS) {
    for (const file of sourceFiles(join(ROOT, dir))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/\[(PLK-[0-9][^\]]*)\]/g)) {
        for (const n of m[1]!.matchAll(/(?:PLK-|\.\.)(\d+(?:\.\d+)?)/g)) {
          const where = cited.get(n[1]!) ?? [];
          where.push(relative(ROOT, file));
          cited.set(n[1]!, where);
        }
      }
    }
  }
  return cited;
}

describe('docs/PROTOCOL.md error catalog', () => {
  const rows = catalogRows(doc);
  const clauses = docClauses(doc);

  it('lists every code of shared/errors.ts with the same clause and meaning', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOG)) {
      const row = rows.get(code);
      expect(row, `${code} is missing from the catalog table`).toBeDefined();
      expect(row?.clause, `${code} clause`).toBe(entry.clause);
      expect(row?.meaning, `${code} meaning`).toBe(entry.message);
    }
  });

  it('mentions no PLK_E_* code that shared/errors.ts lacks', () => {
    const mentioned = new Set([...doc.matchAll(/PLK_E_[A-Z0-9_]+/g)].map((m) => m[0]));
    const unknown = [...mentioned].filter((c) => !(c in ERROR_CATALOG));
    expect(unknown).toEqual([]);
    expect(rows.size).toBe(Object.keys(ERROR_CATALOG).length);
  });

  it('every clause named by the catalog exists as a heading', () => {
    for (const code of Object.keys(ERROR_CATALOG) as ErrorCode[]) {
      const clause = ERROR_CATALOG[code].clause.replace(/^PLK-/, '');
      expect(clauses.has(clause), `${code} → PLK-${clause}`).toBe(true);
    }
  });

  it('every [PLK-n.m] cited in shared/, device/, gateway/ and scripts/ exists in the document', () => {
    const cited = citedClauses();
    expect(cited.size).toBeGreaterThan(10);
    const missing = [...cited.entries()]
      .filter(([clause]) => !clauses.has(clause))
      .map(([clause, files]) => `PLK-${clause} (cited in ${[...new Set(files)].join(', ')})`);
    expect(missing).toEqual([]);
  });
});

describe('catalog shape', () => {
  it('codes are PLK_E_*, clauses PLK-n[.m], messages non-empty and lowercase-first', () => {
    for (const [code, entry] of Object.entries(ERROR_CATALOG)) {
      expect(code).toMatch(/^PLK_E_[A-Z0-9_]+$/);
      expect(entry.clause).toMatch(/^PLK-\d+(\.\d+)?$/);
      expect(entry.message).toMatch(/^[a-z]/);
    }
  });
});

/** Rows of the §12.6 table whose header's first cell is `first`: reason → remaining cells. */
function reasonTable(text: string, first: string): Map<string, string[]> {
  const start = text.indexOf(`| ${first} |`);
  expect(start, `no "${first}" table in PROTOCOL.md`).toBeGreaterThan(-1);
  const rows = new Map<string, string[]>();
  for (const line of text.slice(start).split('\n').slice(2)) {
    const m = /^\|\s*`([a-z-]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (!m) break;
    rows.set(
      m[1]!,
      m[2]!.split('|').map((c) => c.trim()),
    );
  }
  return rows;
}

describe('docs/PROTOCOL.md refusal reasons [PLK-12.6]', () => {
  const clause = doc.slice(doc.indexOf('### PLK-12.6'));

  it('lists every connect refusal with its CONNACK code and meaning, and no other', () => {
    const rows = reasonTable(clause, 'connect reason');
    expect([...rows.keys()].sort()).toEqual(Object.keys(AUTH_REASONS).sort());
    for (const [reason, r] of Object.entries(AUTH_REASONS)) {
      expect(rows.get(reason), reason).toEqual([String(r.connack), r.meaning]);
    }
  });

  it('lists every publish refusal in check order with its meaning, and no other', () => {
    const rows = reasonTable(clause, 'publish reason');
    expect([...rows.keys()]).toEqual(Object.keys(INGEST_REASONS));
    for (const [reason, meaning] of Object.entries(INGEST_REASONS))
      expect(rows.get(reason)).toEqual([meaning]);
  });

  it('lists every subscribe refusal and socket violation', () => {
    for (const [first, table] of [
      ['subscribe reason', SUBSCRIBE_REASONS],
      ['socket violation', SOCKET_VIOLATIONS],
    ] as const) {
      const rows = reasonTable(clause, first);
      expect([...rows.keys()].sort(), first).toEqual(Object.keys(table).sort());
      for (const [reason, meaning] of Object.entries(table))
        expect(rows.get(reason), reason).toEqual([meaning]);
    }
  });
});
