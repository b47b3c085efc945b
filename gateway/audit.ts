// Append-only, hash-chained audit log in its own SQLite file, with Ed25519-signed head anchors [PLK-12.2].
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { ByteWriter, bytesEqual, concatBytes, fromHex, toHex, utf8 } from '../shared/bytes.ts';
import { type CryptoSuite, defaultCrypto, sha256 } from '../shared/crypto.ts';
import { isEndpointId, type PrivateIdentity } from '../shared/identity.ts';
import { isJsonObject, type JsonValue, parseJson } from '../shared/json.ts';
import type { Clock } from '../shared/types.ts';
import type { AuditEvent, AuditLog, AuditVerifyResult } from './interfaces.ts';
import { ensurePrivateDir, migrateDatabase, openDatabase } from './store/sqlite.ts';

/*
 * Why its own file (DIR/audit.db) rather than a table in gateway.db:
 * - gateway.db is where data is erased (secure_delete, WAL truncation on family erase); the audit
 *   log is never erased or rewritten, and must not be caught up in that churn or in store restores;
 * - a separate file can be shipped, backed up, or made append-only/WORM by the operating system
 *   independently of the (much larger, much busier) clip store;
 * - its write lock is separate, so audit appends never queue behind clip transactions.
 *
 * What the chain and the anchors detect, and what they cannot:
 * - every row stores hash = SHA-256(prev_hash || canonical row bytes): editing any field of a row
 *   breaks that row's hash; deleting a middle row leaves a sequence gap and breaks the chain;
 * - the head (seq, hash) is signed with the gateway's Ed25519 key every `anchorEvery` rows and on
 *   close, and stored both in the `anchors` table and in DIR/audit.anchor; deleting the last rows,
 *   or editing rows and recomputing every later hash, then contradicts the newest signed anchor;
 * - NOT detected: truncating or rewriting rows appended after the newest anchor when the anchor
 *   table and file are rolled back together with them (only the rows since the last anchor are at
 *   risk); deleting both anchor copies and all rows (an empty log verifies as empty); anything done
 *   by someone holding the gateway's signing key, who can re-sign a rewritten history. Shipping
 *   anchors off the machine (the CLI prints them) closes the first two gaps.
 * Rows contain event kinds, pseudonymous ids, codes and counts only — never keys or plaintext.
 */

