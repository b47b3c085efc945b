// Embedded gateway store on better-sqlite3: ciphertext and pseudonymous ids only, group-committed durable writes [PLK-12].
import {
  chmodSync,
  closeSync,
  existsSync,
  fdatasync,
  fstatSync,
  mkdirSync,
  openSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { startWorker } from '../../platform/entry.ts';
import type { EndpointId } from '../../shared/types.ts';
import type {
  AcceptOptions,
  AcceptResult,
  ClipRecord,
  ClipVerdict,
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
import type { CheckpointerReply, CheckpointerRequest, CheckpointerSetup } from './checkpointer.ts';
import {
  checkClip,
  checkClipId,
  checkEndpointId,
  checkLimit,
  checkNewEndpoint,
  checkNonceKey,
  checkReceipted,
  checkTime,
  parseFamilyId,
  StoreError,
} from './common.ts';

export const STORE_FILE = 'gateway.db';

/**
 * Writes that need not force a commit of their own (receipts: a receipt lost in a crash only means
 * its clip is delivered and receipted again). They ride on the next commit, at most this late.
 */
const LAZY_OPS: ReadonlySet<string> = new Set(['markDelivered', 'setAside']);
const LAZY_COMMIT_MS = 20;

/**
 * Where the WAL fsync of a commit runs (SqliteStoreOptions.sync): `inline` (the default), by SQLite
 * inside the commit on the event loop (synchronous=FULL); or `thread`, by the store with fdatasync in
 * libuv's thread pool, the event loop free meanwhile (synchronous=NORMAL + syncWal). Measured here
 * (docs/LOADTEST.md): this VM's disk syncs in ~0.3 ms, and the thread hand-off costs ~45 µs of CPU
 * per sync and ~30 % more CPU per clip, for no gain in throughput or p99 — so `inline` is the
 * default, and `thread` is for disks whose fsync takes milliseconds. PLK_STORE_SYNC=thread selects
 * it for A/B benchmarks. Both acknowledge a write only once it is durable [PLK-12.3].
 */
export type StoreSync = 'inline' | 'thread';
const ENV_SYNC: StoreSync = process.env.PLK_STORE_SYNC === 'thread' ? 'thread' : 'inline';
/** Where WAL checkpoints run: see SqliteStoreOptions.checkpoint. */
export type StoreCheckpoint = 'inline' | 'thread';
const ENV_CHECKPOINT: StoreCheckpoint | undefined =
  process.env.PLK_STORE_CHECKPOINT === 'thread' || process.env.PLK_STORE_CHECKPOINT === 'inline'
    ? process.env.PLK_STORE_CHECKPOINT
    : undefined;
/** Pages between SQLite's own checkpoints (inline), 16 MiB of 4 KiB pages. */
const AUTOCHECKPOINT_PAGES = 4000;
/** How often the checkpoint thread runs a PASSIVE checkpoint, ms. */
const CHECKPOINT_INTERVAL_MS = 250;
const DEFAULT_COMMIT_WINDOW_MS = 4;
const ENV_WINDOW = process.env.PLK_COMMIT_WINDOW_MS ? Number(process.env.PLK_COMMIT_WINDOW_MS) : undefined;

/**
 * PLK_STORE_TRACE=1: once a second, commits, jobs per commit and commit durations on stderr (load-test
 * diagnostics, docs/LOADTEST.md). Off by default; then `traceCommit` returns at once.
 */
const TRACE = process.env.PLK_STORE_TRACE === '1';
const tr = { commits: 0, jobs: 0, ms: 0, maxMs: 0, maxBatch: 0 };
export function traceCommit(n: number, ms: number): void {
  if (!TRACE) return;
  tr.commits++;
  tr.jobs += n;
  tr.ms += ms;
  tr.maxMs = Math.max(tr.maxMs, ms);
  tr.maxBatch = Math.max(tr.maxBatch, n);
}
if (TRACE) {
  setInterval(() => {
    if (tr.commits === 0) return;
    process.stderr.write(
      `[store] commits/s ${tr.commits} jobs/s ${tr.jobs} batch avg ${(tr.jobs / tr.commits).toFixed(1)} max ${tr.maxBatch} commit avg ${(tr.ms / tr.commits).toFixed(2)} ms max ${tr.maxMs.toFixed(1)} busy ${(tr.ms / 10).toFixed(0)}%\n`,
    );
    Object.assign(tr, { commits: 0, jobs: 0, ms: 0, maxMs: 0, maxBatch: 0 });
  }, 1000).unref();
}

/**
 * Schema migrations, applied in order inside one transaction each; `schema_version` records the
 * highest applied. There are deliberately no name, display-name, e-mail or birthday columns anywhere:
 * a full dump shows random ids, public keys, timestamps and ciphertext [PLK-12.1].
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE families (
     id TEXT PRIMARY KEY NOT NULL,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE endpoints (
     id TEXT PRIMARY KEY NOT NULL,
     role TEXT NOT NULL CHECK (role IN ('toy', 'parent')),
     sign_pk BLOB NOT NULL CHECK (length(sign_pk) = 32),
     box_pk BLOB NOT NULL CHECK (length(box_pk) = 32),
     family_id TEXT REFERENCES families(id),
     revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX endpoints_family ON endpoints(family_id);
   CREATE TABLE clips (
     sender TEXT NOT NULL,
     clip_id TEXT NOT NULL,
     sequence INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     envelope BLOB NOT NULL,
     PRIMARY KEY (sender, clip_id)
   );
   CREATE INDEX clips_received ON clips(received_at);
   CREATE TABLE deliveries (
     recipient TEXT NOT NULL,
     sender TEXT NOT NULL,
     clip_id TEXT NOT NULL,
     delivered_at INTEGER,
     UNIQUE (sender, clip_id, recipient),
     FOREIGN KEY (sender, clip_id) REFERENCES clips(sender, clip_id) ON DELETE CASCADE
   );
   CREATE INDEX deliveries_recipient ON deliveries(recipient, delivered_at);
   CREATE TABLE sequences (
     sender TEXT PRIMARY KEY NOT NULL,
     last_seq INTEGER NOT NULL
   ) WITHOUT ROWID;`,
  // [PLK-8.2] Accepted clip ids outlive their clip (deleted once receipted) until retention, so a
  // QoS 1 resend after a lost PUBACK is recognised and acknowledged again instead of refused.
  `CREATE TABLE accepted (
     sender TEXT NOT NULL,
     clip_id TEXT NOT NULL,
     sequence INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     PRIMARY KEY (sender, clip_id)
   ) WITHOUT ROWID;
   CREATE INDEX accepted_received ON accepted(received_at);
   INSERT INTO accepted (sender, clip_id, sequence, received_at)
     SELECT sender, clip_id, sequence, received_at FROM clips;`,
  // [PLK-12.6..12.7] Facts about the data directory (the gateway id it belongs to); connect-token
  // nonces that must survive a restart [PLK-3.5]; ids that may never be registered again
  // (revoked or erased: the id only) [PLK-12.5]; the registry change feed that running gateways
  // tail to cut sessions and send rosters at once.
  `CREATE TABLE meta (
     key TEXT PRIMARY KEY NOT NULL,
     value TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE nonces (
     key TEXT PRIMARY KEY NOT NULL,
     endpoint TEXT NOT NULL,
     expires_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX nonces_expires ON nonces(expires_at);
   CREATE TABLE tombstones (
     id TEXT PRIMARY KEY NOT NULL
   ) WITHOUT ROWID;
   INSERT INTO tombstones (id) SELECT id FROM endpoints WHERE revoked = 1;
   CREATE TABLE registry_changes (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     kind TEXT NOT NULL CHECK (kind IN ('revoked', 'erased', 'member-added')),
     endpoint TEXT NOT NULL,
     family TEXT,
     at INTEGER NOT NULL
   );`,
];

export interface SqliteStoreOptions {
  /** Milliseconds a writer waits for another connection's lock (CLI beside a running gateway). Default 5000. */
  busyTimeoutMs?: number;
  /** Most writes committed together in one transaction (group commit). Default 512. */
  maxBatch?: number;
  /** Where the WAL fsync runs: see StoreSync. Default `inline` (or PLK_STORE_SYNC). */
  sync?: StoreSync;
  /** Shortest time between two commits while writes keep arriving, ms. Default 4 (PLK_COMMIT_WINDOW_MS). */
  commitWindowMs?: number;
  /**
   * Where WAL checkpoints run. `inline` (default, or PLK_STORE_CHECKPOINT): SQLite's own, inside the
   * commit that crosses 4000 pages — 20–35 ms of one commit here, during which the event loop waits.
   * `thread`: a worker thread with its own connection runs a PASSIVE checkpoint every 250 ms
   * (checkpointer.ts), so commits never wait for one; durability is unchanged (a checkpoint only
   * copies frames that are already durable in the WAL).
   */
  checkpoint?: StoreCheckpoint;
}

interface EndpointRow {
  id: string;
  role: string;
  sign_pk: Buffer;
  box_pk: Buffer;
  family_id: string | null;
  revoked: number;
  created_at: number;
}

interface PendingRow {
  sender: string;
  clip_id: string;
  received_at: number;
  envelope: Buffer;
}

interface Job {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

const view = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

function toRecord(r: EndpointRow): EndpointRecord {
  return {
    id: r.id as EndpointId,
    role: r.role as EndpointRole,
    signPublicKey: view(r.sign_pk),
    boxPublicKey: view(r.box_pk),
    familyId: r.family_id as FamilyId | null,
    revoked: r.revoked === 1,
    createdAt: r.created_at,
  };
}

/** Creates `path` with mode 0600 if it does not exist, so SQLite (and its -wal/-shm, which copy it) never widen it. */
function createPrivateFile(path: string): void {
  if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
}

/** Creates `dir` with mode 0700 (and narrows an existing one). */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/** Opens a SQLite database file (created 0600) with the pragmas every PlushLink database uses. */
export function openDatabase(path: string, busyTimeoutMs = 5000): Database.Database {
  createPrivateFile(path);
  const db = new Database(path, { timeout: busyTimeoutMs });
  db.pragma('journal_mode = WAL');
  // Checkpoint every 4000 pages (16 MiB) rather than 1000: fewer checkpoint stalls under clip load.
  db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
  db.pragma('journal_size_limit = 16777216');
  // [PLK-12.3] FULL, not NORMAL: in WAL mode synchronous=NORMAL does not fsync the WAL at each
  // commit, so a power loss can roll back the last committed transactions — clips we already
  // PUBACKed would vanish and their sequence numbers would become replayable. FULL fsyncs the WAL
  // at every commit; group commit (below) keeps that cost at one fsync per batch, not per clip.
  // SqliteStore alone switches to NORMAL because it syncs the WAL itself before settling a write.
  db.pragma('synchronous = FULL');
  // [PLK-12.5] Deleted rows and freed pages are overwritten with zeros, so erased ciphertext does not linger.
  db.pragma('secure_delete = ON');
  db.pragma('foreign_keys = ON');
  db.pragma('temp_store = MEMORY');
  return db;
}

function migrate(db: Database.Database, migrations: readonly string[]): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  const row = db.prepare<[], { v: number | null }>('SELECT max(version) AS v FROM schema_version').get();
  const current = row?.v ?? 0;
  if (current > migrations.length) {
    throw new Error(`database schema version ${current} is newer than this code (${migrations.length})`);
  }
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(v + 1);
    }).immediate();
  }
}

