// Gateway administration (code and CLI): provisioning, families, revocation, erase, audit check, backup and restore; every action audited [PLK-12].
import {
  chmodSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import {
  IDENTITY_FILE,
  PRIVATE_KEY_FILE,
  readIdentity,
  readPrivateKey,
  writeKeyDir,
} from '../platform/keyfiles.ts';
import { toBase32, toHex } from '../shared/bytes.ts';
import { CodedError, PlushlinkError } from '../shared/errors.ts';
import {
  generateIdentity,
  identityToJson,
  type PrivateIdentity,
  type PublicIdentity,
  publicPart,
} from '../shared/identity.ts';
import { systemRandom } from '../shared/random.ts';
import type { EndpointId, RandomSource } from '../shared/types.ts';
import {
  ANCHOR_FILE,
  AUDIT_FILE,
  type AuditVerifyReport,
  auditVerifierFor,
  gatewayAuditKeys,
  openSqliteAuditLog,
  type SqliteAuditLog,
  type SqliteAuditLogOptions,
} from './audit.ts';
import { checkDataDir, DataDirError, GATEWAY_KEY_DIR, isEmptyDir } from './datadir.ts';
import type {
  AuditLog,
  AuditVerifyResult,
  EndpointRecord,
  EndpointRole,
  FamilyId,
  GatewayStore,
  NewEndpoint,
} from './interfaces.ts';
import { checkEndpointId, checkRole, parseFamilyId } from './store/common.ts';
import { openSqliteStore, type SqliteStore, STORE_FILE } from './store/sqlite.ts';

export { isFamilyId, parseFamilyId, StoreError } from './store/common.ts';

/** A refused administrative action: stable code, one-line message (printed as-is by the CLI). */
export class AdminError extends CodedError<string> {}

export interface AdminOptions {
  /** Wall-clock time of the action in ms (default Date.now()). */
  now?: number;
  random?: RandomSource;
}

const nowOf = (opts?: AdminOptions): number => Math.floor(opts?.now ?? Date.now());

/** "f" + base32 of 16 random bytes (26 chars): pseudonymous, carries no name or date. */
export function newFamilyId(random: RandomSource = systemRandom): FamilyId {
  const bytes = random(16);
  if (!(bytes instanceof Uint8Array) || bytes.length !== 16)
    throw new RangeError('random source must return 16 bytes');
  return `f${toBase32(bytes)}` as FamilyId;
}

function toNewEndpoint(id: PublicIdentity, createdAt: number): NewEndpoint {
  return {
    id: id.id,
    role: checkRole(id.role),
    signPublicKey: id.signPublicKey,
    boxPublicKey: id.boxPublicKey,
    createdAt,
  };
}

/**
 * [PLK-1] Generates an endpoint's key pairs, writes the private key ONLY into `keyDir` (mode 0600,
 * never overwriting an existing key) and registers the public identity. Returns the public identity.
 */
export async function provisionEndpoint(
  store: GatewayStore,
  audit: AuditLog,
  role: EndpointRole,
  keyDir: string,
  opts?: AdminOptions,
): Promise<PublicIdentity> {
  checkRole(role);
  const keyFile = join(keyDir, PRIVATE_KEY_FILE);
  if (existsSync(keyFile)) {
    throw new AdminError(
      'ADMIN_KEY_EXISTS',
      `${keyFile} already exists; refusing to overwrite a private key`,
    );
  }
  const identity = generateIdentity(role, opts?.random ?? systemRandom);
  const now = nowOf(opts);
  await writeKeyDir(keyDir, identity); // exclusive create: a concurrent writer cannot be clobbered either
  try {
    await store.addEndpoint(toNewEndpoint(identity, now));
  } catch (err) {
    rmSync(keyFile, { force: true });
    rmSync(join(keyDir, IDENTITY_FILE), { force: true });
    throw err;
  }
  await audit.append({ at: now, kind: 'endpoint.provisioned', endpoint: identity.id, detail: { role } });
  return publicPart(identity);
}

/**
 * [PLK-1.1] Registers an endpoint whose key pairs were made where they live and never come here
 * (the browser parent page, which shows its identity code [PLK-1.5]): public keys only. The id
 * must derive from the signing key (the parsers of identity files and codes check it); a known or
 * tombstoned id is refused by the store. Audited as `endpoint.registered`.
 */
export async function registerEndpoint(
  store: GatewayStore,
  audit: AuditLog,
  identity: PublicIdentity,
  opts?: AdminOptions & { source?: string },
): Promise<PublicIdentity> {
  checkRole(identity.role);
  const now = nowOf(opts);
  await store.addEndpoint(toNewEndpoint(identity, now));
  await audit.append({
    at: now,
    kind: 'endpoint.registered',
    endpoint: identity.id,
    detail: { role: identity.role, source: opts?.source ?? 'public-identity' },
  });
  return publicPart(identity);
}

/** What a bulk registration did: new endpoints and families, and endpoints already known (skipped). */
export interface BulkRegistration {
  readonly endpoints: number;
  readonly families: number;
  /** Already registered with the same keys (a re-run against the same gateway data). */
  readonly skipped: number;
  readonly ms: number;
}

/** One family of a bulk registration. */
export interface FamilyRegistration {
  /** Keep this pseudonymous id (a seeded fleet re-run finds its family again); fresh when absent. */
  readonly id?: FamilyId;
  readonly members: readonly PublicIdentity[];
}

/** Store reads and writes issued at once so that the SQLite store group-commits them. */
const BULK_CHUNK = 4096;

async function inChunks<T>(items: readonly T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += BULK_CHUNK)
    await Promise.all(items.slice(i, i + BULK_CHUNK).map(fn));
}

