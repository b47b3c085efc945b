// The hash-chained audit log in PostgreSQL, one chain for every gateway node, with the same rows, hashes and signed anchors as the SQLite log [PLK-12.2].
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { bytesEqual, toHex } from '../shared/bytes.ts';
import { isEndpointId } from '../shared/identity.ts';
import type { Clock } from '../shared/types.ts';
import {
  type AuditAnchor,
  type AuditSigner,
  type AuditVerifier,
  type AuditVerifyReport,
  anchorBytes,
  canonicalDetail,
  canonicalRow,
  checkAnchors,
  readAnchorFile,
  rowHash,
  SqliteAuditLog,
  sanitizeDetail,
} from './audit.ts';
import type { AuditEvent, AuditLog } from './interfaces.ts';
import { StoreError } from './store/common.ts';

const GENESIS = new Uint8Array(32);
const KIND_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;
/** Held while appending: the chain has one head, whichever node appends. */
const LOCK_AUDIT = 0x504c4b02;
const LOCK_MIGRATE = 0x504c4b00;

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE audit (
     seq bigint PRIMARY KEY,
     at bigint NOT NULL,
     kind text NOT NULL,
     endpoint text,
     detail text NOT NULL,
     prev_hash bytea NOT NULL,
     hash bytea NOT NULL
   );
   CREATE TABLE audit_anchors (
     seq bigint PRIMARY KEY,
     hash bytea NOT NULL,
     at bigint NOT NULL,
     signature bytea
   );
   -- Guards against accidents, not attackers (who can drop them): the hash chain is the real check.
   CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
   BEGIN RAISE EXCEPTION 'audit log is append-only'; END $fn$;
   CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
     FOR EACH ROW EXECUTE FUNCTION audit_append_only();`,
];

export interface PostgresAuditLogOptions {
  readonly url: string;
  /** The gateway's schema (the store's); default `plushlink`. */
  readonly schema?: string;
  readonly signer?: AuditSigner;
  readonly verifier?: AuditVerifier;
  /** Rows between signed anchors (default 1000); the head is also anchored on close. */
  readonly anchorEvery?: number;
  /** Where this node mirrors the newest anchor it wrote (DATA/audit.anchor); none when absent. */
  readonly anchorFile?: string;
  readonly clock?: Clock;
  readonly timeoutMs?: number;
}

interface Pending {
  event: { at: number; kind: string; endpoint: string | null; detail: string };
  resolve: () => void;
  reject: (err: unknown) => void;
}

const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === 20 && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * [PLK-12.2] The audit log every node appends to. Appends queued in one event-loop turn share one
 * transaction, which takes the audit lock, reads the head and chains on it — so rows from several
 * nodes form one chain — and resolves only after its COMMIT. Rows, hashes and anchors are those of
 * SqliteAuditLog (audit.ts), so a backup copies them into an audit.db that verifies as is.
 */
export class PostgresAuditLog implements AuditLog {
  readonly pool: pg.Pool;
  private readonly opts: PostgresAuditLogOptions;
  private readonly anchorEvery: number;
  private readonly clock: Clock;
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private closed = false;
  private myHead: { seq: number; hash: Uint8Array } | undefined;

  private constructor(pool: pg.Pool, opts: PostgresAuditLogOptions) {
    this.pool = pool;
    this.opts = opts;
    this.anchorEvery = opts.anchorEvery ?? 1000;
    if (!Number.isInteger(this.anchorEvery) || this.anchorEvery < 1)
      throw new RangeError('anchorEvery must be a positive integer');
    this.clock = opts.clock ?? Date.now;
  }

  static async open(opts: PostgresAuditLogOptions): Promise<PostgresAuditLog> {
    const schema = opts.schema ?? 'plushlink';
    if (!SCHEMA_RE.test(schema)) throw new TypeError(`schema must match ${SCHEMA_RE}, got ${schema}`);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: 2,
      types: TYPES,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      application_name: 'plushlink-audit',
      options: `-c search_path=${schema} -c synchronous_commit=on`,
    });
    pool.on('error', () => {});
    const log = new PostgresAuditLog(pool, opts);
    const c = await pool.connect().catch(async (err: unknown) => {
      await pool.end();
      throw new StoreError('STORE_UNAVAILABLE', `audit: PostgreSQL is not reachable (${String(err)})`, {
        cause: err,
      });
    });
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1)', [LOCK_MIGRATE]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await c.query('CREATE TABLE IF NOT EXISTS audit_schema_version (version int NOT NULL)');
      const v = (await c.query<{ v: number | null }>('SELECT max(version) AS v FROM audit_schema_version'))
        .rows[0]?.v;
      const current = v ?? 0;
      if (current > MIGRATIONS.length)
        throw new StoreError('STORE_SCHEMA', `audit: schema version ${current} is newer than this code`);
      for (let i = current; i < MIGRATIONS.length; i++) {
        await c.query(MIGRATIONS[i]!);
        await c.query('INSERT INTO audit_schema_version (version) VALUES ($1)', [i + 1]);
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      c.release();
      await pool.end();
      throw err;
    }
    c.release();
    return log;
  }

  /** [PLK-12.2] Appends one event; resolves once the row (and its chain link) is committed. */
  append(event: AuditEvent): Promise<void> {
    if (this.closed) return Promise.reject(new Error('audit log is closed'));
    let row: Pending['event'];
    try {
      row = normalize(event);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ event: row, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          void this.flush();
        });
      }
    });
  }

  /** One transaction for everything queued; one at a time. */
  private flush(): Promise<void> {
    this.flushing ??= (async () => {
      while (this.queue.length > 0) {
        const jobs = this.queue.splice(0, 500);
        let anchor: AuditAnchor | undefined;
        try {
          anchor = await this.tx(async (c) => {
            const head = (
              await c.query<{ seq: number; hash: Buffer }>(
                'SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1',
              )
            ).rows[0];
            let seq = head?.seq ?? 0;
            let prev: Uint8Array = head ? head.hash : GENESIS;
            let a: AuditAnchor | undefined;
            const cols: unknown[][] = [[], [], [], [], [], [], []];
            for (const { event: e } of jobs) {
              seq++;
              const hash = rowHash(prev, canonicalRow(seq, e.at, e.kind, e.endpoint, e.detail));
              for (const [i, v] of [
                seq,
                e.at,
                e.kind,
                e.endpoint,
                e.detail,
                Buffer.from(prev),
                Buffer.from(hash),
              ].entries())
                cols[i]!.push(v);
              prev = hash;
              if (seq % this.anchorEvery === 0) a = await this.writeAnchor(c, seq, hash);
            }
            await c.query(
              `INSERT INTO audit (seq, at, kind, endpoint, detail, prev_hash, hash)
               SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[])`,
              cols,
            );
            this.myHead = { seq, hash: prev };
            return a;
          });
        } catch (err) {
          for (const j of jobs) j.reject(err);
          continue;
        }
        if (anchor) this.mirrorAnchor(anchor);
        for (const j of jobs) j.resolve();
      }
    })().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1)', [LOCK_AUDIT]);
      const r = await fn(c);
      await c.query('COMMIT');
      return r;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }

  private async writeAnchor(c: pg.PoolClient, seq: number, hash: Uint8Array): Promise<AuditAnchor> {
    const at = Math.floor(this.clock());
    const signature = this.opts.signer ? this.opts.signer(anchorBytes(seq, at, hash)) : null;
    // An anchor, once written, is evidence: a later head at the same row number never replaces it.
    await c.query(
      'INSERT INTO audit_anchors (seq, hash, at, signature) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
      [seq, Buffer.from(hash), at, signature ? Buffer.from(signature) : null],
    );
    return { seq, hash: toHex(hash), at, signature: signature ? toHex(signature) : null };
  }

  private mirrorAnchor(anchor: AuditAnchor): void {
    const path = this.opts.anchorFile;
    if (!path) return;
    const current = readAnchorFile(path);
    if (current && current.seq >= anchor.seq) return;
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ plushlink: 'audit-anchor', v: 1, ...anchor })}\n`, {
      mode: 0o600,
    });
    renameSync(tmp, path);
  }

  /** Signs (when a signer is set) and stores the current head; undefined for an empty log. */
  async anchor(): Promise<AuditAnchor | undefined> {
    await this.flush();
    const a = await this.tx(async (c) => {
      const head = (
        await c.query<{ seq: number; hash: Buffer }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1')
      ).rows[0];
      return head ? this.writeAnchor(c, head.seq, head.hash) : undefined;
    });
    if (a) this.mirrorAnchor(a);
    return a;
  }

  /** Recomputes the whole chain (read in pages) and checks it against every stored anchor [PLK-12.2]. */
  async verify(): Promise<AuditVerifyReport> {
    await this.flush();
    const verifier = this.opts.verifier;
    const signaturesChecked = verifier !== undefined;
    let rows = 0;
    const fail = (firstBadRow: number, reason: string): AuditVerifyReport => ({
      ok: false,
      rows,
      firstBadRow,
      reason,
      anchoredSeq: 0,
      signaturesChecked,
    });
    const stored = await this.pool.query<{ seq: number; hash: Buffer; at: number; signature: Buffer | null }>(
      'SELECT seq, hash, at, signature FROM audit_anchors ORDER BY seq',
    );
    const anchors: { a: AuditAnchor; where: string }[] = stored.rows.map((a) => ({
      a: { seq: a.seq, hash: toHex(a.hash), at: a.at, signature: a.signature ? toHex(a.signature) : null },
      where: 'anchor table',
    }));
    const path = this.opts.anchorFile;
    if (path && existsSync(path)) {
      const fileAnchor = readAnchorFile(path);
      if (!fileAnchor) return fail(1, `anchor file ${path} is unreadable`);
      anchors.push({ a: fileAnchor, where: 'anchor file' });
    }
    if (this.myHead) {
      anchors.push({
        a: { seq: this.myHead.seq, hash: toHex(this.myHead.hash), at: 0, signature: null },
        where: 'memory',
      });
    }
    const wanted = new Set(anchors.map(({ a }) => a.seq));
    const hashes = new Map<number, Uint8Array>();
    let prev: Uint8Array = GENESIS;
    let expected = 1;
    for (let after = 0; ; ) {
      const page = await this.pool.query<{
        seq: number;
        at: number;
        kind: string;
        endpoint: string | null;
        detail: string;
        prev_hash: Buffer;
        hash: Buffer;
      }>({
        name: 'plk_audit_page',
        text: 'SELECT * FROM audit WHERE seq > $1 ORDER BY seq LIMIT 5000',
        values: [after],
      });
      if (page.rows.length === 0) break;
      for (const r of page.rows) {
        rows++;
        if (r.seq !== expected) return fail(expected, `row ${expected} is missing (next row is ${r.seq})`);
        if (!bytesEqual(r.prev_hash, prev))
          return fail(r.seq, `row ${r.seq} does not chain to row ${r.seq - 1}`);
        const h = rowHash(prev, canonicalRow(r.seq, r.at, r.kind, r.endpoint, r.detail));
        if (!bytesEqual(h, r.hash)) return fail(r.seq, `row ${r.seq} was modified (hash mismatch)`);
        if (wanted.has(r.seq)) hashes.set(r.seq, h);
        prev = h;
        expected++;
        after = r.seq;
      }
    }
    const last = expected - 1;
    const checked = checkAnchors(anchors, hashes, last, verifier);
    if ('firstBadRow' in checked) return fail(checked.firstBadRow, checked.reason);
    return { ok: true, rows, anchoredSeq: checked.anchoredSeq, signaturesChecked };
  }

  /**
   * Anchors the head, then copies every row up to it and every anchor into a new SQLite audit.db
   * at `path` (SqliteAuditLog's schema, mode 0600, refused if it exists) and the anchor into
   * `anchorPath`: a backup that `plushlink restore` and `audit verify` read like any other.
   */
  async backup(path: string, anchorPath?: string): Promise<void> {
    const anchor = await this.anchor();
    writeFileSync(path, '', { flag: 'wx', mode: 0o600 });
    const copy = new SqliteAuditLog(path, { anchorFile: null });
    try {
      const insRow = copy.db.prepare(
        'INSERT INTO audit (seq, at, kind, endpoint, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)',
      );
      const insAnchor = copy.db.prepare('INSERT INTO anchors (seq, hash, at, signature) VALUES (?, ?, ?, ?)');
      const upTo = anchor?.seq ?? 0;
      for (let after = 0; after < upTo; ) {
        const page = await this.pool.query<{
          seq: number;
          at: number;
          kind: string;
          endpoint: string | null;
          detail: string;
          prev_hash: Buffer;
          hash: Buffer;
        }>('SELECT * FROM audit WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT 5000', [after, upTo]);
        if (page.rows.length === 0) break;
        copy.db.transaction(() => {
          for (const r of page.rows)
            insRow.run(r.seq, r.at, r.kind, r.endpoint, r.detail, r.prev_hash, r.hash);
        })();
        after = page.rows.at(-1)!.seq;
      }
      const anchors = await this.pool.query<{
        seq: number;
        hash: Buffer;
        at: number;
        signature: Buffer | null;
      }>('SELECT seq, hash, at, signature FROM audit_anchors WHERE seq <= $1 ORDER BY seq', [upTo]);
      copy.db.transaction(() => {
        for (const a of anchors.rows) insAnchor.run(a.seq, a.hash, a.at, a.signature);
      })();
    } finally {
      copy.db.close();
    }
    if (anchorPath && anchor) {
      writeFileSync(anchorPath, `${JSON.stringify({ plushlink: 'audit-anchor', v: 1, ...anchor })}\n`, {
        flag: 'wx',
        mode: 0o600,
      });
    }
  }

  /** Loads a SQLite audit.db's rows and anchors into this (empty) log: a restore into PostgreSQL. */
  async loadFrom(source: SqliteAuditLog): Promise<number> {
    return this.tx(async (c) => {
      const n = (await c.query<{ n: number }>('SELECT count(*) AS n FROM audit')).rows[0]?.n ?? 0;
      if (n > 0) throw new StoreError('STORE_SCHEMA', 'audit: the PostgreSQL audit log is not empty');
      let rows = 0;
      const all = source.db.prepare('SELECT * FROM audit ORDER BY seq').all() as {
        seq: number;
        at: number;
        kind: string;
        endpoint: string | null;
        detail: string;
        prev_hash: Buffer;
        hash: Buffer;
      }[];
      for (let i = 0; i < all.length; i += 1000) {
        const part = all.slice(i, i + 1000);
        await c.query(
          `INSERT INTO audit (seq, at, kind, endpoint, detail, prev_hash, hash)
           SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[])`,
          [
            part.map((r) => r.seq),
            part.map((r) => r.at),
            part.map((r) => r.kind),
            part.map((r) => r.endpoint),
            part.map((r) => r.detail),
            part.map((r) => r.prev_hash),
            part.map((r) => r.hash),
          ],
        );
        rows += part.length;
      }
      const anchors = source.db.prepare('SELECT * FROM anchors ORDER BY seq').all() as {
        seq: number;
        hash: Buffer;
        at: number;
        signature: Buffer | null;
      }[];
      for (const a of anchors)
        await c.query('INSERT INTO audit_anchors (seq, hash, at, signature) VALUES ($1, $2, $3, $4)', [
          a.seq,
          a.hash,
          a.at,
          a.signature,
        ]);
      return rows;
    });
  }

  /** Anchors the head this node wrote (signed when a signer is set) and closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    if (this.myHead) await this.anchor().catch(() => undefined);
    this.closed = true;
    await this.pool.end();
  }
}

function normalize(event: AuditEvent): Pending['event'] {
  if (!event || typeof event !== 'object') throw new TypeError('audit event must be an object');
  if (typeof event.kind !== 'string' || !KIND_RE.test(event.kind)) {
    throw new TypeError('audit kind must match [a-z0-9][a-z0-9_.-]{0,63}');
  }
  if (typeof event.at !== 'number' || !Number.isFinite(event.at) || event.at < 0) {
    throw new TypeError('audit event time must be a non-negative number of ms');
  }
  const detail = sanitizeDetail(event.detail);
  let endpoint: string | null = null;
  if (event.endpoint !== undefined) {
    if (isEndpointId(event.endpoint)) endpoint = event.endpoint;
    else detail.endpointInvalid = true; // attacker-supplied usernames are not echoed into the log
  }
  return { at: Math.floor(event.at), kind: event.kind, endpoint, detail: canonicalDetail(detail) };
}

export function openPostgresAuditLog(opts: PostgresAuditLogOptions): Promise<PostgresAuditLog> {
  return PostgresAuditLog.open(opts);
}