export { migrate as migrateDatabase };

export function prepareStatements(db: Database.Database) {
  return {
    insEndpoint: db.prepare<[string, string, Uint8Array, Uint8Array, number]>(
      'INSERT INTO endpoints (id, role, sign_pk, box_pk, family_id, revoked, created_at) VALUES (?, ?, ?, ?, NULL, 0, ?)',
    ),
    getEndpoint: db.prepare<[string], EndpointRow>('SELECT * FROM endpoints WHERE id = ?'),
    listEndpoints: db.prepare<[], EndpointRow>('SELECT * FROM endpoints ORDER BY created_at, id'),
    revoke: db.prepare<[string]>('UPDATE endpoints SET revoked = 1 WHERE id = ?'),
    insFamily: db.prepare<[string, number]>('INSERT INTO families (id, created_at) VALUES (?, ?)'),
    getFamily: db.prepare<[string], { id: string }>('SELECT id FROM families WHERE id = ?'),
    setFamily: db.prepare<[string, string]>('UPDATE endpoints SET family_id = ? WHERE id = ?'),
    members: db.prepare<[string], EndpointRow>(
      'SELECT * FROM endpoints WHERE family_id = ? ORDER BY created_at, id',
    ),
    families: db.prepare<[], { id: string; members: number }>(
      `SELECT f.id AS id, count(e.id) AS members FROM families f LEFT JOIN endpoints e ON e.family_id = f.id
       GROUP BY f.id ORDER BY f.created_at, f.id`,
    ),
    lastSeq: db.prepare<[string], { last_seq: number }>('SELECT last_seq FROM sequences WHERE sender = ?'),
    acceptedSeq: db.prepare<[string, string], { sequence: number }>(
      'SELECT sequence FROM accepted WHERE sender = ? AND clip_id = ?',
    ),
    // [PLK-8.1] [PLK-8.2] Both facts a clip's verdict needs in one statement (one read
    // transaction, one shared-memory lock round instead of two): [accepted sequence | null, last | null].
    verdict: db
      .prepare<[string, string, string], [number | null, number | null]>(
        `SELECT (SELECT sequence FROM accepted WHERE sender = ? AND clip_id = ?),
                (SELECT last_seq FROM sequences WHERE sender = ?)`,
      )
      .raw(true),
    insAccepted: db.prepare<[string, string, number, number]>(
      'INSERT INTO accepted (sender, clip_id, sequence, received_at) VALUES (?, ?, ?, ?)',
    ),
    expireAccepted: db.prepare<[number]>('DELETE FROM accepted WHERE received_at < ?'),
    eraseAccepted: db.prepare<[string]>(
      'DELETE FROM accepted WHERE sender IN (SELECT id FROM endpoints WHERE family_id = ?)',
    ),
    insClip: db.prepare<[string, string, number, number, number, Uint8Array]>(
      'INSERT INTO clips (sender, clip_id, sequence, created_at, received_at, envelope) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insDelivery: db.prepare<[string, string, string]>(
      'INSERT INTO deliveries (recipient, sender, clip_id, delivered_at) VALUES (?, ?, ?, NULL)',
    ),
    insDeliveryDone: db.prepare<[string, string, string, number]>(
      'INSERT INTO deliveries (recipient, sender, clip_id, delivered_at) VALUES (?, ?, ?, ?)',
    ),
    upsertSeq: db.prepare<[string, number]>(
      'INSERT INTO sequences (sender, last_seq) VALUES (?, ?) ON CONFLICT (sender) DO UPDATE SET last_seq = excluded.last_seq',
    ),
    pending: db.prepare<[string, number], PendingRow>(
      `SELECT d.sender AS sender, d.clip_id AS clip_id, c.received_at AS received_at, c.envelope AS envelope
       FROM deliveries d JOIN clips c ON c.sender = d.sender AND c.clip_id = d.clip_id
       WHERE d.recipient = ? AND d.delivered_at IS NULL ORDER BY d.rowid LIMIT ?`,
    ),
    hasPending: db.prepare<[string], { one: number }>(
      'SELECT 1 AS one FROM deliveries WHERE recipient = ? AND delivered_at IS NULL LIMIT 1',
    ),
    deliver: db.prepare<[number, string, string, string]>(
      'UPDATE deliveries SET delivered_at = ? WHERE recipient = ? AND sender = ? AND clip_id = ? AND delivered_at IS NULL',
    ),
    deliveryExists: db.prepare<[string, string, string], { one: number }>(
      'SELECT 1 AS one FROM deliveries WHERE recipient = ? AND sender = ? AND clip_id = ?',
    ),
    stillPending: db.prepare<[string, string], { one: number }>(
      'SELECT 1 AS one FROM deliveries WHERE sender = ? AND clip_id = ? AND delivered_at IS NULL LIMIT 1',
    ),
    delClip: db.prepare<[string, string]>('DELETE FROM clips WHERE sender = ? AND clip_id = ?'),
    expire: db.prepare<[number]>('DELETE FROM clips WHERE received_at < ?'),
    backlog: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM deliveries WHERE delivered_at IS NULL'),
    eraseSent: db.prepare<[string]>(
      'DELETE FROM clips WHERE sender IN (SELECT id FROM endpoints WHERE family_id = ?)',
    ),
    eraseReceived: db.prepare<[string]>(
      `DELETE FROM clips WHERE (sender, clip_id) IN (SELECT sender, clip_id FROM deliveries
         WHERE recipient IN (SELECT id FROM endpoints WHERE family_id = ?))`,
    ),
    eraseSeq: db.prepare<[string]>(
      'DELETE FROM sequences WHERE sender IN (SELECT id FROM endpoints WHERE family_id = ?)',
    ),
    eraseEndpoints: db.prepare<[string]>('DELETE FROM endpoints WHERE family_id = ?'),
    eraseFamily: db.prepare<[string]>('DELETE FROM families WHERE id = ?'),
    familyIds: db.prepare<[string], { id: string }>('SELECT id FROM endpoints WHERE family_id = ?'),
    tombstone: db.prepare<[string]>('INSERT OR IGNORE INTO tombstones (id) VALUES (?)'),
    isTombstoned: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM tombstones WHERE id = ?'),
    insChange: db.prepare<[string, string, string | null, number]>(
      'INSERT INTO registry_changes (kind, endpoint, family, at) VALUES (?, ?, ?, ?)',
    ),
    changes: db.prepare<
      [number, number],
      { seq: number; kind: string; endpoint: string; family: string | null; at: number }
    >('SELECT seq, kind, endpoint, family, at FROM registry_changes WHERE seq > ? ORDER BY seq LIMIT ?'),
    latestChange: db.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM registry_changes'),
    // Family ids of erased families must not linger in the change feed: an erased member's
    // earlier changes lose their family (the erase change itself never had one).
    forgetChangeFamily: db.prepare<[string]>('UPDATE registry_changes SET family = NULL WHERE family = ?'),
    // The newest change stays: the change number must never go down (roster versions, [PLK-4.6]).
    pruneChanges: db.prepare<[number]>(
      'DELETE FROM registry_changes WHERE at < ? AND seq < (SELECT max(seq) FROM registry_changes)',
    ),
    insNonce: db.prepare<[string, string, number]>(
      'INSERT OR REPLACE INTO nonces (key, endpoint, expires_at) VALUES (?, ?, ?)',
    ),
    nonces: db.prepare<[number], { key: string; endpoint: string; expires_at: number }>(
      'SELECT key, endpoint, expires_at FROM nonces WHERE expires_at >= ?',
    ),
    expireNonces: db.prepare<[number]>('DELETE FROM nonces WHERE expires_at < ?'),
    eraseNonces: db.prepare<[string]>(
      'DELETE FROM nonces WHERE endpoint IN (SELECT id FROM endpoints WHERE family_id = ?)',
    ),
    getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    setMeta: db.prepare<[string, string]>(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    ),
    clipExists: db.prepare<[string, string], { one: number }>(
      'SELECT 1 AS one FROM clips WHERE sender = ? AND clip_id = ?',
    ),
  };
}