/**
 * New endpoints among `publics` (one transaction for all of them); endpoints already registered
 * with the same signing key are skipped, an id registered with another key is refused.
 */
async function registerNewEndpoints(
  store: GatewayStore,
  publics: readonly PublicIdentity[],
  now: number,
): Promise<PublicIdentity[]> {
  const existing: (EndpointRecord | undefined)[] = [];
  for (let i = 0; i < publics.length; i += BULK_CHUNK) {
    existing.push(
      ...(await Promise.all(publics.slice(i, i + BULK_CHUNK).map((p) => store.getEndpoint(p.id)))),
    );
  }
  const fresh: PublicIdentity[] = [];
  publics.forEach((p, i) => {
    const e = existing[i];
    if (!e) fresh.push(p);
    else if (toHex(e.signPublicKey) !== toHex(p.signPublicKey))
      throw new AdminError('ADMIN_KEY_CONFLICT', `endpoint ${p.id} is registered with other keys`);
  });
  await store.addEndpoints(fresh.map((p) => toNewEndpoint(p, now)));
  return fresh;
}

/**
 * Registers many endpoints and their families at once (simulated fleets, load tests): new
 * endpoints in one store transaction, families and memberships group-committed, ONE audit event
 * for the batch. Idempotent: endpoints registered with the same key and families that exist are
 * skipped, so a fleet can be registered again on every run. Private keys never come here.
 */
export async function registerFamilies(
  store: GatewayStore,
  audit: AuditLog,
  families: readonly FamilyRegistration[],
  opts?: AdminOptions & { source?: string },
): Promise<BulkRegistration> {
  const t0 = performance.now();
  const now = nowOf(opts);
  const random = opts?.random ?? systemRandom;
  const withIds = families.map((f) => ({ id: f.id ?? newFamilyId(random), members: f.members }));
  for (const f of withIds) {
    parseFamilyId(f.id);
    for (const m of f.members) checkRole(m.role);
  }
  const publics = withIds.flatMap((f) => f.members);
  const fresh = new Set((await registerNewEndpoints(store, publics, now)).map((p) => p.id));
  const known = new Set((await store.listFamilies()).map((f) => f.id));
  const newFamilies = withIds.filter((f) => !known.has(f.id));
  await inChunks(newFamilies, (f) => store.createFamily(f.id, now));
  const memberships = withIds.flatMap((f) =>
    f.members.filter((m) => fresh.has(m.id)).map((m) => ({ family: f.id, id: m.id })),
  );
  await inChunks(memberships, (m) => store.addFamilyMember(m.family, m.id, now));
  if (fresh.size > 0 || newFamilies.length > 0) {
    await audit.append({
      at: now,
      kind: 'endpoint.provisioned_bulk',
      detail: { count: fresh.size, families: newFamilies.length, source: opts?.source ?? 'admin' },
    });
  }
  return {
    endpoints: fresh.size,
    families: newFamilies.length,
    skipped: publics.length - fresh.size,
    ms: performance.now() - t0,
  };
}

