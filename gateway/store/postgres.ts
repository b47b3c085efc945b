// Shared gateway store on PostgreSQL (pg): the SqliteStore's semantics for several gateway nodes — group commit, one COMMIT per batch, PUBACK only after it [PLK-12].
import { closeSync, openSync } from 'node:fs';
import type Database from 'better-sqlite3';
import pg from 'pg';
import type { EndpointId } from '../../shared/types.ts';
import type {
  AcceptOptions,
  AcceptResult,
  ClipRecord,
  DeliveryMark,
  EndpointRecord,
  EndpointRole,
  FamilyId,
  GatewayStore,
  NewEndpoint,
  PendingDelivery,
  RegistryChange,
  StoredNonce,
} from '../interfaces.ts';
import {
  checkClip,
  checkClipId,
  checkEndpointId,
  checkLimit,
  checkNewEndpoint,
  checkNonceKey,
  checkTime,
  parseFamilyId,
  StoreError,
} from './common.ts';
import { migrateDatabase, openDatabase, MIGRATIONS as SQLITE_MIGRATIONS } from './sqlite.ts';

/**
 * Schema migrations, in order, each in one transaction under an advisory lock (several nodes may
 * start at once). As in SQLite: no name, e-mail or birthday column anywhere — random ids, public
 * keys, times and ciphertext only [PLK-12.1].
 *
 * `plk_apply` is the hot path: one call applies a whole group-commit batch of clip acceptances,
 * receipts, set-asides and nonce claims, in order, as ONE autocommit statement — one round trip,
 * one COMMIT, one WAL flush for the batch. It first takes a transaction-scoped advisory lock per
 * clip sender, in ascending order: every write to a sender's clips, deliveries, accepted ids and
 * sequence number happens under that sender's lock, so batches of different nodes serialize per
 * sender and can never deadlock on one another (they all lock in the same order).
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE families (
     id text PRIMARY KEY,
     created_at bigint NOT NULL
   );
   CREATE TABLE endpoints (
     id text PRIMARY KEY,
     role text NOT NULL CHECK (role IN ('toy', 'parent')),
     sign_pk bytea NOT NULL CHECK (length(sign_pk) = 32),
     box_pk bytea NOT NULL CHECK (length(box_pk) = 32),
     family_id text REFERENCES families(id),
     revoked boolean NOT NULL DEFAULT false,
     created_at bigint NOT NULL
   );
   CREATE INDEX endpoints_family ON endpoints (family_id);
   CREATE TABLE clips (
     sender text NOT NULL,
     clip_id text NOT NULL,
     sequence bigint NOT NULL,
     created_at bigint NOT NULL,
     received_at bigint NOT NULL,
     envelope bytea NOT NULL,
     PRIMARY KEY (sender, clip_id)
   );
   CREATE INDEX clips_received ON clips (received_at);
   CREATE TABLE deliveries (
     id bigserial PRIMARY KEY,
     recipient text NOT NULL,
     sender text NOT NULL,
     clip_id text NOT NULL,
     delivered_at bigint,
     UNIQUE (sender, clip_id, recipient),
     FOREIGN KEY (sender, clip_id) REFERENCES clips (sender, clip_id) ON DELETE CASCADE
   );
   CREATE INDEX deliveries_pending ON deliveries (recipient, id) WHERE delivered_at IS NULL;
   CREATE INDEX deliveries_recipient ON deliveries (recipient);
   CREATE TABLE sequences (
     sender text PRIMARY KEY,
     last_seq bigint NOT NULL
   );
   CREATE TABLE accepted (
     sender text NOT NULL,
     clip_id text NOT NULL,
     sequence bigint NOT NULL,
     received_at bigint NOT NULL,
     PRIMARY KEY (sender, clip_id)
   );
   CREATE INDEX accepted_received ON accepted (received_at);
   CREATE TABLE meta (
     key text PRIMARY KEY,
     value text NOT NULL
   );
   CREATE TABLE nonces (
     key text PRIMARY KEY,
     endpoint text NOT NULL,
     expires_at bigint NOT NULL
   );
   CREATE INDEX nonces_expires ON nonces (expires_at);
   CREATE INDEX nonces_endpoint ON nonces (endpoint);
   CREATE TABLE tombstones (
     id text PRIMARY KEY
   );
   CREATE TABLE registry_changes (
     seq bigserial PRIMARY KEY,
     kind text NOT NULL CHECK (kind IN ('revoked', 'erased', 'member-added')),
     endpoint text NOT NULL,
     family text,
     at bigint NOT NULL
   );
   CREATE INDEX registry_changes_family ON registry_changes (family) WHERE family IS NOT NULL;
   CREATE FUNCTION plk_apply(
     ops text[], s1 text[], s2 text[], s3 text[], n1 bigint[], n2 bigint[], n3 bigint[],
     recips text[], nrecips int[], envs bytea[], locks bigint[]
   ) RETURNS text[] LANGUAGE plpgsql AS $fn$
   DECLARE
     res text[] := '{}';
     i int;
     ri int := 1;
     ei int := 1;
     k bigint;
     seen bigint;
     last bigint;
     n int;
   BEGIN
     FOREACH k IN ARRAY locks LOOP
       PERFORM pg_advisory_xact_lock(k);
     END LOOP;
     FOR i IN 1 .. coalesce(array_length(ops, 1), 0) LOOP
       IF ops[i] = 'a' THEN
         -- [PLK-8.2] a resend of an accepted clip is acknowledged again, never stored twice.
         SELECT sequence INTO seen FROM accepted WHERE sender = s1[i] AND clip_id = s2[i];
         IF FOUND THEN
           res := res || (CASE WHEN seen = n1[i] THEN 'retransmit' ELSE 'duplicate' END);
         ELSE
           -- [PLK-8.1] strictly increasing per sender, checked and advanced in this same commit.
           SELECT last_seq INTO last FROM sequences WHERE sender = s1[i];
           IF n1[i] <= coalesce(last, 0) THEN
             res := res || 'replay'::text;
           ELSE
             INSERT INTO clips (sender, clip_id, sequence, created_at, received_at, envelope)
               VALUES (s1[i], s2[i], n1[i], n2[i], n3[i], envs[ei]);
             INSERT INTO deliveries (recipient, sender, clip_id)
               SELECT r, s1[i], s2[i]
               FROM unnest(recips[ri : ri + nrecips[i] - 1]) WITH ORDINALITY AS t(r, o) ORDER BY o;
             INSERT INTO accepted (sender, clip_id, sequence, received_at)
               VALUES (s1[i], s2[i], n1[i], n3[i]);
             INSERT INTO sequences (sender, last_seq) VALUES (s1[i], n1[i])
               ON CONFLICT (sender) DO UPDATE SET last_seq = EXCLUDED.last_seq;
             res := res || 'ok'::text;
           END IF;
         END IF;
         ri := ri + nrecips[i];
         ei := ei + 1;
       ELSIF ops[i] = 'd' OR ops[i] = 's' THEN
         -- s1 recipient, s2 sender, s3 clip id, n1 time [PLK-6.2] [PLK-12.4]
         UPDATE deliveries SET delivered_at = n1[i]
           WHERE recipient = s1[i] AND sender = s2[i] AND clip_id = s3[i] AND delivered_at IS NULL;
         GET DIAGNOSTICS n = ROW_COUNT;
         IF n > 0 THEN
           -- [PLK-12.5] the last receipt deletes the clip; its delivery rows cascade.
           IF NOT EXISTS (SELECT 1 FROM deliveries
                          WHERE sender = s2[i] AND clip_id = s3[i] AND delivered_at IS NULL) THEN
             DELETE FROM clips WHERE sender = s2[i] AND clip_id = s3[i];
           END IF;
           res := res || (CASE WHEN ops[i] = 'd' THEN 'delivered' ELSE 'true' END);
         ELSIF ops[i] = 's' THEN
           res := res || 'false'::text;
         ELSIF EXISTS (SELECT 1 FROM deliveries WHERE recipient = s1[i] AND sender = s2[i] AND clip_id = s3[i]) THEN
           res := res || 'already'::text;
         ELSIF EXISTS (SELECT 1 FROM clips WHERE sender = s2[i] AND clip_id = s3[i]) THEN
           res := res || 'unknown'::text;
         ELSIF EXISTS (SELECT 1 FROM accepted WHERE sender = s2[i] AND clip_id = s3[i]) THEN
           res := res || 'already'::text;
         ELSE
           res := res || 'unknown'::text;
         END IF;
       ELSIF ops[i] = 'n' THEN
         -- [PLK-3.5] s1 key, s2 endpoint, n1 expiry, n2 now: fresh unless an unexpired copy exists.
         INSERT INTO nonces (key, endpoint, expires_at) VALUES (s1[i], s2[i], n1[i])
           ON CONFLICT (key) DO UPDATE SET endpoint = EXCLUDED.endpoint, expires_at = EXCLUDED.expires_at
           WHERE nonces.expires_at < n2[i];
         GET DIAGNOSTICS n = ROW_COUNT;
         res := res || (CASE WHEN n > 0 THEN 'fresh' ELSE 'replay' END);
       ELSE
         RAISE EXCEPTION 'plk_apply: unknown op %', ops[i];
       END IF;
     END LOOP;
     RETURN res;
   END
   $fn$;`,
];

/** Advisory lock keys of this store (namespaced by a constant first word, so other users' locks never collide). */
const LOCK_MIGRATE = 0x504c4b00; // "PLK\0"
const LOCK_REGISTRY = 0x504c4b01;