/**
 * The bodies of the store's writes, by name: run inside a group-commit transaction, in the caller's
 * thread (SqliteStore) or in the writer thread (WorkerSqliteStore). Arguments were validated before.
 */
export function createWriteOps(db: Database.Database, s = prepareStatements(db)) {
  const insertEndpoint = (rec: NewEndpoint): void => {
    if (s.getEndpoint.get(rec.id)) {
      throw new StoreError('STORE_ENDPOINT_EXISTS', `endpoint ${rec.id} is already registered`);
    }
    // [PLK-12.5] a revoked or erased id never comes back, whatever keys it is presented with.
    if (s.isTombstoned.get(rec.id)) {
      throw new StoreError(
        'STORE_TOMBSTONED',
        `endpoint ${rec.id} was revoked or erased and cannot be registered again`,
      );
    }
    s.insEndpoint.run(rec.id, rec.role, rec.signPublicKey, rec.boxPublicKey, rec.createdAt);
  };
  return {
    addEndpoint(rec: NewEndpoint): void {
      insertEndpoint(rec);
    },
    addEndpoints(recs: readonly NewEndpoint[]): void {
      for (const r of recs) insertEndpoint(r);
    },
    revokeEndpoint(id: EndpointId, now: number): boolean {
      const ep = s.getEndpoint.get(id);
      if (!ep) return false;
      s.revoke.run(id);
      s.tombstone.run(id);
      s.insChange.run('revoked', id, ep.family_id, now);
      return true;
    },
    createFamily(id: FamilyId, now: number): void {
      if (s.getFamily.get(id)) throw new StoreError('STORE_FAMILY_EXISTS', `family ${id} already exists`);
      s.insFamily.run(id, now);
    },
    addFamilyMember(family: FamilyId, endpoint: EndpointId, now: number): void {
      if (!s.getFamily.get(family)) throw new StoreError('STORE_UNKNOWN_FAMILY', `no family ${family}`);
      const ep = s.getEndpoint.get(endpoint);
      if (!ep) throw new StoreError('STORE_UNKNOWN_ENDPOINT', `no endpoint ${endpoint}`);
      if (ep.revoked === 1) throw new StoreError('STORE_REVOKED', `endpoint ${endpoint} is revoked`);
      if (ep.family_id === family) return;
      if (ep.family_id !== null) {
        throw new StoreError('STORE_OTHER_FAMILY', `endpoint ${endpoint} already belongs to another family`);
      }
      s.setFamily.run(family, endpoint);
      s.insChange.run('member-added', endpoint, family, now);
    },
    eraseFamily(family: FamilyId, now: number): { clips: number; endpoints: number } {
      if (!s.getFamily.get(family)) throw new StoreError('STORE_UNKNOWN_FAMILY', `no family ${family}`);
      const ids = s.familyIds.all(family).map((r) => r.id);
      // [PLK-12.5] Clips sent by a member, then clips addressed to a member (their deliveries cascade).
      const clips = s.eraseSent.run(family).changes + s.eraseReceived.run(family).changes;
      s.eraseSeq.run(family);
      s.eraseAccepted.run(family);
      s.eraseNonces.run(family);
      const endpoints = s.eraseEndpoints.run(family).changes;
      s.eraseFamily.run(family);
      s.forgetChangeFamily.run(family);
      for (const id of ids) {
        s.tombstone.run(id);
        s.insChange.run('erased', id, null, now);
      }
      return { clips, endpoints };
    },
    recordNonce(key: string, endpoint: EndpointId, expiresAt: number): void {
      s.insNonce.run(key, endpoint, expiresAt);
    },
    expireNonces(now: number): number {
      return s.expireNonces.run(now).changes;
    },
    setMeta(key: string, value: string): void {
      s.setMeta.run(key, value);
    },
    pruneRegistryChanges(before: number): number {
      return s.pruneChanges.run(before).changes;
    },
    acceptClip(
      clip: ClipRecord,
      recipients: readonly EndpointId[],
      receipted: readonly EndpointId[] = [],
    ): AcceptResult {
      // [PLK-8.1] [PLK-8.2] checked and advanced in the same transaction.
      const verdict = clipVerdict(s, clip.sender, clip.clipId, clip.sequence);
      if (verdict === 'retransmit') return { ok: true, retransmit: true };
      if (verdict !== 'new') return { ok: false, reason: verdict };
      // [PLK-12.9] receipted by every recipient in transit: only the id and sequence are stored.
      if (receipted.length < recipients.length) {
        s.insClip.run(
          clip.sender,
          clip.clipId,
          clip.sequence,
          clip.createdAt,
          clip.receivedAt,
          clip.envelope,
        );
        for (const r of recipients) {
          if (receipted.includes(r)) s.insDeliveryDone.run(r, clip.sender, clip.clipId, clip.receivedAt);
          else s.insDelivery.run(r, clip.sender, clip.clipId);
        }
      }
      s.insAccepted.run(clip.sender, clip.clipId, clip.sequence, clip.receivedAt);
      s.upsertSeq.run(clip.sender, clip.sequence);
      return { ok: true };
    },
    markDelivered(recipient: EndpointId, sender: EndpointId, clipId: string, at: number): DeliveryMark {
      if (s.deliver.run(at, recipient, sender, clipId).changes === 0) {
        // [PLK-6.2] A repeated receipt is idempotent. Once the clip is gone (every recipient
        // receipted it) its id is still remembered, and a late repeat is acknowledged too; a
        // receipt for a clip that is stored but not addressed to this recipient, or that was
        // never accepted, is unknown.
        if (s.deliveryExists.get(recipient, sender, clipId)) return 'already';
        if (s.clipExists.get(sender, clipId)) return 'unknown';
        return s.acceptedSeq.get(sender, clipId) ? 'already' : 'unknown';
      }
      // [PLK-12.5] The last receipt deletes the clip; its delivery rows cascade.
      if (!s.stillPending.get(sender, clipId)) s.delClip.run(sender, clipId);
      return 'delivered';
    },
    setAside(recipient: EndpointId, sender: EndpointId, clipId: string, at: number): boolean {
      if (s.deliver.run(at, recipient, sender, clipId).changes === 0) return false;
      if (!s.stillPending.get(sender, clipId)) s.delClip.run(sender, clipId);
      return true;
    },
    expireUndelivered(before: number): number {
      // Every clip still stored has at least one pending delivery: fully receipted clips are deleted.
      s.expireAccepted.run(before);
      return s.expire.run(before).changes;
    },
  };
}