export const AUDIT_FILE = 'audit.db';
export const ANCHOR_FILE = 'audit.anchor';
const ANCHOR_CONTEXT = utf8('plushlink/v1/audit-anchor\0');
const GENESIS = new Uint8Array(32);
const MAX_STRING = 160;
const MAX_KEYS = 32;
const KIND_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const KEY_RE = /^[A-Za-z0-9_.-]{1,64}$/;

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE audit (
     seq INTEGER PRIMARY KEY NOT NULL,
     at INTEGER NOT NULL,
     kind TEXT NOT NULL,
     endpoint TEXT,
     detail TEXT NOT NULL,
     prev_hash BLOB NOT NULL,
     hash BLOB NOT NULL
   );
   CREATE TABLE anchors (
     seq INTEGER PRIMARY KEY NOT NULL,
     hash BLOB NOT NULL,
     at INTEGER NOT NULL,
     signature BLOB
   );
   -- Guards against accidents, not attackers (who can drop them): the hash chain is the real check.
   CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
   CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`,
];

export type AuditSigner = (bytes: Uint8Array) => Uint8Array;
export type AuditVerifier = (bytes: Uint8Array, signature: Uint8Array) => boolean;

export interface SqliteAuditLogOptions {
  /** Signs anchors (the gateway's Ed25519 key); without it anchors are stored unsigned. */
  signer?: AuditSigner;
  /** Checks anchor signatures; without it only the anchors' hashes are compared. */
  verifier?: AuditVerifier;
  /** Rows between signed anchors (default 1000); the head is also anchored on close. */
  anchorEvery?: number;
  /** Where the latest anchor is mirrored (default DIR/audit.anchor); null to disable. */
  anchorFile?: string | null;
  clock?: Clock;
  busyTimeoutMs?: number;
}

export interface AuditAnchor {
  readonly seq: number;
  readonly hash: string;
  readonly at: number;
  readonly signature: string | null;
}

export interface AuditVerifyReport extends AuditVerifyResult {
  /** Highest sequence number covered by an anchor that matched (0 when none). */
  readonly anchoredSeq: number;
  /** Whether a verifier checked the anchors' signatures. */
  readonly signaturesChecked: boolean;
}

/** Signer and verifier for anchors from the gateway's identity. */
export function gatewayAuditKeys(
  identity: PrivateIdentity,
  crypto: CryptoSuite = defaultCrypto(),
): { signer: AuditSigner; verifier: AuditVerifier } {
  return {
    signer: (b) => crypto.sign(identity.signSeed, b),
    verifier: (b, s) => crypto.verify(identity.signPublicKey, b, s),
  };
}

/** Verifier for anchors from the gateway's public signing key (operators without the private key). */
export function auditVerifierFor(
  signPublicKey: Uint8Array,
  crypto: CryptoSuite = defaultCrypto(),
): AuditVerifier {
  return (b, s) => crypto.verify(signPublicKey, b, s);
}

/** Keeps only strings (truncated), finite numbers and booleans; anything else is replaced by a marker. */
export function sanitizeDetail(detail: AuditEvent['detail']): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  if (!detail || typeof detail !== 'object') return out;
  const keys = Object.keys(detail).sort();
  let n = 0;
  for (const rawKey of keys) {
    if (n >= MAX_KEYS) {
      out._truncated = true;
      break;
    }
    const v: unknown = (detail as Record<string, unknown>)[rawKey];
    if (v === undefined) continue;
    const key = KEY_RE.test(rawKey) ? rawKey : rawKey.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || '_';
    if (typeof v === 'string') out[key] = v.length > MAX_STRING ? `${v.slice(0, MAX_STRING)}…` : v;
    else if (typeof v === 'number') out[key] = Number.isFinite(v) ? v : String(v);
    else if (typeof v === 'boolean') out[key] = v;
    else
      out[key] =
        `[dropped ${v === null ? 'null' : typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v}]`;
    n++;
  }
  return out;
}

/** Canonical JSON text of a detail object: keys in sorted order, no whitespace. */
export function canonicalDetail(detail: Record<string, string | number | boolean>): string {
  const sorted: Record<string, string | number | boolean> = {};
  for (const k of Object.keys(detail).sort()) sorted[k] = detail[k]!;
  return JSON.stringify(sorted);
}

/** The bytes a row's hash covers: `[seq,at,"kind",endpoint|null,{detail}]` as UTF-8. */
export function canonicalRow(
  seq: number,
  at: number,
  kind: string,
  endpoint: string | null,
  detail: string,
): Uint8Array {
  return utf8(`${JSON.stringify([seq, at, kind, endpoint]).slice(0, -1)},${detail}]`);
}

export function rowHash(prevHash: Uint8Array, row: Uint8Array): Uint8Array {
  return sha256(concatBytes(prevHash, row));
}

/** Bytes an anchor signature covers: context || u64 seq || u64 at || hash. */
export function anchorBytes(seq: number, at: number, hash: Uint8Array): Uint8Array {
  const w = new ByteWriter(ANCHOR_CONTEXT.length + 8 + 8 + 32);
  w.raw(ANCHOR_CONTEXT).u64(seq).u64(at).raw(hash);
  return w.bytes;
}

interface AuditRow {
  seq: number;
  at: number;
  kind: string;
  endpoint: string | null;
  detail: string;
  prev_hash: Buffer;
  hash: Buffer;
}

interface AnchorRow {
  seq: number;
  hash: Buffer;
  at: number;
  signature: Buffer | null;
}

interface Pending {
  event: { at: number; kind: string; endpoint: string | null; detail: string };
  resolve: () => void;
  reject: (err: unknown) => void;
}

function auditStatements(db: Database.Database) {
  return {
    head: db.prepare<[], { seq: number; hash: Buffer }>(
      'SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1',
    ),
    insert: db.prepare<[number, number, string, string | null, string, Uint8Array, Uint8Array]>(
      'INSERT INTO audit (seq, at, kind, endpoint, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    rows: db.prepare<[], AuditRow>('SELECT * FROM audit ORDER BY seq'),
    anchor: db.prepare<[number, Uint8Array, number, Uint8Array | null]>(
      // An anchor, once written, is evidence: a later head at the same row number never replaces it.
      'INSERT OR IGNORE INTO anchors (seq, hash, at, signature) VALUES (?, ?, ?, ?)',
    ),
    anchors: db.prepare<[], AnchorRow>('SELECT * FROM anchors ORDER BY seq'),
  };
}

export class SqliteAuditLog implements AuditLog {
  readonly db: Database.Database;
  private readonly opts: SqliteAuditLogOptions;
  private readonly anchorEvery: number;
  private readonly clock: Clock;
  private queue: Pending[] = [];
  private scheduled = false;
  private closed = false;
  /** Head written by this instance: verify() also checks the table still ends with it. */
  private myHead: { seq: number; hash: Uint8Array } | undefined;
  private readonly s: ReturnType<typeof auditStatements>;

  constructor(path: string, opts: SqliteAuditLogOptions = {}) {
    this.opts = opts;
    this.anchorEvery = opts.anchorEvery ?? 1000;
    if (!Number.isInteger(this.anchorEvery) || this.anchorEvery < 1)
      throw new RangeError('anchorEvery must be a positive integer');
    this.clock = opts.clock ?? Date.now;
    this.db = openDatabase(path, opts.busyTimeoutMs ?? 5000);
    migrateDatabase(this.db, MIGRATIONS);
    this.s = auditStatements(this.db);
  }

  private get anchorPath(): string | null {
    if (this.opts.anchorFile === null) return null;
    return this.opts.anchorFile ?? `${this.db.name.replace(/\.db$/, '')}.anchor`;
  }

  /** [PLK-12.2] Appends one event; resolves once the row (and its chain link) is durable. */
  append(event: AuditEvent): Promise<void> {
    if (this.closed) return Promise.reject(new Error('audit log is closed'));
    let row: Pending['event'];
    try {
      row = this.normalize(event);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ event: row, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  private normalize(event: AuditEvent): Pending['event'] {
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

  /** Writes every queued event in one transaction, chained on the head read inside the write lock. */
  private flush(): void {
    if (this.queue.length === 0) return;
    const jobs = this.queue;
    this.queue = [];
    let anchor: AuditAnchor | undefined;
    try {
      this.db
        .transaction(() => {
          // Read the head inside the IMMEDIATE transaction: another process (the CLI beside a
          // running gateway) may have appended since our last write.
          const head = this.s.head.get();
          let seq = head?.seq ?? 0;
          let prev: Uint8Array = head ? head.hash : GENESIS;
          for (const { event: e } of jobs) {
            seq++;
            const hash = rowHash(prev, canonicalRow(seq, e.at, e.kind, e.endpoint, e.detail));
            this.s.insert.run(seq, e.at, e.kind, e.endpoint, e.detail, prev, hash);
            prev = hash;
            if (seq % this.anchorEvery === 0) anchor = this.writeAnchor(seq, hash);
          }
          this.myHead = { seq, hash: prev };
        })
        .immediate();
    } catch (err) {
      for (const j of jobs) j.reject(err);
      return;
    }
    if (anchor) this.mirrorAnchor(anchor);
    for (const j of jobs) j.resolve();
  }

  private writeAnchor(seq: number, hash: Uint8Array): AuditAnchor {
    const at = Math.floor(this.clock());
    const signature = this.opts.signer ? this.opts.signer(anchorBytes(seq, at, hash)) : null;
    this.s.anchor.run(seq, hash, at, signature);
    return { seq, hash: toHex(hash), at, signature: signature ? toHex(signature) : null };
  }

  /**
   * Mirrors the anchor to the anchor file (atomic rename), unless the file already holds one for
   * the same or a later row: after rows were deleted a new head may reach an anchored row number
   * again, and the old signed anchor must stay to show it.
   */
  private mirrorAnchor(anchor: AuditAnchor): void {
    const path = this.anchorPath;
    if (!path) return;
    const current = readAnchorFile(path);
    if (current && current.seq >= anchor.seq) return;
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ plushlink: 'audit-anchor', v: 1, ...anchor })}\n`, {
      mode: 0o600,
    });
    renameSync(tmp, path);
  }

  /** Signs (when a signer is set) and stores the current head; returns it, or undefined for an empty log. */
  async anchor(): Promise<AuditAnchor | undefined> {
    this.flush();
    const a = this.db
      .transaction(() => {
        const head = this.s.head.get();
        return head ? this.writeAnchor(head.seq, head.hash) : undefined;
      })
      .immediate();
    if (a) this.mirrorAnchor(a);
    return a;
  }

  /** Recomputes the whole chain and checks it against every stored anchor [PLK-12.2]. */
  async verify(): Promise<AuditVerifyReport> {
    this.flush();
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
    const anchors: { a: AuditAnchor; where: string }[] = this.s.anchors.all().map((a) => ({
      a: { seq: a.seq, hash: toHex(a.hash), at: a.at, signature: a.signature ? toHex(a.signature) : null },
      where: 'anchor table',
    }));
    const path = this.anchorPath;
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
    // Anchors first: one appended (by another process) after we read them is then inside the row snapshot.
    const wanted = new Set(anchors.map(({ a }) => a.seq));
    const hashes = new Map<number, Uint8Array>();
    let prev: Uint8Array = GENESIS;
    let expected = 1;
    for (const r of this.s.rows.iterate()) {
      rows++;
      if (r.seq !== expected) return fail(expected, `row ${expected} is missing (next row is ${r.seq})`);
      if (!bytesEqual(r.prev_hash, prev))
        return fail(r.seq, `row ${r.seq} does not chain to row ${r.seq - 1}`);
      const h = rowHash(prev, canonicalRow(r.seq, r.at, r.kind, r.endpoint, r.detail));
      if (!bytesEqual(h, r.hash)) return fail(r.seq, `row ${r.seq} was modified (hash mismatch)`);
      if (wanted.has(r.seq)) hashes.set(r.seq, h);
      prev = h;
      expected++;
    }
    const last = expected - 1;
    const checked = checkAnchors(anchors, hashes, last, verifier);
    if ('firstBadRow' in checked) return fail(checked.firstBadRow, checked.reason);
    return { ok: true, rows, anchoredSeq: checked.anchoredSeq, signaturesChecked };
  }

  /** Anchors the head, then copies the audit database online (exclusive create, mode 0600) and the anchor file. */
  async backup(path: string, anchorPath?: string): Promise<void> {
    // The copy carries an anchor for a row it is guaranteed to contain (rows are only appended, and
    // the copy is taken after this anchor), never a newer one another process may write meanwhile.
    const anchor = await this.anchor();
    writeFileSync(path, '', { flag: 'wx', mode: 0o600 });
    await this.db.backup(path);
    if (anchorPath && anchor) {
      writeFileSync(anchorPath, `${JSON.stringify({ plushlink: 'audit-anchor', v: 1, ...anchor })}\n`, {
        flag: 'wx',
        mode: 0o600,
      });
    }
  }

  /** Anchors the head (signed when a signer is set) and closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    if (this.myHead) await this.anchor();
    this.closed = true;
    this.db.close();
  }
}

/** An anchor file is one line of about 300 bytes; anything much larger is not one. */
const MAX_ANCHOR_FILE_BYTES = 4096;