/** A 48-bit key for a sender's advisory lock (FNV-1a over the id); a collision only serializes two senders. */
export function senderLockKey(sender: string): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < sender.length; i++) {
    const c = sender.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x811c9dc5) >>> 0;
  }
  return (h1 * 0x10000 + (h2 & 0xffff)) % 2 ** 48;
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

export interface PostgresStoreOptions {
  /** postgres://user@host:port/database */
  readonly url: string;
  /** Schema holding the tables (created if absent); default `plushlink`. One schema per gateway. */
  readonly schema?: string;
  /** Connections for reads and writes (one write batch in flight at a time); default 8. */
  readonly poolSize?: number;
  /** Most writes in one group commit; default 512. */
  readonly maxBatch?: number;
  /** A statement (or a connection attempt) taking longer fails: nothing is acknowledged. Default 10 s. */
  readonly timeoutMs?: number;
  /** Shown in pg_stat_activity. */
  readonly applicationName?: string;
}

interface EndpointRow {
  id: string;
  role: string;
  sign_pk: Buffer;
  box_pk: Buffer;
  family_id: string | null;
  revoked: boolean;
  created_at: number;
}

const view = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const asBuffer = (u: Uint8Array): Buffer =>
  Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);

function toRecord(r: EndpointRow): EndpointRecord {
  return {
    id: r.id as EndpointId,
    role: r.role as EndpointRole,
    signPublicKey: view(r.sign_pk),
    boxPublicKey: view(r.box_pk),
    familyId: r.family_id as FamilyId | null,
    revoked: r.revoked,
    createdAt: r.created_at,
  };
}

/** int8 (and count(*)) as JS numbers: every stored integer is a time in ms or a counter below 2^53. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) => {
    if (oid === 20 && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** SQLSTATEs after which a batch is simply run again: nothing of it was applied. */
const RETRYABLE = new Set(['40P01', '40001']);

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The server refused the statement itself (a bug or a constraint), as opposed to a lost connection or a timeout. */
function isStatementError(err: unknown): boolean {
  const s = sqlState(err);
  return s !== undefined && !s.startsWith('08') && !s.startsWith('57') && !s.startsWith('53');
}