/**
 * [PLK-8.1] [PLK-8.2] [PLK-12.9] What acceptClip decides for a clip on this connection's committed
 * state: a resend of an accepted clip is a retransmit (acknowledged again, never stored twice), its
 * id with another sequence a duplicate, a sequence not above the sender's last a replay.
 */
function clipVerdict(
  s: ReturnType<typeof prepareStatements>,
  sender: EndpointId,
  clipId: string,
  sequence: number,
): ClipVerdict {
  const row = s.verdict.get(sender, clipId, sender);
  const seen = row?.[0] ?? null;
  if (seen !== null) return seen === sequence ? 'retransmit' : 'duplicate';
  return sequence <= (row?.[1] ?? 0) ? 'replay' : 'new';
}

export type WriteOps = ReturnType<typeof createWriteOps>;
export type WriteOpName = keyof WriteOps;

/**
 * [PLK-12.5] Copies the WAL into the main file and truncates the WAL to zero bytes, so erased
 * rows (whose pages secure_delete has zeroed) survive in neither file. Returns false when another
 * connection's open read transaction kept part of the WAL alive.
 */
export function checkpointTruncate(db: Database.Database): boolean {
  for (let attempt = 0; attempt < 5; attempt++) {
    const rows = db.pragma('wal_checkpoint(TRUNCATE)') as {
      busy: number;
      log: number;
      checkpointed: number;
    }[];
    const r = rows[0];
    if (r && r.busy === 0) return true;
  }
  return false;
}