/**
 * Provisions `n` endpoints without a family in one store transaction (benchmarks, tests): returns
 * their private identities in memory only — nothing secret is written anywhere. One audit event.
 */
export async function provisionMany(
  store: GatewayStore,
  audit: AuditLog,
  role: EndpointRole,
  n: number,
  random: RandomSource,
  opts?: AdminOptions,
): Promise<PrivateIdentity[]> {
  checkRole(role);
  if (!Number.isSafeInteger(n) || n < 0 || n > 1_000_000)
    throw new RangeError(`n must be an integer in [0, 1000000], got ${n}`);
  const now = nowOf(opts);
  const ids: PrivateIdentity[] = new Array(n);
  for (let i = 0; i < n; i++) ids[i] = generateIdentity(role, random);
  await store.addEndpoints(ids.map((id) => toNewEndpoint(id, now)));
  await audit.append({ at: now, kind: 'endpoint.provisioned_bulk', detail: { role, count: n, families: 0 } });
  return ids;
}

/** Creates a family with a fresh pseudonymous id and returns it. */
export async function createFamily(
  store: GatewayStore,
  audit: AuditLog,
  opts?: AdminOptions,
): Promise<FamilyId> {
  const id = newFamilyId(opts?.random ?? systemRandom);
  const now = nowOf(opts);
  await store.createFamily(id, now);
  await audit.append({ at: now, kind: 'family.created', detail: { family: id } });
  return id;
}

export async function addFamilyMember(
  store: GatewayStore,
  audit: AuditLog,
  family: FamilyId,
  endpoint: EndpointId,
  opts?: AdminOptions,
): Promise<void> {
  parseFamilyId(family);
  checkEndpointId(endpoint);
  const now = nowOf(opts);
  await store.addFamilyMember(family, endpoint, now);
  await audit.append({ at: now, kind: 'family.member_added', endpoint, detail: { family } });
}

/** Revokes an endpoint (it can no longer connect, and its id can never be registered again). */
export async function revoke(
  store: GatewayStore,
  audit: AuditLog,
  endpoint: EndpointId,
  opts?: AdminOptions,
): Promise<void> {
  checkEndpointId(endpoint);
  const now = nowOf(opts);
  if (!(await store.revokeEndpoint(endpoint, now)))
    throw new AdminError('ADMIN_UNKNOWN_ENDPOINT', `no endpoint ${endpoint}`);
  await audit.append({ at: now, kind: 'endpoint.revoked', endpoint });
}

export async function listEndpoints(
  store: GatewayStore,
  audit: AuditLog,
  opts?: AdminOptions,
): Promise<EndpointRecord[]> {
  const list = await store.listEndpoints();
  await audit.append({ at: nowOf(opts), kind: 'admin.endpoints_listed', detail: { count: list.length } });
  return list;
}

/** [PLK-12.5] Erases every trace of a family from the store (the audit log keeps only this event). */
export async function eraseFamily(
  store: GatewayStore,
  audit: AuditLog,
  family: FamilyId,
  opts?: AdminOptions,
): Promise<{ clips: number; endpoints: number }> {
  parseFamilyId(family);
  const now = nowOf(opts);
  const r = await store.eraseFamily(family, now);
  await audit.append({
    at: now,
    kind: 'family.erased',
    detail: { family, clips: r.clips, endpoints: r.endpoints },
  });
  return r;
}

/** [PLK-12.2] Verifies the audit chain and anchors, then records that a verification happened. */
export async function verifyAudit(audit: AuditLog, opts?: AdminOptions): Promise<AuditVerifyResult> {
  const r = await audit.verify();
  await audit.append({ at: nowOf(opts), kind: 'audit.verified', detail: { ok: r.ok, rows: r.rows } });
  return r;
}

interface BackupAudit {
  backup(path: string, anchorPath?: string): Promise<void>;
}

/** Copies `from` to the new file `to` (never overwriting) and narrows it to 0600. */
function copyPrivateFile(from: string, to: string): void {
  copyFileSync(from, to, constants.COPYFILE_EXCL);
  chmodSync(to, 0o600);
}

