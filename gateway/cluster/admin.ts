// Administration of a gateway on PostgreSQL: the admin commands' store and audit log, and restore of a backup into an empty schema [PLK-12].
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { PRIVATE_KEY_FILE, readIdentity, readPrivateKey } from '../../platform/keyfiles.ts';
import { toHex } from '../../shared/bytes.ts';
import type { PublicIdentity } from '../../shared/identity.ts';
import { systemRandom } from '../../shared/random.ts';
import type { EndpointId } from '../../shared/types.ts';
import { AdminError, type AdminOptions, type RestoreResult, restore } from '../admin.ts';
import { ANCHOR_FILE, auditVerifierFor, gatewayAuditKeys, openSqliteAuditLog } from '../audit.ts';
import {
  openPostgresAuditLog,
  type PostgresAuditLog,
  type PostgresAuditLogOptions,
} from '../audit-postgres.ts';
import { GATEWAY_ID_META, GATEWAY_KEY_DIR, isEmptyDir } from '../datadir.ts';
import { StoreError } from '../store/common.ts';
import { loadSqliteIntoPostgres, openPostgresStore, type PostgresStore } from '../store/postgres.ts';
import { STORE_FILE } from '../store/sqlite.ts';

export interface ClusterAdminHandles {
  readonly store: PostgresStore;
  readonly audit: PostgresAuditLog;
  /** The gateway the store belongs to (meta `gateway_id`), or the key's, when known. */
  readonly gatewayId: EndpointId | undefined;
  close(): Promise<void>;
}

export interface ClusterAdminOptions {
  readonly postgres: string;
  readonly schema?: string;
  /** Accept a schema no gateway has used yet (provision, family create with --create). */
  readonly create?: boolean;
  /** A gateway key directory (signs anchors) or identity.json (checks them), as for openAdmin. */
  readonly gatewayKey?: string;
}

/**
 * The admin commands' handles on a PostgreSQL gateway: the same store and audit log every node
 * uses. `dir` is a node's data directory (its gateway key and audit.anchor mirror). Without
 * `create`, a schema no gateway ever used is refused (ADMIN_NO_DATA): a mistyped --postgres or
 * --pg-schema never becomes a new, empty registry. A key of another gateway is refused
 * (ADMIN_WRONG_GATEWAY_KEY).
 */