/**
 * Runs `jobs` in one IMMEDIATE transaction (one fsync with synchronous=FULL; none with NORMAL, where the caller syncs), each in its own
 * savepoint so one refused write never undoes another. Throws only when the commit itself failed.
 */
export function commitBatch<J>(
  db: Database.Database,
  jobs: readonly J[],
  run: (job: J) => unknown,
): { ok: boolean; value: unknown }[] {
  const outcomes: { ok: boolean; value: unknown }[] = new Array(jobs.length);
  const one = db.transaction((job: J) => run(job)); // a SAVEPOINT when nested
  db.transaction(() => {
    for (let i = 0; i < jobs.length; i++) {
      try {
        outcomes[i] = { ok: true, value: one(jobs[i]!) };
      } catch (err) {
        outcomes[i] = { ok: false, value: err };
      }
    }
  }).immediate();
  return outcomes;
}

type WriteArgs<K extends WriteOpName> = Parameters<WriteOps[K]>;
type WriteResult<K extends WriteOpName> = ReturnType<WriteOps[K]>;

/**
 * What both SQLite stores share: input checks at the boundary, reads on this thread's connection
 * (committed state only: a write is visible once its promise has resolved, and reads never force
 * a pending batch out early), and the GatewayStore methods. Subclasses decide how a checked write
 * op reaches the writer connection and when its promise resolves (after the durable commit).
 */
export abstract class SqliteStoreBase implements GatewayStore {
  protected closed = false;
  protected abstract readonly s: ReturnType<typeof prepareStatements>;

  /**
   * Runs one write op on the writer connection; resolves once its commit is durable [PLK-12.3].
   * `lazy`: the write need not start a commit of its own (AcceptOptions.lazy); a hint.
   */
  protected abstract write<K extends WriteOpName>(
    op: K,
    args: WriteArgs<K>,
    lazy?: boolean,
  ): Promise<WriteResult<K>>;
  abstract backup(path: string): Promise<void>;
  abstract close(): Promise<void>;