export interface BackupResult {
  readonly dir: string;
  readonly files: string[];
  /** The gateway whose key was copied (undefined when the data directory has no gateway key). */
  readonly gatewayId: EndpointId | undefined;
  /** True when the backup holds the gateway's PRIVATE key (DIR/gateway/endpoint.key, 0600). */
  readonly privateKey: boolean;
}

/** DATA/gateway of a SQLite store's data directory (SqliteStore and WorkerSqliteStore know their file). */
function keyDirOf(store: GatewayStore): string | undefined {
  const path = (store as { path?: unknown }).path;
  return typeof path === 'string' ? join(dirname(path), GATEWAY_KEY_DIR) : undefined;
}

/**
 * Online backup into the new directory `outDir` (0700, every file 0600): the gateway's identity
 * (gateway/endpoint.key and identity.json — its PRIVATE key: keep the backup as safe as the data
 * directory), gateway.db, audit.db and audit.anchor. Itself a valid data directory, restored with
 * `restore` (`plushlink restore`). Works while the gateway is running: each database is copied as
 * one consistent snapshot, so every clip acknowledged before the call is in the copy.
 * `gatewayKeyDir` defaults to DATA/gateway beside a SQLite store's file.
 */
export async function backup(
  store: GatewayStore,
  audit: AuditLog,
  outDir: string,
  opts?: AdminOptions & { gatewayKeyDir?: string },
): Promise<BackupResult> {
  if (existsSync(outDir) && (!statSync(outDir).isDirectory() || readdirSync(outDir).length > 0)) {
    throw new AdminError('ADMIN_BACKUP_EXISTS', `${outDir} already exists and is not an empty directory`);
  }
  const keyDir = opts?.gatewayKeyDir ?? keyDirOf(store);
  const key = keyDir && existsSync(join(keyDir, PRIVATE_KEY_FILE)) ? await readPrivateKey(keyDir) : undefined;
  if (key && key.role !== 'gateway') {
    throw new AdminError(
      'ADMIN_NOT_GATEWAY_KEY',
      `${keyDir}/${PRIVATE_KEY_FILE} is a ${key.role} key, not a gateway key`,
    );
  }
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  chmodSync(outDir, 0o700);
  const files: string[] = [];
  // The identity first: it never changes, and it is what signs the audit anchors copied below.
  if (key && keyDir) {
    const outKeys = join(outDir, GATEWAY_KEY_DIR);
    mkdirSync(outKeys, { mode: 0o700 });
    for (const f of [PRIVATE_KEY_FILE, IDENTITY_FILE]) {
      if (f === IDENTITY_FILE && !existsSync(join(keyDir, f))) {
        // The public half went missing: it is derived from the key.
        writeFileSync(join(outKeys, f), identityToJson(publicPart(key)), { flag: 'wx', mode: 0o600 });
      } else copyPrivateFile(join(keyDir, f), join(outKeys, f));
      files.push(join(outKeys, f));
    }
  }
  files.push(join(outDir, STORE_FILE));
  await audit.append({ at: nowOf(opts), kind: 'admin.backup', detail: { identity: key !== undefined } });
  await store.backup(join(outDir, STORE_FILE));
  const a = audit as Partial<BackupAudit>;
  if (typeof a.backup === 'function') {
    files.push(join(outDir, AUDIT_FILE));
    await a.backup(join(outDir, AUDIT_FILE), join(outDir, ANCHOR_FILE));
    if (existsSync(join(outDir, ANCHOR_FILE))) files.push(join(outDir, ANCHOR_FILE));
  }
  return { dir: outDir, files, gatewayId: key?.id, privateKey: key !== undefined };
}

// ---- restore -------------------------------------------------------------------------------------

/** What a backup must hold to be restored as the same gateway. */
const BACKUP_FILES: readonly string[] = [
  STORE_FILE,
  AUDIT_FILE,
  join(GATEWAY_KEY_DIR, PRIVATE_KEY_FILE),
  join(GATEWAY_KEY_DIR, IDENTITY_FILE),
];
/** Copied when present (a backup made by copying a stopped data directory may carry its logs). */
const BACKUP_OPTIONAL_FILES: readonly string[] = [ANCHOR_FILE, `${STORE_FILE}-wal`, `${AUDIT_FILE}-wal`];