/**
 * [PLK-12.2] Checks the anchors against the recomputed chain: each signed one against the gateway
 * key (when `verifier` is given), none beyond the last row (rows deleted), each equal to the row's
 * hash (history rewritten). `hashes` holds the recomputed hash of every anchored row up to `last`.
 * Shared by the SQLite and the PostgreSQL audit logs.
 */
export function checkAnchors(
  anchors: readonly { a: AuditAnchor; where: string }[],
  hashes: ReadonlyMap<number, Uint8Array>,
  last: number,
  verifier: AuditVerifier | undefined,
): { anchoredSeq: number } | { firstBadRow: number; reason: string } {
  const fail = (firstBadRow: number, reason: string) => ({ firstBadRow, reason });
  let anchoredSeq = 0;
  for (const { a, where } of anchors) {
    const hash = fromHex(a.hash, 'anchor hash', 32);
    if (verifier && a.signature !== null) {
      if (!verifier(anchorBytes(a.seq, a.at, hash), fromHex(a.signature, 'anchor signature'))) {
        return fail(Math.min(a.seq, last + 1), `${where}: anchor at row ${a.seq} has an invalid signature`);
      }
    }
    if (a.seq > last) {
      return fail(
        last + 1,
        `log ends at row ${last} but the ${where} anchors row ${a.seq}: rows were deleted`,
      );
    }
    const h = hashes.get(a.seq);
    if (!h || !bytesEqual(h, hash))
      return fail(a.seq, `row ${a.seq} differs from the ${where} anchor: history rewritten`);
    if (a.signature !== null || !verifier) anchoredSeq = Math.max(anchoredSeq, a.seq);
  }
  return { anchoredSeq };
}