  protected read<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError('STORE_CLOSED', 'store is closed'));
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private checked<K extends WriteOpName>(
    check: () => void,
    op: K,
    args: WriteArgs<K>,
    lazy = false,
  ): Promise<WriteResult<K>> {
    try {
      check();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.write(op, args, lazy);
  }

  // ---- registry ---------------------------------------------------------------------------------

  addEndpoint(rec: NewEndpoint): Promise<void> {
    return this.checked(() => checkNewEndpoint(rec), 'addEndpoint', [rec]);
  }

  /** Registers many endpoints in one transaction (fleet provisioning); all or nothing. */
  addEndpoints(recs: readonly NewEndpoint[]): Promise<void> {
    return this.checked(
      () => {
        for (const r of recs) checkNewEndpoint(r);
      },
      'addEndpoints',
      [recs],
    );
  }

  getEndpoint(id: EndpointId): Promise<EndpointRecord | undefined> {
    return this.read(() => readEndpoint(this.s, id));
  }

  listEndpoints(): Promise<EndpointRecord[]> {
    return this.read(() => this.s.listEndpoints.all().map(toRecord));
  }

  revokeEndpoint(id: EndpointId, now: number): Promise<boolean> {
    return this.checked(
      () => {
        checkEndpointId(id);
        checkTime(now, 'now');
      },
      'revokeEndpoint',
      [id, now],
    );
  }

  isTombstoned(id: EndpointId): Promise<boolean> {
    return this.read(() => this.s.isTombstoned.get(id) !== undefined);
  }

  createFamily(id: FamilyId, now: number): Promise<void> {
    return this.checked(
      () => {
        parseFamilyId(id);
        checkTime(now, 'now');
      },
      'createFamily',
      [id, now],
    );
  }

  addFamilyMember(family: FamilyId, endpoint: EndpointId, now: number): Promise<void> {
    return this.checked(
      () => {
        parseFamilyId(family);
        checkEndpointId(endpoint);
        checkTime(now, 'now');
      },
      'addFamilyMember',
      [family, endpoint, now],
    );
  }

  familyMembers(family: FamilyId): Promise<EndpointRecord[]> {
    return this.read(() => this.s.members.all(family).map(toRecord));
  }

  listFamilies(): Promise<{ id: FamilyId; members: number }[]> {
    return this.read(() => readFamilies(this.s));
  }

  /** [PLK-12.5] The writer truncates the WAL right after the erasing commit. */
  eraseFamily(family: FamilyId, now: number): Promise<{ clips: number; endpoints: number }> {
    return this.checked(
      () => {
        parseFamilyId(family);
        checkTime(now, 'now');
      },
      'eraseFamily',
      [family, now],
    );
  }

  registryChanges(after: number, limit: number): Promise<RegistryChange[]> {
    try {
      checkTime(after, 'after');
      checkLimit(limit);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.read(() =>
      this.s.changes.all(after, limit).map((r) => ({
        seq: r.seq,
        kind: r.kind as RegistryChange['kind'],
        endpoint: r.endpoint as EndpointId,
        family: r.family as FamilyId | null,
        at: r.at,
      })),
    );
  }

  latestRegistryChange(): Promise<number> {
    return this.read(() => this.s.latestChange.get()?.seq ?? 0);
  }

  /**
   * Drops registry changes older than `before` (running gateways have long consumed them), except
   * the newest: latestRegistryChange never goes down, so roster versions only grow [PLK-4.6] and a
   * roster cached at a change number is never taken for current after a change was pruned.
   */
  pruneRegistryChanges(before: number): Promise<number> {
    return this.checked(() => checkTime(before, 'before'), 'pruneRegistryChanges', [before]);
  }

  recordNonce(nonce: StoredNonce): Promise<void> {
    return this.checked(
      () => {
        checkNonceKey(nonce.key);
        checkEndpointId(nonce.endpoint);
        checkTime(nonce.expiresAt, 'expiresAt');
      },
      'recordNonce',
      [nonce.key, nonce.endpoint, nonce.expiresAt],
    );
  }

  async loadNonces(now: number): Promise<StoredNonce[]> {
    checkTime(now, 'now');
    await this.write('expireNonces', [now]);
    return this.read(() =>
      this.s.nonces.all(now).map((r) => ({
        key: r.key,
        endpoint: r.endpoint as EndpointId,
        expiresAt: r.expires_at,
      })),
    );
  }

  getMeta(key: string): Promise<string | undefined> {
    return this.read(() => this.s.getMeta.get(key)?.value);
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.checked(
      () => {
        if (typeof key !== 'string' || key.length === 0 || key.length > 100) throw new TypeError('meta key');
        if (typeof value !== 'string' || value.length > 10_000) throw new TypeError('meta value');
      },
      'setMeta',
      [key, value],
    );
  }

  // ---- clips ------------------------------------------------------------------------------------

  lastSequence(sender: EndpointId): Promise<number> {
    return this.read(() => this.s.lastSeq.get(sender)?.last_seq ?? 0);
  }

  acceptClip(
    clip: ClipRecord,
    recipients: readonly EndpointId[],
    opts?: AcceptOptions,
  ): Promise<AcceptResult> {
    const receipted = opts?.receipted ?? [];
    return this.checked(
      () => {
        checkClip(clip, recipients);
        checkReceipted(recipients, receipted);
      },
      'acceptClip',
      [clip, recipients, receipted],
      opts?.lazy === true,
    );
  }

  /** [PLK-12.9] On this thread's connection: committed state only. */
  clipVerdict(sender: EndpointId, clipId: string, sequence: number): ClipVerdict {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'store is closed');
    return clipVerdict(this.s, sender, clipId, sequence);
  }

  pendingFor(recipient: EndpointId, limit: number): Promise<PendingDelivery[]> {
    try {
      checkLimit(limit);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.read(() => readPending(this.s, recipient, limit));
  }

  markDelivered(
    recipient: EndpointId,
    sender: EndpointId,
    clipId: string,
    at: number,
  ): Promise<DeliveryMark> {
    return this.checked(() => checkDelivered(recipient, sender, clipId, at), 'markDelivered', [
      recipient,
      sender,
      clipId,
      at,
    ]);
  }

  setAside(recipient: EndpointId, sender: EndpointId, clipId: string, at: number): Promise<boolean> {
    return this.checked(() => checkDelivered(recipient, sender, clipId, at), 'setAside', [
      recipient,
      sender,
      clipId,
      at,
    ]);
  }

  expireUndelivered(before: number): Promise<number> {
    return this.checked(() => checkTime(before, 'before'), 'expireUndelivered', [before]);
  }

  backlog(): Promise<number> {
    return this.read(() => this.s.backlog.get()?.n ?? 0);
  }
}

/**
 * GatewayStore on one SQLite file. Writes are queued and committed together in one IMMEDIATE
 * transaction per event-loop turn (each write in its own savepoint, so one refused write never
 * undoes another); every write promise resolves only after that commit is durable [PLK-12.3].
 * Writes are applied in call order, so checks such as the sequence number see every earlier write.
 */
export class SqliteStore extends SqliteStoreBase {
  readonly db: Database.Database;
  readonly path: string;
  private readonly maxBatch: number;
  private queue: Job[] = [];
  private scheduled = false;
  private readonly threadSync: boolean;
  private readonly commitWindowMs: number;
  private lastCommitAt = Number.NEGATIVE_INFINITY;
  /** A queued write that asked for a commit (not only receipts riding along). */
  private eagerQueued = false;
  private commits = 0;
  private committedJobs = 0;
  private lazyTimer: NodeJS.Timeout | undefined;
  /** Committed but not yet durable: settled once the WAL sync that covers them completes. */
  private unsynced: { jobs: Job[]; outcomes: { ok: boolean; value: unknown }[] }[] = [];
  private syncing = false;
  private syncIdle: (() => void)[] = [];
  private walFd: number | undefined;
  private walIno = 0;
  /** A failed fsync: what was written may not be on disk, and nothing more will be acknowledged. */
  private syncError: StoreError | undefined;
  /** WAL descriptors replaced by a reopen: closed with the store, never while SQLite has the file open. */
  private retiredFds: number[] = [];
  protected readonly s: ReturnType<typeof prepareStatements>;
  private readonly ops: WriteOps;
  /** The checkpoint thread (`checkpoint: 'thread'`), until it exits; then SQLite's own checkpoints again. */
  private checkpointer: Worker | undefined;
  private checkpointerExited: Promise<void> = Promise.resolve();
  /** Checkpoints the thread made that copied frames, and their total time (PLK_STORE_TRACE). */
  checkpoints = { count: 0, ms: 0, maxMs: 0 };

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    super();
    this.path = path;
    this.maxBatch = opts.maxBatch ?? 512;
    this.db = openDatabase(path, opts.busyTimeoutMs ?? 5000);
    migrate(this.db, MIGRATIONS);
    this.s = prepareStatements(this.db);
    this.ops = createWriteOps(this.db, this.s);
    // [PLK-12.3] `thread`: commits write their WAL frames without an fsync (synchronous=NORMAL);
    // the store makes them durable itself with fdatasync on the WAL from libuv's thread pool
    // (syncWal) and settles a write only after that. The event loop never waits for the disk, and
    // every write made while one sync runs shares the next commit and sync.
    this.threadSync = (opts.sync ?? ENV_SYNC) === 'thread';
    this.commitWindowMs = opts.commitWindowMs ?? ENV_WINDOW ?? DEFAULT_COMMIT_WINDOW_MS;
    if (this.threadSync) this.db.pragma('synchronous = NORMAL');
    if ((opts.checkpoint ?? ENV_CHECKPOINT ?? 'inline') === 'thread') this.startCheckpointer(opts);
  }

  /** Moves checkpoints to a worker thread (SqliteStoreOptions.checkpoint). */
  private startCheckpointer(opts: SqliteStoreOptions): void {
    const setup: CheckpointerSetup = {
      path: this.path,
      busyTimeoutMs: opts.busyTimeoutMs ?? 5000,
      intervalMs: CHECKPOINT_INTERVAL_MS,
    };
    this.db.pragma('wal_autocheckpoint = 0');
    const worker = startWorker(import.meta.url, 'checkpointer', './sqlite-writer-boot.mjs', {
      workerData: setup,
    });
    worker.unref();
    this.checkpointer = worker;
    worker.on('message', (m: CheckpointerReply) => {
      if (m.t !== 'ckpt') return;
      this.checkpoints.count++;
      this.checkpoints.ms += m.ms;
      this.checkpoints.maxMs = Math.max(this.checkpoints.maxMs, m.ms);
    });
    // A thread that fails to start or dies leaves the WAL to SQLite's own checkpoints again: the
    // log must never grow without bound.
    worker.on('error', () => {});
    this.checkpointerExited = new Promise((resolve) => {
      worker.once('exit', () => {
        this.checkpointer = undefined;
        if (!this.closed) this.db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
        resolve();
      });
    });
  }

  // ---- group commit ---------------------------------------------------------------------------

  protected write<K extends WriteOpName>(op: K, args: WriteArgs<K>, lazy = false): Promise<WriteResult<K>> {
    const fn = this.ops[op] as (...a: WriteArgs<K>) => WriteResult<K>;
    const run = () => fn(...args);
    if (lazy || LAZY_OPS.has(op)) return this.enqueue(run, true);
    if (op !== 'eraseFamily') return this.enqueue(run);
    // [PLK-12.5] no erased byte may linger in the WAL after the erasing commit.
    return this.enqueue(run).then((r) => {
      this.checkpointTruncate();
      return r;
    });
  }

  /**
   * Queues a write for the next group commit. A `lazy` write (a receipt) does not ask for a commit
   * of its own: it joins the next one another write asks for, or one within LAZY_COMMIT_MS — its
   * promise still resolves only once it is durable, so receipts stop costing an fsync each.
   */
  private enqueue<T>(run: () => T, lazy = false): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError('STORE_CLOSED', 'store is closed'));
    if (this.syncError) return Promise.reject(this.syncError);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!lazy) this.eagerQueued = true;
      if (this.queue.length >= this.maxBatch) this.flush(true);
      else if (!lazy) this.scheduleFlush();
      else if (!this.scheduled && !this.lazyTimer) {
        this.lazyTimer = setTimeout(() => {
          this.lazyTimer = undefined;
          this.flush(true);
        }, LAZY_COMMIT_MS);
      }
    });
  }

  /**
   * The next turn commits the queue — unless a WAL sync is running: then the writes wait for it
   * and share one transaction and one sync when it ends (one commit and one sync in flight at a
   * time, so the per-commit cost is shared by everything that arrived during the last sync).
   */
  private scheduleFlush(): void {
    if (this.scheduled || this.syncing) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      this.flush(false);
    };
    // Commit window: at most one commit per `commitWindowMs` while writes keep coming, so a
    // moderate rate shares commits too (each costs ~0.45 ms of CPU here, docs/LOADTEST.md); an
    // isolated write still commits on the next turn.
    const wait = this.commitWindowMs - (performance.now() - this.lastCommitAt);
    if (wait >= 1) setTimeout(run, wait);
    else setImmediate(run);
  }

  /**
   * Commits every queued write in one transaction, then settles them once the WAL is synced.
   * Without `force` it leaves the queue to the end of a running sync.
   */
  private flush(force: boolean): void {
    if (!force && this.syncing) return;
    if (this.lazyTimer) {
      clearTimeout(this.lazyTimer);
      this.lazyTimer = undefined;
    }
    this.eagerQueued = false;
    if (this.queue.length === 0) return;
    this.lastCommitAt = performance.now();
    const jobs = this.queue;
    this.queue = [];
    const tTrace = TRACE ? performance.now() : 0;
    let outcomes: { ok: boolean; value: unknown }[];
    try {
      outcomes = commitBatch(this.db, jobs, (job) => job.run());
    } catch (err) {
      for (const job of jobs) job.reject(err); // the commit itself failed: nothing is durable
      return;
    }
    if (TRACE) traceCommit(jobs.length, performance.now() - tTrace);
    this.unsynced.push({ jobs, outcomes });
    if (!this.threadSync)
      this.settleSynced(this.unsynced.splice(0)); // FULL: durable already
    else this.syncWal();
  }

  /**
   * [PLK-12.3] One fdatasync of the WAL for everything committed so far, off the event loop; the
   * writes it covers settle when it returns. Commits made meanwhile wait for the next one, which
   * starts as soon as this one ends: at most one sync runs, and each covers all commits before it.
   */
  private syncWal(): void {
    if (this.syncing || this.unsynced.length === 0) {
      if (!this.syncing) for (const idle of this.syncIdle.splice(0)) idle();
      return;
    }
    const groups = this.unsynced;
    this.unsynced = [];
    let fd: number | null;
    try {
      fd = this.walDescriptor();
    } catch (err) {
      this.failSync(groups, err);
      return;
    }
    if (fd === null) {
      // No WAL at all: SQLite checkpointed every frame into the database and synced it.
      this.settleSynced(groups);
      return;
    }
    this.syncing = true;
    fdatasync(fd, (err) => {
      this.syncing = false;
      if (err) {
        this.failSync(groups, err);
        return;
      }
      this.settleSynced(groups);
    });
  }

  private settleSynced(groups: { jobs: Job[]; outcomes: { ok: boolean; value: unknown }[] }[]): void {
    this.commits++;
    for (const { jobs, outcomes } of groups) {
      this.committedJobs += jobs.length;
      for (let i = 0; i < jobs.length; i++) {
        const o = outcomes[i]!;
        if (o.ok) jobs[i]!.resolve(o.value);
        else jobs[i]!.reject(o.value);
      }
    }
    this.syncWal();
    // Writes that arrived during the sync: their commit now, their sync next.
    if (!this.syncing && this.eagerQueued) this.flush(false);
  }

  /**
   * The WAL file, opened once and kept open for the life of the store (closing a second descriptor
   * of a file SQLite locks would drop its locks; the WAL is not locked, but it is cheap to be safe),
   * reopened only if the path now names another file.
   */
  private walDescriptor(): number | null {
    const walPath = `${this.path}-wal`;
    const st = statSync(walPath, { throwIfNoEntry: false });
    if (!st) return null;
    if (this.walFd !== undefined && st.ino === this.walIno) return this.walFd;
    const fd = openSync(walPath, 'r');
    if (this.walFd !== undefined) this.retiredFds.push(this.walFd);
    this.walFd = fd;
    this.walIno = fstatSync(fd).ino;
    return fd;
  }

  /**
   * A failed fsync may have lost the pages it was writing, and a retry can report success for pages
   * that never reached the disk: no write it covered is acknowledged, and the store takes no more.
   */
  private failSync(groups: { jobs: Job[] }[], cause: unknown): void {
    this.syncError = new StoreError(
      'STORE_SYNC_FAILED',
      `store: the WAL could not be synced to disk (${String(cause)})`,
      {
        cause,
      },
    );
    for (const { jobs } of groups) for (const job of jobs) job.reject(this.syncError);
    for (const { jobs } of this.unsynced.splice(0)) for (const job of jobs) job.reject(this.syncError);
    for (const job of this.queue.splice(0)) job.reject(this.syncError);
    for (const idle of this.syncIdle.splice(0)) idle();
  }

  /** Resolves when every commit made so far is durable (or has failed). */
  private synced(): Promise<void> {
    if (!this.syncing && this.unsynced.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.syncIdle.push(resolve));
  }

  /** Durable syncs so far and the writes they covered (group-commit size = jobs / commits). */
  commitStats(): { commits: number; jobs: number } {
    return { commits: this.commits, jobs: this.committedJobs };
  }

  /** See `checkpointTruncate(db)`. */
  checkpointTruncate(): boolean {
    if (checkpointTruncate(this.db)) return true;
    if (!this.checkpointer) return false;
    // The checkpoint thread may hold the checkpoint for a few ms: wait for it (an erase is rare,
    // and no erased byte may stay in the WAL [PLK-12.5]).
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (let waited = 0; waited < 5000; waited += 5) {
      Atomics.wait(pause, 0, 0, 5);
      if (checkpointTruncate(this.db)) return true;
    }
    return false;
  }

  /** Online, consistent copy (works while other connections write); created exclusively with mode 0600. */
  async backup(path: string): Promise<void> {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'store is closed');
    this.flush(true);
    await backupTo(this.db, path);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush(true);
    this.closed = true;
    await this.synced();
    // The checkpoint thread's connection closes first, so the last one — this — checkpoints the
    // whole WAL and removes it, as without the thread.
    const worker = this.checkpointer;
    if (worker) {
      worker.postMessage({ t: 'close' } satisfies CheckpointerRequest);
      const timer = setTimeout(() => void worker.terminate(), 5000);
      await this.checkpointerExited;
      clearTimeout(timer);
    }
    this.db.close();
    for (const fd of [...this.retiredFds, ...(this.walFd === undefined ? [] : [this.walFd])]) closeSync(fd);
    this.retiredFds = [];
    this.walFd = undefined;
  }
}