export interface RestoreResult {
  /** The new data directory. */
  readonly dir: string;
  readonly from: string;
  readonly gatewayId: EndpointId;
  /** Files restored, relative to `dir`. */
  readonly files: string[];
  readonly endpoints: number;
  readonly families: number;
  /** Deliveries still to be made (the backlog the restored gateway forwards). */
  readonly pendingDeliveries: number;
  /** The audit log's check with the backup's own gateway key (before the restore's own row). */
  readonly audit: AuditVerifyReport;
  /** False for data older than the recorded gateway id (the gateway records it at its first start). */
  readonly idRecorded: boolean;
}

/** A check failing on the staged copy, told about the backup (its paths, not the staging ones). */
function aboutBackup(err: unknown, stage: string, backupDir: string): unknown {
  if (!(err instanceof CodedError)) return err;
  const text =
    err instanceof DataDirError
      ? err.detail
      : err instanceof PlushlinkError
        ? `${err.code}: ${err.message}`
        : err.message;
  return new AdminError(
    'RESTORE_BAD_BACKUP',
    `backup ${backupDir} cannot be restored: ${text.split(stage).join(backupDir)}`,
    {
      cause: err,
    },
  );
}

/**
 * Restores a backup (`backup`, `plushlink backup`) into the new data directory `dataDir`, which
 * must not exist or be empty. The backup is copied to a staging directory beside `dataDir` (0700,
 * files 0600; the backup itself is only read) and checked there: every file present, no damaged
 * WAL, gateway.db passes PRAGMA quick_check, the key matches identity.json and the gateway id
 * recorded in gateway.db, and the audit chain and its signed anchors verify with the backup's own
 * gateway key. Only then is the staging directory renamed to `dataDir`; on any failure it is
 * removed and nothing is left behind. The restore is audited in the restored log.
 */
export async function restore(
  backupDir: string,
  dataDir: string,
  opts?: AdminOptions,
): Promise<RestoreResult> {
  const from = resolve(backupDir);
  const dir = resolve(dataDir);
  if (!existsSync(from) || !statSync(from).isDirectory()) {
    throw new AdminError('RESTORE_NO_BACKUP', `${backupDir} is not a directory: no backup there`);
  }
  if (!existsSync(join(from, STORE_FILE))) {
    throw new AdminError('RESTORE_NOT_A_BACKUP', `${backupDir} is not a PlushLink backup (no ${STORE_FILE})`);
  }
  const missing = BACKUP_FILES.filter((f) => !existsSync(join(from, f)));
  if (missing.length > 0) {
    const noKey = missing.some((f) => f.startsWith(GATEWAY_KEY_DIR));
    throw new AdminError(
      'RESTORE_INCOMPLETE',
      `backup ${backupDir} is incomplete: ${missing.join(', ')} missing${noKey ? ' (a backup without the gateway identity cannot be restored as the same gateway)' : ''}`,
    );
  }
  if (!isEmptyDir(dir)) {
    throw new AdminError(
      'RESTORE_TARGET_EXISTS',
      `${dataDir} already exists and is not an empty directory; restore into a new directory`,
    );
  }
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  // Beside the target, so that the final rename stays on one file system and is atomic.
  const stage = join(parent, `.${basename(dir)}.restoring-${process.pid}-${toHex(systemRandom(4))}`);
  const files = [...BACKUP_FILES, ...BACKUP_OPTIONAL_FILES.filter((f) => existsSync(join(from, f)))];
  try {
    mkdirSync(stage, { mode: 0o700 });
    mkdirSync(join(stage, GATEWAY_KEY_DIR), { mode: 0o700 });
    for (const f of files) copyPrivateFile(join(from, f), join(stage, f));
    let check: Awaited<ReturnType<typeof checkDataDir>>;
    try {
      check = await checkDataDir(stage, { purpose: 'gateway' });
    } catch (err) {
      throw aboutBackup(err, stage, backupDir);
    }
    const key = check.gatewayKey;
    if (!key) throw new AdminError('RESTORE_INCOMPLETE', `backup ${backupDir} holds no gateway key`);
    const store = openSqliteStore(stage);
    let audit: SqliteAuditLog | undefined;
    let result: Omit<RestoreResult, 'dir' | 'files'>;
    try {
      audit = openSqliteAuditLog(stage, gatewayAuditKeys(key));
      const report = await audit.verify();
      if (!report.ok) {
        throw new AdminError(
          'RESTORE_BAD_BACKUP',
          `backup ${backupDir} cannot be restored: its audit log does not verify with its gateway key ${key.id} (row ${report.firstBadRow ?? '?'}: ${report.reason ?? 'unknown'})`,
        );
      }
      result = {
        from: backupDir,
        gatewayId: key.id,
        endpoints: (await store.listEndpoints()).length,
        families: (await store.listFamilies()).length,
        pendingDeliveries: await store.backlog(),
        audit: report,
        idRecorded: check.storedGatewayId !== undefined,
      };
      await audit.append({
        at: nowOf(opts),
        kind: 'admin.restored',
        detail: { rows: report.rows, endpoints: result.endpoints, pending: result.pendingDeliveries },
      });
    } finally {
      await audit?.close(); // anchors the head (signed); closing the last connection merges each WAL
      await store.close();
    }
    if (existsSync(dir)) rmdirSync(dir); // empty, checked above
    renameSync(stage, dir);
    chmodSync(dir, 0o700);
    const restored = [...BACKUP_FILES, ANCHOR_FILE].filter((f) => existsSync(join(dir, f)));
    return { dir, files: restored, ...result };
  } catch (err) {
    rmSync(stage, { recursive: true, force: true });
    throw err;
  }
}