export async function openClusterAdmin(dir: string, opts: ClusterAdminOptions): Promise<ClusterAdminHandles> {
  const store = await openPostgresStore({
    url: opts.postgres,
    poolSize: 2,
    applicationName: 'plushlink-admin',
    ...(opts.schema ? { schema: opts.schema } : {}),
  });
  try {
    const recorded = (await store.getMeta(GATEWAY_ID_META)) as EndpointId | undefined;
    const used = recorded !== undefined || (await store.listEndpoints()).length > 0;
    if (!used && !opts.create) {
      throw new AdminError(
        'ADMIN_NO_DATA',
        `no PlushLink gateway data in PostgreSQL schema ${store.schema} (wrong --postgres or --pg-schema?)`,
      );
    }
    const auditOpts: { -readonly [K in keyof PostgresAuditLogOptions]?: PostgresAuditLogOptions[K] } = {};
    let given: PublicIdentity | undefined;
    if (opts.gatewayKey) {
      const path = opts.gatewayKey;
      const keyPath = statSync(path).isDirectory() ? join(path, PRIVATE_KEY_FILE) : path;
      if (existsSync(keyPath) && !keyPath.endsWith('.json')) {
        const key = await readPrivateKey(keyPath);
        given = key;
        Object.assign(auditOpts, gatewayAuditKeys(key));
      } else {
        given = await readIdentity(path);
        auditOpts.verifier = auditVerifierFor(given.signPublicKey);
      }
      if (recorded !== undefined && given.id !== recorded) {
        throw new AdminError(
          'ADMIN_WRONG_GATEWAY_KEY',
          `${path} is ${given.role} ${given.id}'s key, but PostgreSQL schema ${store.schema} belongs to gateway ${recorded}`,
        );
      }
    }
    const anchorFile = join(dir, ANCHOR_FILE);
    const audit = await openPostgresAuditLog({
      url: opts.postgres,
      ...(opts.schema ? { schema: opts.schema } : {}),
      ...auditOpts,
      ...(existsSync(dir) ? { anchorFile } : {}),
    });
    return {
      store,
      audit,
      gatewayId: recorded ?? given?.id,
      async close() {
        await audit.close();
        await store.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/**
 * Restores a backup (a PostgreSQL gateway's, or an embedded one's: the format is the same) into an
 * EMPTY PostgreSQL schema, and its gateway key into the new data directory `dataDir` (which then
 * holds only the key and the audit anchor, as a cluster node's does). Every check of `restore` runs
 * first, on a staged copy (files, quick_check, key ↔ database, the audit chain with the backup's
 * own key); then the registry, clips, deliveries, sequences, nonces, tombstones and change feed are
 * loaded in one transaction, the audit log in another, and the loaded audit log is verified with
 * the key again. The restore is audited.
 */
export async function restoreIntoPostgres(
  backupDir: string,
  dataDir: string,
  opts: AdminOptions & { postgres: string; schema?: string },
): Promise<RestoreResult & { readonly schema: string }> {
  const dir = resolve(dataDir);
  if (!isEmptyDir(dir)) {
    throw new AdminError(
      'RESTORE_TARGET_EXISTS',
      `${dataDir} already exists and is not an empty directory; restore into a new directory`,
    );
  }
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  const stage = join(parent, `.${basename(dir)}.pg-restoring-${process.pid}-${toHex(systemRandom(4))}`);
  let result: RestoreResult;
  try {
    result = await restore(backupDir, stage, opts);
    const key = await readPrivateKey(join(stage, GATEWAY_KEY_DIR));
    const store = await openPostgresStore({
      url: opts.postgres,
      poolSize: 2,
      applicationName: 'plushlink-restore',
      ...(opts.schema ? { schema: opts.schema } : {}),
    });
    let schema: string;
    try {
      schema = store.schema;
      const audit = await openPostgresAuditLog({
        url: opts.postgres,
        ...(opts.schema ? { schema: opts.schema } : {}),
        ...gatewayAuditKeys(key),
      });
      try {
        if ((await audit.verify()).rows > 0)
          throw new StoreError(
            'STORE_SCHEMA',
            `audit: schema ${schema} already holds an audit log; restore into an empty schema (--pg-schema NAME) or another database`,
          );
        const db = new Database(join(stage, STORE_FILE), { readonly: true, fileMustExist: true });
        try {
          await loadSqliteIntoPostgres(db, store);
        } finally {
          db.close();
        }
        const source = openSqliteAuditLog(stage, { anchorFile: null });
        try {
          await audit.loadFrom(source);
        } finally {
          source.db.close();
        }
        const report = await audit.verify();
        if (!report.ok) {
          throw new AdminError(
            'RESTORE_BAD_BACKUP',
            `backup ${backupDir}: the audit log loaded into PostgreSQL does not verify (row ${report.firstBadRow ?? '?'}: ${report.reason ?? 'unknown'})`,
          );
        }
        await audit.append({
          at: Math.floor(opts.now ?? Date.now()),
          kind: 'admin.restored',
          detail: { rows: report.rows, into: 'postgres', schema },
        });
      } finally {
        await audit.close();
      }
    } finally {
      await store.close();
    }
    // The data directory of a node: the key and the anchor mirror, nothing of the SQLite files.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    renameSync(join(stage, GATEWAY_KEY_DIR), join(dir, GATEWAY_KEY_DIR));
    if (existsSync(join(stage, ANCHOR_FILE))) copyFileSync(join(stage, ANCHOR_FILE), join(dir, ANCHOR_FILE));
    return {
      ...result,
      dir,
      files: [
        join(GATEWAY_KEY_DIR, PRIVATE_KEY_FILE),
        ...(existsSync(join(dir, ANCHOR_FILE)) ? [ANCHOR_FILE] : []),
      ],
      schema,
    };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