// ---- helpers shared with the worker-thread store (sqlite-worker.ts) ---------------------------------

export function readEndpoint(
  s: ReturnType<typeof prepareStatements>,
  id: EndpointId,
): EndpointRecord | undefined {
  const row = s.getEndpoint.get(id);
  return row ? toRecord(row) : undefined;
}

export function readFamilies(s: ReturnType<typeof prepareStatements>): { id: FamilyId; members: number }[] {
  return s.families.all().map((r) => ({ id: r.id as FamilyId, members: r.members }));
}

export function readPending(
  s: ReturnType<typeof prepareStatements>,
  recipient: EndpointId,
  limit: number,
): PendingDelivery[] {
  // Most subscribes find nothing: the index probe costs ~3 µs here, the join that reads the
  // envelopes ~20 µs even when it returns no row (measured; it runs on every connect).
  if (!s.hasPending.get(recipient)) return [];
  return s.pending.all(recipient, limit).map((r) => ({
    recipient,
    sender: r.sender as EndpointId,
    clipId: r.clip_id,
    receivedAt: r.received_at,
    envelope: view(r.envelope),
  }));
}

export function checkDelivered(recipient: EndpointId, sender: EndpointId, clipId: string, at: number): void {
  checkEndpointId(recipient, 'recipient');
  checkEndpointId(sender, 'sender');
  checkClipId(clipId);
  checkTime(at, 'at');
}

export async function backupTo(db: Database.Database, path: string): Promise<void> {
  closeSync(openSync(path, 'wx', 0o600)); // refuses to overwrite; SQLite fills the empty file
  await db.backup(path);
  chmodSync(path, 0o600);
}

export { MIGRATIONS, toRecord };

/** Opens DIR/gateway.db (DIR created with mode 0700, the file with 0600). */
export function openSqliteStore(dir: string, opts: SqliteStoreOptions = {}): SqliteStore {
  ensurePrivateDir(dir);
  return new SqliteStore(join(dir, STORE_FILE), opts);
}