// ---- opening a data directory --------------------------------------------------------------------

export interface AdminHandles {
  readonly store: SqliteStore;
  readonly audit: SqliteAuditLog;
  /** The gateway this data directory belongs to (recorded in gateway.db, or DATA/gateway), when known. */
  readonly gatewayId: EndpointId | undefined;
  close(): Promise<void>;
}

/**
 * Opens DIR/gateway.db and DIR/audit.db. `gatewayKey` (a key directory, a key file, or a public
 * identity.json) lets audit anchors be signed (private key) or at least checked (public key); a
 * key of another gateway than the one the directory belongs to is refused (ADMIN_WRONG_GATEWAY_KEY:
 * it would make every anchor look forged, or sign new ones with the wrong key).
 * Without `create`, a directory holding no gateway.db is refused (ADMIN_NO_DATA) and nothing is
 * created: a mistyped --data never becomes a new, empty store. An existing directory is checked
 * as a gateway start checks it (`checkDataDir`): a missing or empty store beside a gateway key or
 * an audit log, a damaged WAL, a failing PRAGMA quick_check, a gateway key that is not the one the
 * database belongs to, or a lost key are refused with a DataDirError (one line).
 */
export async function openAdmin(
  dir: string,
  opts: { create?: boolean; gatewayKey?: string } = {},
): Promise<AdminHandles> {
  const check = await checkDataDir(dir, { purpose: 'admin', create: opts.create === true });
  if (!opts.create && check.fresh) {
    throw new AdminError('ADMIN_NO_DATA', `no PlushLink gateway data in ${dir} (wrong --data?)`);
  }
  const owner = (check.storedGatewayId as EndpointId | undefined) ?? check.keyId;
  const auditOpts: SqliteAuditLogOptions = {};
  if (opts.gatewayKey) {
    const path = opts.gatewayKey;
    const keyPath = statSync(path).isDirectory() ? join(path, PRIVATE_KEY_FILE) : path;
    let given: PublicIdentity;
    if (existsSync(keyPath) && !keyPath.endsWith('.json')) {
      const key = await readPrivateKey(keyPath);
      given = key;
      Object.assign(auditOpts, gatewayAuditKeys(key));
    } else {
      given = await readIdentity(path);
      auditOpts.verifier = auditVerifierFor(given.signPublicKey);
    }
    if (owner !== undefined && given.id !== owner) {
      throw new AdminError(
        'ADMIN_WRONG_GATEWAY_KEY',
        `${path} is ${given.role} ${given.id}'s key, but ${dir} belongs to gateway ${owner}: this key is not the one that signed this log's anchors (pass gateway ${owner}'s key or identity.json, or leave the key out to use ${join(dir, GATEWAY_KEY_DIR)})`,
      );
    }
  }
  const store = openSqliteStore(dir);
  let audit: SqliteAuditLog;
  try {
    audit = openSqliteAuditLog(dir, auditOpts);
  } catch (err) {
    await store.close();
    throw err;
  }
  return {
    store,
    audit,
    gatewayId: owner,
    async close() {
      await audit.close();
      await store.close();
    },
  };
}

export type { AuditVerifyReport };