/**
 * Reads an anchor file; undefined when missing or malformed. Bounded before it is read (a regular
 * file of at most 4 KiB: a FIFO or a huge file at the path can neither block nor exhaust the gateway)
 * and parsed strictly (shared/json.ts: no duplicate or prototype keys, numbers must be safe integers).
 */
export function readAnchorFile(path: string): AuditAnchor | undefined {
  let obj: JsonValue;
  try {
    const st = statSync(path);
    if (!st.isFile() || st.size > MAX_ANCHOR_FILE_BYTES) return undefined;
    obj = parseJson(readFileSync(path, 'utf8'), {
      what: 'audit anchor file',
      maxBytes: MAX_ANCHOR_FILE_BYTES,
      maxDepth: 2,
    });
  } catch {
    return undefined;
  }
  if (!isJsonObject(obj)) return undefined;
  const { plushlink, v, seq, at, hash, signature: sig } = obj;
  if (plushlink !== 'audit-anchor' || v !== 1) return undefined;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  if (typeof at !== 'number' || !Number.isSafeInteger(at)) return undefined;
  if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) return undefined;
  if (sig !== null && (typeof sig !== 'string' || !/^[0-9a-f]{128}$/.test(sig))) return undefined;
  return { seq, at, hash, signature: sig };
}

/** Opens DIR/audit.db (DIR 0700, file 0600) with DIR/audit.anchor as the anchor mirror. */
export function openSqliteAuditLog(dir: string, opts: SqliteAuditLogOptions = {}): SqliteAuditLog {
  ensurePrivateDir(dir);
  return new SqliteAuditLog(join(dir, AUDIT_FILE), { anchorFile: join(dir, ANCHOR_FILE), ...opts });
}