/** The URL without its password, for messages. */
function redactPgUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** One line of an error: its message (an AggregateError of every address tried: the first one's). */
function errText(err: unknown): string {
  const first = err instanceof AggregateError ? err.errors[0] : err;
  const msg = first instanceof Error ? first.message : String(first);
  return msg.split('\n')[0] ?? msg;
}

function unavailable(err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  return new StoreError('STORE_UNAVAILABLE', `store: PostgreSQL did not commit (${String(err)})`, {
    cause: err,
  });
}

type HotOp =
  | { readonly op: 'a'; readonly clip: ClipRecord; readonly recipients: readonly EndpointId[] }
  | {
      readonly op: 'd' | 's';
      readonly recipient: EndpointId;
      readonly sender: EndpointId;
      readonly clipId: string;
      readonly at: number;
    }
  | {
      readonly op: 'n';
      readonly key: string;
      readonly endpoint: string;
      readonly expiresAt: number;
      readonly now: number;
    };

interface HotJob {
  readonly op: HotOp;
  resolve(result: string): void;
  reject(err: unknown): void;
}

interface AdminJob {
  readonly run: (c: pg.PoolClient) => Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/**
 * GatewayStore on PostgreSQL, shared by every gateway node. Two write queues, each with at most one
 * commit in flight and everything that arrives meanwhile in the next one (group commit):
 * - the hot path (acceptClip, markDelivered, setAside, nonces): one `plk_apply` statement per batch;
 * - registry and maintenance writes: one transaction per batch, each write in its own savepoint (one
 *   refused write never undoes another), under a registry lock so that the change feed's sequence
 *   numbers commit in order [PLK-12.7].
 * A write's promise resolves only after its COMMIT returned, with `synchronous_commit = on` set on
 * every connection and `fsync` checked at open [PLK-12.3]; when the commit does not come back the
 * write is rejected (STORE_UNAVAILABLE) — it may or may not be durable, and nothing is acknowledged.
 * Writes of one queue apply in call order; reads see committed state only.
 */
export class PostgresStore implements GatewayStore {
  readonly pool: pg.Pool;
  readonly schema: string;
  private readonly maxBatch: number;
  private closed = false;
  private hot: HotJob[] = [];
  private hotBusy = false;
  private hotScheduled = false;
  private admin: AdminJob[] = [];
  private adminBusy = false;
  private adminScheduled = false;
  private idle: (() => void)[] = [];
  private commits = 0;
  private committedJobs = 0;

  private constructor(pool: pg.Pool, schema: string, maxBatch: number) {
    this.pool = pool;
    this.schema = schema;
    this.maxBatch = maxBatch;
  }

  /** Connects, checks that commits are durable, and migrates the schema. */
  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const schema = opts.schema ?? 'plushlink';
    if (!SCHEMA_RE.test(schema)) throw new TypeError(`schema must match ${SCHEMA_RE}, got ${schema}`);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 8,
      types: TYPES,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
      idleTimeoutMillis: 30_000,
      application_name: opts.applicationName ?? 'plushlink-gateway',
      // [PLK-12.3] every commit waits for its WAL flush (and for a synchronous standby, if one is named).
      options: `-c search_path=${schema} -c synchronous_commit=on`,
    });
    // An idle connection that breaks (server restart) is dropped by the pool; it must not crash the process.
    pool.on('error', () => {});
    const store = new PostgresStore(pool, schema, opts.maxBatch ?? 512);
    try {
      const fsync = await pool.query<{ fsync: string }>('SHOW fsync');
      if (fsync.rows[0]?.fsync !== 'on') {
        throw new StoreError(
          'STORE_NOT_DURABLE',
          'store: PostgreSQL runs with fsync=off, so a COMMIT is not durable; refusing to acknowledge clips on it [PLK-12.3]',
        );
      }
      await store.migrate();
    } catch (err) {
      await pool.end();
      if (err instanceof StoreError) throw err;
      throw new StoreError(
        'STORE_UNAVAILABLE',
        `store: PostgreSQL ${redactPgUrl(opts.url)} is not reachable or refused the schema (${errText(err)})`,
        { cause: err },
      );
    }
    return store;
  }

  private async migrate(): Promise<void> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1)', [LOCK_MIGRATE]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
      await c.query('CREATE TABLE IF NOT EXISTS schema_version (version int NOT NULL)');
      const v = (await c.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_version')).rows[0]
        ?.v;
      const current = v ?? 0;
      if (current > MIGRATIONS.length) {
        throw new StoreError(
          'STORE_SCHEMA',
          `store: schema ${this.schema} is at version ${current}, newer than this code (${MIGRATIONS.length})`,
        );
      }
      for (let i = current; i < MIGRATIONS.length; i++) {
        await c.query(MIGRATIONS[i]!);
        await c.query('INSERT INTO schema_version (version) VALUES ($1)', [i + 1]);
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }

  // ---- plumbing --------------------------------------------------------------------------------

  private alive(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'store is closed');
  }

  private async read<R extends pg.QueryResultRow>(
    name: string,
    text: string,
    values: unknown[] = [],
  ): Promise<R[]> {
    this.alive();
    try {
      return (await this.pool.query<R>({ name: `plk_${name}`, text, values })).rows;
    } catch (err) {
      throw unavailable(err);
    }
  }

  private checked<T>(check: () => void, run: () => Promise<T>): Promise<T> {
    try {
      this.alive();
      check();
    } catch (err) {
      return Promise.reject(err);
    }
    return run();
  }

  /** Queues a hot-path write; resolves with plk_apply's result once its batch has committed. */
  private hotWrite(op: HotOp): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.hot.push({ op, resolve, reject });
      if (!this.hotScheduled && !this.hotBusy) {
        this.hotScheduled = true;
        setImmediate(() => {
          this.hotScheduled = false;
          void this.flushHot();
        });
      }
    });
  }

  private async flushHot(): Promise<void> {
    if (this.hotBusy) return;
    if (this.hot.length === 0) {
      this.notifyIdle();
      return;
    }
    this.hotBusy = true;
    const jobs = this.hot.splice(0, this.maxBatch);
    try {
      const results = await this.applyHot(jobs.map((j) => j.op));
      this.commits++;
      this.committedJobs += jobs.length;
      for (let i = 0; i < jobs.length; i++) jobs[i]!.resolve(results[i]!);
    } catch (err) {
      if (jobs.length > 1 && isStatementError(err)) {
        // One bad write must not fail the others: each alone, in order.
        for (const j of jobs) {
          try {
            j.resolve((await this.applyHot([j.op]))[0]!);
          } catch (e) {
            j.reject(isStatementError(e) ? e : unavailable(e));
          }
        }
      } else {
        for (const j of jobs) j.reject(isStatementError(err) ? err : unavailable(err));
      }
    } finally {
      this.hotBusy = false;
    }
    void this.flushHot();
  }

  /** One plk_apply statement (its own transaction: one COMMIT) for `ops`; retried on deadlock or serialization failure. */
  private async applyHot(ops: readonly HotOp[]): Promise<string[]> {
    const kinds: string[] = [];
    const s1: string[] = [];
    const s2: string[] = [];
    const s3: string[] = [];
    const n1: number[] = [];
    const n2: number[] = [];
    const n3: number[] = [];
    const recips: string[] = [];
    const nrecips: number[] = [];
    const envs: Buffer[] = [];
    const locks = new Set<number>();
    for (const o of ops) {
      kinds.push(o.op);
      if (o.op === 'a') {
        const c = o.clip;
        s1.push(c.sender);
        s2.push(c.clipId);
        s3.push('');
        n1.push(c.sequence);
        n2.push(c.createdAt);
        n3.push(c.receivedAt);
        recips.push(...o.recipients);
        nrecips.push(o.recipients.length);
        envs.push(asBuffer(c.envelope));
        locks.add(senderLockKey(c.sender));
      } else if (o.op === 'n') {
        s1.push(o.key);
        s2.push(o.endpoint);
        s3.push('');
        n1.push(o.expiresAt);
        n2.push(o.now);
        n3.push(0);
        nrecips.push(0);
      } else {
        s1.push(o.recipient);
        s2.push(o.sender);
        s3.push(o.clipId);
        n1.push(o.at);
        n2.push(0);
        n3.push(0);
        nrecips.push(0);
        locks.add(senderLockKey(o.sender));
      }
    }
    // Envelopes as separate binary parameters (no hex or escaping of the ciphertext).
    const envParams = envs.map((_, i) => `$${11 + i}`).join(',');
    const text = `SELECT plk_apply($1,$2,$3,$4,$5,$6,$7,$8,$9,${envs.length ? `ARRAY[${envParams}]::bytea[]` : "'{}'::bytea[]"},$10) AS r`;
    const values: unknown[] = [
      kinds,
      s1,
      s2,
      s3,
      n1,
      n2,
      n3,
      recips,
      nrecips,
      [...locks].sort((a, b) => a - b),
      ...envs,
    ];
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await this.pool.query<{ r: string[] }>({ text, values });
        const out = r.rows[0]?.r;
        if (!out || out.length !== ops.length) throw new Error('plk_apply returned no result per op');
        return out;
      } catch (err) {
        if (attempt < 4 && RETRYABLE.has(sqlState(err) ?? '')) continue;
        throw err;
      }
    }
  }

  /** Queues a registry or maintenance write for the next admin transaction. */
  private adminWrite<T>(run: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.admin.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!this.adminScheduled && !this.adminBusy) {
        this.adminScheduled = true;
        setImmediate(() => {
          this.adminScheduled = false;
          void this.flushAdmin();
        });
      }
    });
  }

  private async flushAdmin(): Promise<void> {
    if (this.adminBusy) return;
    if (this.admin.length === 0) {
      this.notifyIdle();
      return;
    }
    this.adminBusy = true;
    const jobs = this.admin.splice(0, this.maxBatch);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const outcomes = await this.adminBatch(jobs);
          for (let i = 0; i < jobs.length; i++) {
            const o = outcomes[i]!;
            if (o.ok) jobs[i]!.resolve(o.value);
            else jobs[i]!.reject(o.value);
          }
          break;
        } catch (err) {
          if (attempt < 4 && RETRYABLE.has(sqlState(err) ?? '')) continue;
          for (const j of jobs) j.reject(unavailable(err));
          break;
        }
      }
    } finally {
      this.adminBusy = false;
    }
    void this.flushAdmin();
  }

  /**
   * One transaction: the registry lock (registry changes commit in sequence order, so a change feed
   * reader never skips one that commits late), then each job in a savepoint. Throws only when the
   * transaction itself failed (nothing of it applied).
   */
  private async adminBatch(jobs: readonly AdminJob[]): Promise<{ ok: boolean; value: unknown }[]> {
    const c = await this.pool.connect();
    let broken = false;
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1)', [LOCK_REGISTRY]);
      const outcomes: { ok: boolean; value: unknown }[] = [];
      for (const job of jobs) {
        await c.query('SAVEPOINT job');
        try {
          const value = await job.run(c);
          await c.query('RELEASE SAVEPOINT job');
          outcomes.push({ ok: true, value });
        } catch (err) {
          if (!(err instanceof StoreError) && !isStatementError(err)) throw err;
          if (RETRYABLE.has(sqlState(err) ?? '')) throw err;
          await c.query('ROLLBACK TO SAVEPOINT job');
          outcomes.push({ ok: false, value: err });
        }
      }
      await c.query('COMMIT');
      this.commits++;
      this.committedJobs += jobs.length;
      return outcomes;
    } catch (err) {
      try {
        await c.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw err;
    } finally {
      c.release(broken);
    }
  }

  private notifyIdle(): void {
    if (this.hotBusy || this.adminBusy || this.hot.length > 0 || this.admin.length > 0) return;
    for (const f of this.idle.splice(0)) f();
  }

  /** Resolves once both queues are empty and no commit is in flight. */
  private drained(): Promise<void> {
    if (!this.hotBusy && !this.adminBusy && this.hot.length === 0 && this.admin.length === 0)
      return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Commits so far and the writes they covered (group-commit size = jobs / commits). */
  commitStats(): { commits: number; jobs: number } {
    return { commits: this.commits, jobs: this.committedJobs };
  }

  // ---- registry ---------------------------------------------------------------------------------

  private static async insertEndpoint(c: pg.PoolClient, rec: NewEndpoint): Promise<void> {
    const known = await c.query('SELECT 1 FROM endpoints WHERE id = $1', [rec.id]);
    if (known.rowCount) {
      throw new StoreError('STORE_ENDPOINT_EXISTS', `endpoint ${rec.id} is already registered`);
    }
    // [PLK-12.5] a revoked or erased id never comes back, whatever keys it is presented with.
    if ((await c.query('SELECT 1 FROM tombstones WHERE id = $1', [rec.id])).rowCount) {
      throw new StoreError(
        'STORE_TOMBSTONED',
        `endpoint ${rec.id} was revoked or erased and cannot be registered again`,
      );
    }
  }

  addEndpoint(rec: NewEndpoint): Promise<void> {
    return this.addEndpoints([rec]);
  }

  /** All or nothing: one savepoint for the whole list. */
  addEndpoints(recs: readonly NewEndpoint[]): Promise<void> {
    return this.checked(
      () => {
        for (const r of recs) checkNewEndpoint(r);
      },
      () =>
        this.adminWrite(async (c) => {
          if (recs.length === 0) return;
          const ids = recs.map((r) => r.id);
          const known = await c.query<{ id: string }>('SELECT id FROM endpoints WHERE id = ANY($1)', [ids]);
          const dead = await c.query<{ id: string }>('SELECT id FROM tombstones WHERE id = ANY($1)', [ids]);
          const seen = new Set<string>();
          for (const r of recs) {
            if (seen.has(r.id) || known.rows.some((k) => k.id === r.id)) {
              throw new StoreError('STORE_ENDPOINT_EXISTS', `endpoint ${r.id} is already registered`);
            }
            if (dead.rows.some((k) => k.id === r.id)) await PostgresStore.insertEndpoint(c, r);
            seen.add(r.id);
          }
          for (let i = 0; i < recs.length; i += 1000) {
            const part = recs.slice(i, i + 1000);
            await c.query(
              `INSERT INTO endpoints (id, role, sign_pk, box_pk, family_id, revoked, created_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::text[], $6::boolean[], $7::bigint[])`,
              [
                part.map((r) => r.id),
                part.map((r) => r.role),
                part.map((r) => asBuffer(r.signPublicKey)),
                part.map((r) => asBuffer(r.boxPublicKey)),
                part.map(() => null),
                part.map(() => false),
                part.map((r) => r.createdAt),
              ],
            );
          }
        }),
    );
  }

  async getEndpoint(id: EndpointId): Promise<EndpointRecord | undefined> {
    const rows = await this.read<EndpointRow>('get_endpoint', 'SELECT * FROM endpoints WHERE id = $1', [id]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async listEndpoints(): Promise<EndpointRecord[]> {
    return (
      await this.read<EndpointRow>('list_endpoints', 'SELECT * FROM endpoints ORDER BY created_at, id')
    ).map(toRecord);
  }

  revokeEndpoint(id: EndpointId, now: number): Promise<boolean> {
    return this.checked(
      () => {
        checkEndpointId(id);
        checkTime(now, 'now');
      },
      () =>
        this.adminWrite(async (c) => {
          const ep = await c.query<{ family_id: string | null }>(
            'UPDATE endpoints SET revoked = true WHERE id = $1 RETURNING family_id',
            [id],
          );
          const row = ep.rows[0];
          if (!row) return false;
          await c.query('INSERT INTO tombstones (id) VALUES ($1) ON CONFLICT DO NOTHING', [id]);
          await c.query('INSERT INTO registry_changes (kind, endpoint, family, at) VALUES ($1, $2, $3, $4)', [
            'revoked',
            id,
            row.family_id,
            now,
          ]);
          return true;
        }),
    );
  }

  async isTombstoned(id: EndpointId): Promise<boolean> {
    return (await this.read('is_tombstoned', 'SELECT 1 FROM tombstones WHERE id = $1', [id])).length > 0;
  }

  createFamily(id: FamilyId, now: number): Promise<void> {
    return this.checked(
      () => {
        parseFamilyId(id);
        checkTime(now, 'now');
      },
      () =>
        this.adminWrite(async (c) => {
          const r = await c.query(
            'INSERT INTO families (id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING',
            [id, now],
          );
          if (r.rowCount === 0) throw new StoreError('STORE_FAMILY_EXISTS', `family ${id} already exists`);
        }),
    );
  }

  addFamilyMember(family: FamilyId, endpoint: EndpointId, now: number): Promise<void> {
    return this.checked(
      () => {
        parseFamilyId(family);
        checkEndpointId(endpoint);
        checkTime(now, 'now');
      },
      () =>
        this.adminWrite(async (c) => {
          if (!(await c.query('SELECT 1 FROM families WHERE id = $1', [family])).rowCount) {
            throw new StoreError('STORE_UNKNOWN_FAMILY', `no family ${family}`);
          }
          const ep = (
            await c.query<{ family_id: string | null; revoked: boolean }>(
              'SELECT family_id, revoked FROM endpoints WHERE id = $1 FOR UPDATE',
              [endpoint],
            )
          ).rows[0];
          if (!ep) throw new StoreError('STORE_UNKNOWN_ENDPOINT', `no endpoint ${endpoint}`);
          if (ep.revoked) throw new StoreError('STORE_REVOKED', `endpoint ${endpoint} is revoked`);
          if (ep.family_id === family) return;
          if (ep.family_id !== null) {
            throw new StoreError(
              'STORE_OTHER_FAMILY',
              `endpoint ${endpoint} already belongs to another family`,
            );
          }
          await c.query('UPDATE endpoints SET family_id = $1 WHERE id = $2', [family, endpoint]);
          await c.query('INSERT INTO registry_changes (kind, endpoint, family, at) VALUES ($1, $2, $3, $4)', [
            'member-added',
            endpoint,
            family,
            now,
          ]);
        }),
    );
  }

  async familyMembers(family: FamilyId): Promise<EndpointRecord[]> {
    return (
      await this.read<EndpointRow>(
        'family_members',
        'SELECT * FROM endpoints WHERE family_id = $1 ORDER BY created_at, id',
        [family],
      )
    ).map(toRecord);
  }

  async listFamilies(): Promise<{ id: FamilyId; members: number }[]> {
    const rows = await this.read<{ id: string; members: number }>(
      'list_families',
      `SELECT f.id AS id, count(e.id) AS members FROM families f LEFT JOIN endpoints e ON e.family_id = f.id
       GROUP BY f.id, f.created_at ORDER BY f.created_at, f.id`,
    );
    return rows.map((r) => ({ id: r.id as FamilyId, members: r.members }));
  }

  /**
   * [PLK-12.5] Erases the family in one transaction, under the members' sender locks (taken in the
   * hot path's order: clip traffic of the family waits, never deadlocks), then VACUUMs the tables it
   * touched, so the dead rows are pruned from their pages rather than left for autovacuum.
   */
  eraseFamily(family: FamilyId, now: number): Promise<{ clips: number; endpoints: number }> {
    return this.checked(
      () => {
        parseFamilyId(family);
        checkTime(now, 'now');
      },
      async () => {
        const r = await this.adminWrite(async (c) => {
          if (!(await c.query('SELECT 1 FROM families WHERE id = $1', [family])).rowCount) {
            throw new StoreError('STORE_UNKNOWN_FAMILY', `no family ${family}`);
          }
          const ids = (
            await c.query<{ id: string }>('SELECT id FROM endpoints WHERE family_id = $1 FOR UPDATE', [
              family,
            ])
          ).rows.map((x) => x.id);
          const locks = [...new Set(ids.map(senderLockKey))].sort((a, b) => a - b);
          await c.query('SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k', [locks]);
          // Clips sent by a member, then clips addressed to a member (their deliveries cascade).
          const sent = await c.query('DELETE FROM clips WHERE sender = ANY($1)', [ids]);
          const received = await c.query(
            `DELETE FROM clips WHERE (sender, clip_id) IN
               (SELECT sender, clip_id FROM deliveries WHERE recipient = ANY($1))`,
            [ids],
          );
          await c.query('DELETE FROM sequences WHERE sender = ANY($1)', [ids]);
          await c.query('DELETE FROM accepted WHERE sender = ANY($1)', [ids]);
          await c.query('DELETE FROM nonces WHERE endpoint = ANY($1)', [ids]);
          const eps = await c.query('DELETE FROM endpoints WHERE family_id = $1', [family]);
          await c.query('DELETE FROM families WHERE id = $1', [family]);
          // Family ids of erased families must not linger in the change feed.
          await c.query('UPDATE registry_changes SET family = NULL WHERE family = $1', [family]);
          for (const id of ids) {
            await c.query('INSERT INTO tombstones (id) VALUES ($1) ON CONFLICT DO NOTHING', [id]);
            await c.query(
              'INSERT INTO registry_changes (kind, endpoint, family, at) VALUES ($1, $2, NULL, $3)',
              ['erased', id, now],
            );
          }
          return { clips: (sent.rowCount ?? 0) + (received.rowCount ?? 0), endpoints: eps.rowCount ?? 0 };
        });
        await this.vacuumErased();
        return r;
      },
    );
  }

  /**
   * Plain VACUUM of the tables an erase deletes from (it never blocks clip traffic): dead tuples are
   * pruned from their pages now. PostgreSQL does not overwrite the space they leave (nor old WAL
   * segments) — docs/SCALING.md, "Erasure", says what that means for the data files.
   */
  async vacuumErased(): Promise<void> {
    this.alive();
    try {
      await this.pool.query(
        'VACUUM clips, deliveries, accepted, sequences, nonces, endpoints, families, registry_changes',
      );
    } catch (err) {
      throw unavailable(err);
    }
  }

  registryChanges(after: number, limit: number): Promise<RegistryChange[]> {
    return this.checked(
      () => {
        checkTime(after, 'after');
        checkLimit(limit);
      },
      async () =>
        (
          await this.read<{ seq: number; kind: string; endpoint: string; family: string | null; at: number }>(
            'registry_changes',
            'SELECT seq, kind, endpoint, family, at FROM registry_changes WHERE seq > $1 ORDER BY seq LIMIT $2',
            [after, limit],
          )
        ).map((r) => ({
          seq: r.seq,
          kind: r.kind as RegistryChange['kind'],
          endpoint: r.endpoint as EndpointId,
          family: r.family as FamilyId | null,
          at: r.at,
        })),
    );
  }

  async latestRegistryChange(): Promise<number> {
    return (
      (
        await this.read<{ seq: number | null }>(
          'latest_change',
          'SELECT max(seq) AS seq FROM registry_changes',
        )
      )[0]?.seq ?? 0
    );
  }

  /** Drops registry changes older than `before`, except the newest (see SqliteStoreBase.pruneRegistryChanges). */
  pruneRegistryChanges(before: number): Promise<number> {
    return this.checked(
      () => checkTime(before, 'before'),
      () =>
        this.adminWrite(
          async (c) =>
            (
              await c.query(
                'DELETE FROM registry_changes WHERE at < $1 AND seq < (SELECT max(seq) FROM registry_changes)',
                [before],
              )
            ).rowCount ?? 0,
        ),
    );
  }

  // ---- nonces and meta --------------------------------------------------------------------------

  recordNonce(nonce: StoredNonce): Promise<void> {
    return this.checked(
      () => {
        checkNonceKey(nonce.key);
        checkEndpointId(nonce.endpoint);
        checkTime(nonce.expiresAt, 'expiresAt');
      },
      async () => {
        // As SQLite's INSERT OR REPLACE: `now` beyond every expiry replaces an existing row.
        await this.hotWrite({
          op: 'n',
          key: nonce.key,
          endpoint: nonce.endpoint,
          expiresAt: nonce.expiresAt,
          now: Number.MAX_SAFE_INTEGER,
        });
      },
    );
  }

  /**
   * [PLK-3.5] Records a nonce unless an unexpired copy is stored: the durable, cluster-wide arbiter
   * of replay (true: fresh, now durable; false: a replay). Group-committed with the clip writes.
   */
  claimNonce(nonce: StoredNonce, now: number): Promise<boolean> {
    return this.checked(
      () => {
        checkNonceKey(nonce.key);
        checkEndpointId(nonce.endpoint);
        checkTime(nonce.expiresAt, 'expiresAt');
        checkTime(now, 'now');
      },
      async () =>
        (await this.hotWrite({
          op: 'n',
          key: nonce.key,
          endpoint: nonce.endpoint,
          expiresAt: nonce.expiresAt,
          now,
        })) === 'fresh',
    );
  }

  loadNonces(now: number): Promise<StoredNonce[]> {
    return this.checked(
      () => checkTime(now, 'now'),
      async () => {
        await this.adminWrite(async (c) => {
          await c.query('DELETE FROM nonces WHERE expires_at < $1', [now]);
        });
        const rows = await this.read<{ key: string; endpoint: string; expires_at: number }>(
          'nonces',
          'SELECT key, endpoint, expires_at FROM nonces WHERE expires_at >= $1',
          [now],
        );
        return rows.map((r) => ({ key: r.key, endpoint: r.endpoint as EndpointId, expiresAt: r.expires_at }));
      },
    );
  }

  /** Deletes expired nonces; returns how many. */
  expireNonces(now: number): Promise<number> {
    return this.checked(
      () => checkTime(now, 'now'),
      () =>
        this.adminWrite(
          async (c) => (await c.query('DELETE FROM nonces WHERE expires_at < $1', [now])).rowCount ?? 0,
        ),
    );
  }

  async getMeta(key: string): Promise<string | undefined> {
    return (await this.read<{ value: string }>('get_meta', 'SELECT value FROM meta WHERE key = $1', [key]))[0]
      ?.value;
  }

  private static checkMeta(key: string, value: string): void {
    if (typeof key !== 'string' || key.length === 0 || key.length > 100) throw new TypeError('meta key');
    if (typeof value !== 'string' || value.length > 10_000) throw new TypeError('meta value');
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.checked(
      () => PostgresStore.checkMeta(key, value),
      () =>
        this.adminWrite(async (c) => {
          await c.query(
            'INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value',
            [key, value],
          );
        }),
    );
  }

  /** Sets `key` unless it is set; returns the value stored afterwards (ours, or the one another node wrote first). */
  claimMeta(key: string, value: string): Promise<string> {
    return this.checked(
      () => PostgresStore.checkMeta(key, value),
      () =>
        this.adminWrite(async (c) => {
          await c.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', [
            key,
            value,
          ]);
          const r = await c.query<{ value: string }>('SELECT value FROM meta WHERE key = $1', [key]);
          return r.rows[0]?.value ?? value;
        }),
    );
  }

  // ---- clips ------------------------------------------------------------------------------------

  async lastSequence(sender: EndpointId): Promise<number> {
    return (
      (
        await this.read<{ last_seq: number }>(
          'last_seq',
          'SELECT last_seq FROM sequences WHERE sender = $1',
          [sender],
        )
      )[0]?.last_seq ?? 0
    );
  }

  /** [PLK-12.9] Shared by several nodes, this store offers no clipVerdict, so nothing is receipted in transit. */
  acceptClip(
    clip: ClipRecord,
    recipients: readonly EndpointId[],
    opts?: AcceptOptions,
  ): Promise<AcceptResult> {
    return this.checked(
      () => {
        checkClip(clip, recipients);
        if ((opts?.receipted?.length ?? 0) > 0)
          throw new RangeError('the PostgreSQL store stores every delivery: receipted must be empty');
      },
      async () => {
        const r = await this.hotWrite({ op: 'a', clip, recipients });
        if (r === 'ok') return { ok: true };
        if (r === 'retransmit') return { ok: true, retransmit: true };
        if (r === 'replay' || r === 'duplicate') return { ok: false, reason: r };
        throw new StoreError('STORE_UNAVAILABLE', `store: unexpected acceptClip result ${r}`);
      },
    );
  }

  pendingFor(recipient: EndpointId, limit: number): Promise<PendingDelivery[]> {
    return this.checked(
      () => checkLimit(limit),
      async () => {
        const rows = await this.read<{
          sender: string;
          clip_id: string;
          received_at: number;
          envelope: Buffer;
        }>(
          'pending',
          `SELECT d.sender, d.clip_id, c.received_at, c.envelope
           FROM deliveries d JOIN clips c ON c.sender = d.sender AND c.clip_id = d.clip_id
           WHERE d.recipient = $1 AND d.delivered_at IS NULL ORDER BY d.id LIMIT $2`,
          [recipient, limit],
        );
        return rows.map((r) => ({
          recipient,
          sender: r.sender as EndpointId,
          clipId: r.clip_id,
          receivedAt: r.received_at,
          envelope: view(r.envelope),
        }));
      },
    );
  }

  markDelivered(
    recipient: EndpointId,
    sender: EndpointId,
    clipId: string,
    at: number,
  ): Promise<DeliveryMark> {
    return this.checked(
      () => checkDelivered(recipient, sender, clipId, at),
      async () => (await this.hotWrite({ op: 'd', recipient, sender, clipId, at })) as DeliveryMark,
    );
  }

  setAside(recipient: EndpointId, sender: EndpointId, clipId: string, at: number): Promise<boolean> {
    return this.checked(
      () => checkDelivered(recipient, sender, clipId, at),
      async () => (await this.hotWrite({ op: 's', recipient, sender, clipId, at })) === 'true',
    );
  }

  expireUndelivered(before: number): Promise<number> {
    return this.checked(
      () => checkTime(before, 'before'),
      () =>
        this.adminWrite(async (c) => {
          // Every clip still stored has a pending delivery: fully receipted clips are deleted.
          await c.query('DELETE FROM accepted WHERE received_at < $1', [before]);
          return (await c.query('DELETE FROM clips WHERE received_at < $1', [before])).rowCount ?? 0;
        }),
    );
  }

  async backlog(): Promise<number> {
    return (
      (
        await this.read<{ n: number }>(
          'backlog',
          'SELECT count(*) AS n FROM deliveries WHERE delivered_at IS NULL',
        )
      )[0]?.n ?? 0
    );
  }

  // ---- backup -------------------------------------------------------------------------------------

  /**
   * Consistent online backup as a SQLite gateway.db (the embedded store's format, created exclusively
   * with mode 0600): one REPEATABLE READ snapshot of every table, so every clip whose commit returned
   * before the call is in it. `plushlink restore` reads it like any backup — into a data directory,
   * or back into PostgreSQL (`restoreIntoPostgres`).
   */
  async backup(path: string): Promise<void> {
    this.alive();
    await this.drained();
    closeSync(openSync(path, 'wx', 0o600));
    const db = openDatabase(path);
    const c = await this.pool.connect();
    try {
      migrateDatabase(db, SQLITE_MIGRATIONS);
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await copyToSqlite(c, db);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release();
      db.close();
    }
  }

  /** Waits for queued writes, then closes the pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.drained();
    this.closed = true;
    await this.pool.end();
  }
}

function checkDelivered(recipient: EndpointId, sender: EndpointId, clipId: string, at: number): void {
  checkEndpointId(recipient, 'recipient');
  checkEndpointId(sender, 'sender');
  checkClipId(clipId);
  checkTime(at, 'at');
}

/** Rows of `sql` in pages of `page` (keyset on the ORDER BY columns is not needed inside one snapshot). */
async function* pages<R extends pg.QueryResultRow>(
  c: pg.PoolClient,
  sql: string,
  page = 500,
): AsyncGenerator<R[]> {
  for (let offset = 0; ; offset += page) {
    const r = await c.query<R>(`${sql} LIMIT ${page} OFFSET ${offset}`);
    if (r.rows.length === 0) return;
    yield r.rows;
    if (r.rows.length < page) return;
  }
}

/** Copies every table of the snapshot `c` is in into the SQLite database `db` (SqliteStore's schema). */
async function copyToSqlite(c: pg.PoolClient, db: Database.Database): Promise<void> {
  const copy = async (sql: string, insert: string, row: (r: Record<string, unknown>) => unknown[]) => {
    const stmt = db.prepare(insert);
    for await (const rows of pages<Record<string, unknown>>(c, sql)) {
      db.transaction(() => {
        for (const r of rows) stmt.run(...row(r));
      })();
    }
  };
  await copy('SELECT id, created_at FROM families ORDER BY id', 'INSERT INTO families VALUES (?, ?)', (r) => [
    r.id,
    r.created_at,
  ]);
  await copy(
    'SELECT * FROM endpoints ORDER BY id',
    'INSERT INTO endpoints (id, role, sign_pk, box_pk, family_id, revoked, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    (r) => [r.id, r.role, r.sign_pk, r.box_pk, r.family_id, r.revoked ? 1 : 0, r.created_at],
  );
  await copy(
    'SELECT * FROM clips ORDER BY sender, clip_id',
    'INSERT INTO clips (sender, clip_id, sequence, created_at, received_at, envelope) VALUES (?, ?, ?, ?, ?, ?)',
    (r) => [r.sender, r.clip_id, r.sequence, r.created_at, r.received_at, r.envelope],
  );
  // In delivery order: SQLite hands out the backlog by rowid.
  await copy(
    'SELECT recipient, sender, clip_id, delivered_at FROM deliveries ORDER BY id',
    'INSERT INTO deliveries (recipient, sender, clip_id, delivered_at) VALUES (?, ?, ?, ?)',
    (r) => [r.recipient, r.sender, r.clip_id, r.delivered_at],
  );
  await copy(
    'SELECT sender, last_seq FROM sequences ORDER BY sender',
    'INSERT INTO sequences VALUES (?, ?)',
    (r) => [r.sender, r.last_seq],
  );
  await copy(
    'SELECT sender, clip_id, sequence, received_at FROM accepted ORDER BY sender, clip_id',
    'INSERT INTO accepted VALUES (?, ?, ?, ?)',
    (r) => [r.sender, r.clip_id, r.sequence, r.received_at],
  );
  await copy('SELECT key, value FROM meta ORDER BY key', 'INSERT INTO meta VALUES (?, ?)', (r) => [
    r.key,
    r.value,
  ]);
  await copy(
    'SELECT key, endpoint, expires_at FROM nonces ORDER BY key',
    'INSERT INTO nonces VALUES (?, ?, ?)',
    (r) => [r.key, r.endpoint, r.expires_at],
  );
  await copy('SELECT id FROM tombstones ORDER BY id', 'INSERT OR IGNORE INTO tombstones VALUES (?)', (r) => [
    r.id,
  ]);
  await copy(
    'SELECT seq, kind, endpoint, family, at FROM registry_changes ORDER BY seq',
    'INSERT INTO registry_changes (seq, kind, endpoint, family, at) VALUES (?, ?, ?, ?, ?)',
    (r) => [r.seq, r.kind, r.endpoint, r.family, r.at],
  );
}

/**
 * Loads a SQLite gateway.db (a backup, or an embedded gateway's data) into an EMPTY PostgreSQL
 * schema, in one transaction: a restore from a backup, or a move from SQLite to PostgreSQL.
 */
export async function loadSqliteIntoPostgres(db: Database.Database, store: PostgresStore): Promise<void> {
  const c = await store.pool.connect();
  const all = <R>(sql: string): R[] => db.prepare(sql).all() as R[];
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1)', [LOCK_REGISTRY]);
    const used = await c.query(
      `SELECT (SELECT count(*) FROM endpoints) + (SELECT count(*) FROM families) + (SELECT count(*) FROM meta)
         + (SELECT count(*) FROM tombstones) + (SELECT count(*) FROM registry_changes) AS n`,
    );
    if (Number((used.rows[0] as { n: number }).n) > 0) {
      throw new StoreError(
        'STORE_SCHEMA',
        `store: schema ${store.schema} is not empty; restore into an empty schema (--pg-schema NAME) or another database`,
      );
    }
    const put = async (table: string, cols: string[], rows: unknown[][]): Promise<void> => {
      for (let i = 0; i < rows.length; i += 200) {
        const part = rows.slice(i, i + 200);
        const values: unknown[] = [];
        const tuples = part.map((r) => `(${r.map((v) => `$${values.push(v)}`).join(',')})`);
        await c.query(`INSERT INTO ${table} (${cols.join(',')}) VALUES ${tuples.join(',')}`, values);
      }
    };
    type Row = Record<string, unknown>;
    await put(
      'families',
      ['id', 'created_at'],
      all<Row>('SELECT id, created_at FROM families').map((r) => [r.id, r.created_at]),
    );
    await put(
      'endpoints',
      ['id', 'role', 'sign_pk', 'box_pk', 'family_id', 'revoked', 'created_at'],
      all<Row>('SELECT * FROM endpoints').map((r) => [
        r.id,
        r.role,
        r.sign_pk,
        r.box_pk,
        r.family_id,
        r.revoked === 1,
        r.created_at,
      ]),
    );
    for (const r of db.prepare('SELECT * FROM clips').iterate() as IterableIterator<Row>) {
      await c.query(
        'INSERT INTO clips (sender, clip_id, sequence, created_at, received_at, envelope) VALUES ($1, $2, $3, $4, $5, $6)',
        [r.sender, r.clip_id, r.sequence, r.created_at, r.received_at, r.envelope],
      );
    }
    await put(
      'deliveries',
      ['recipient', 'sender', 'clip_id', 'delivered_at'],
      all<Row>('SELECT recipient, sender, clip_id, delivered_at FROM deliveries ORDER BY rowid').map((r) => [
        r.recipient,
        r.sender,
        r.clip_id,
        r.delivered_at,
      ]),
    );
    await put(
      'sequences',
      ['sender', 'last_seq'],
      all<Row>('SELECT sender, last_seq FROM sequences').map((r) => [r.sender, r.last_seq]),
    );
    await put(
      'accepted',
      ['sender', 'clip_id', 'sequence', 'received_at'],
      all<Row>('SELECT * FROM accepted').map((r) => [r.sender, r.clip_id, r.sequence, r.received_at]),
    );
    await put(
      'meta',
      ['key', 'value'],
      all<Row>('SELECT key, value FROM meta').map((r) => [r.key, r.value]),
    );
    await put(
      'nonces',
      ['key', 'endpoint', 'expires_at'],
      all<Row>('SELECT * FROM nonces').map((r) => [r.key, r.endpoint, r.expires_at]),
    );
    await put(
      'tombstones',
      ['id'],
      all<Row>('SELECT id FROM tombstones').map((r) => [r.id]),
    );
    const changes = all<Row>('SELECT seq, kind, endpoint, family, at FROM registry_changes ORDER BY seq');
    await put(
      'registry_changes',
      ['seq', 'kind', 'endpoint', 'family', 'at'],
      changes.map((r) => [r.seq, r.kind, r.endpoint, r.family, r.at]),
    );
    // The feed continues after the restored changes.
    await c.query(
      "SELECT setval(pg_get_serial_sequence('registry_changes', 'seq'), greatest((SELECT max(seq) FROM registry_changes), 1), (SELECT count(*) > 0 FROM registry_changes))",
    );
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

/** Opens (and migrates) a PostgreSQL store. */
export function openPostgresStore(opts: PostgresStoreOptions): Promise<PostgresStore> {
  return PostgresStore.open(opts);
}
