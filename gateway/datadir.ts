// Checks a gateway data directory before anything opens it: identity ↔ database, missing or empty store, damaged WAL, PRAGMA quick_check — refusals are one line.
import { chmodSync, copyFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { IDENTITY_FILE, PRIVATE_KEY_FILE, readIdentity, readPrivateKey } from '../platform/keyfiles.ts';
import { CodedError, PlushlinkError } from '../shared/errors.ts';
import type { PrivateIdentity } from '../shared/identity.ts';
import type { EndpointId } from '../shared/types.ts';
import { ANCHOR_FILE, AUDIT_FILE, readAnchorFile } from './audit.ts';
import { STORE_FILE } from './store/sqlite.ts';
import { checkWalFile, databasePageSize, type WalAnalysis } from './store/wal-check.ts';

/** The gateway's own key directory inside a data directory: endpoint.key (0600) and identity.json. */
export const GATEWAY_KEY_DIR = 'gateway';

/** The meta key (gateway.db) naming the gateway a database belongs to; written at its first start. */
export const GATEWAY_ID_META = 'gateway_id';

export function gatewayDataPaths(dataDir: string): { keyDir: string; identityFile: string } {
  return {
    keyDir: join(dataDir, GATEWAY_KEY_DIR),
    identityFile: join(dataDir, GATEWAY_KEY_DIR, IDENTITY_FILE),
  };
}

export type DataDirErrorCode =
  | 'DATADIR_NOT_A_DIR'
  | 'DATADIR_STORE_MISSING'
  | 'DATADIR_STORE_EMPTY'
  | 'DATADIR_CORRUPT'
  | 'DATADIR_WAL_DAMAGED'
  | 'DATADIR_IDENTITY_LOST'
  | 'DATADIR_IDENTITY_MISMATCH';

/** A data directory that must not be opened: stable code, one-line message (fact; what to do). */
export class DataDirError extends CodedError<DataDirErrorCode> {
  /** What is wrong, without the advice. */
  readonly detail: string;
  constructor(
    code: DataDirErrorCode,
    detail: string,
    advice?: string,
    options?: { readonly cause?: unknown },
  ) {
    super(code, advice ? `${detail}; ${advice}` : detail, options);
    this.detail = detail;
  }
}

const RESTORE_ADVICE =
  'restore it from a backup (plushlink restore BACKUP --data NEWDIR), or start a new gateway on a new, empty --data directory';

export interface DataDirCheckOptions {
  /**
   * `gateway`: a gateway starts here (it reads the private key). `admin`: an administrative
   * command (it reads the public identity.json, if any).
   */
  readonly purpose: 'gateway' | 'admin';
  /**
   * Admin only: the command may create the store. A directory holding nothing but a gateway key
   * is then accepted (a key placed before the first start); a gateway refuses it.
   */
  readonly create?: boolean;
  /**
   * Accept a damaged WAL: SQLite then drops the committed transactions after the broken frame. The
   * damaged file is first copied to FILE.damaged-<time> (0600) for forensic recovery.
   */
  readonly discardDamagedWal?: boolean;
  /** Wait this long for another connection's lock during the checks (default 5000 ms). */
  readonly busyTimeoutMs?: number;
}

export interface DataDirCheck {
  readonly dir: string;
  /** No store yet: a first start (or an admin command creating the directory). */
  readonly fresh: boolean;
  /** `gateway` purpose: the gateway's private identity from DATA/gateway, when it exists. */
  readonly gatewayKey: PrivateIdentity | undefined;
  /** The id of DATA/gateway, when a gateway key exists. */
  readonly keyId: EndpointId | undefined;
  /** The gateway id recorded in gateway.db (meta `gateway_id`); undefined for data older than it. */
  readonly storedGatewayId: string | undefined;
  /** Duration of PRAGMA quick_check in ms (undefined for a fresh directory). */
  readonly quickCheckMs: number | undefined;
  /** WAL files found and what they hold. */
  readonly wal: readonly (WalAnalysis & { readonly path: string })[];
  /** Damaged WAL files accepted with `discardDamagedWal`, and where their copy was kept. */
  readonly discardedWal: readonly {
    readonly path: string;
    readonly keptAs: string;
    readonly droppedTransactions: number;
  }[];
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return -1;
    throw err;
  }
}

function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim();

/** quick_check and the recorded gateway id, on a short-lived connection of its own. */
function inspectStore(path: string, busyTimeoutMs: number): { storedId: string | undefined; ms: number } {
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true, timeout: busyTimeoutMs });
    const t0 = performance.now();
    const rows = db.prepare('PRAGMA quick_check(3)').pluck().all() as string[];
    const ms = performance.now() - t0;
    if (rows.length !== 1 || rows[0] !== 'ok') {
      throw new DataDirError(
        'DATADIR_CORRUPT',
        `${path} is damaged (PRAGMA quick_check: ${oneLine(rows.join('; ')).slice(0, 200)})`,
        RESTORE_ADVICE,
      );
    }
    const hasMeta = db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
      .pluck()
      .get();
    const storedId = hasMeta
      ? (db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(GATEWAY_ID_META) as
          | string
          | undefined)
      : undefined;
    return { storedId, ms };
  } catch (err) {
    if (err instanceof DataDirError || !isCorruption(err)) throw err;
    throw new DataDirError(
      'DATADIR_CORRUPT',
      `${path} is damaged (${oneLine((err as Error).message).slice(0, 200)})`,
      RESTORE_ADVICE,
      { cause: err },
    );
  } finally {
    db?.close();
  }
}

/** Whether the audit log carries anchors signed by a gateway key (a gateway ran on this directory). */
function auditIsSigned(dir: string, busyTimeoutMs: number): boolean {
  const anchor = readAnchorFile(join(dir, ANCHOR_FILE));
  if (anchor?.signature) return true;
  const path = join(dir, AUDIT_FILE);
  if (sizeOf(path) <= 0) return false;
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true, timeout: busyTimeoutMs });
    const hasAnchors = db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'anchors'")
      .pluck()
      .get();
    return !!hasAnchors && !!db.prepare('SELECT 1 FROM anchors WHERE signature IS NOT NULL LIMIT 1').get();
  } catch (err) {
    if (isCorruption(err)) return false; // the audit log's own damage is `audit verify`'s to report
    throw err;
  } finally {
    db?.close();
  }
}

/** Checks the WAL of `dbFile`; damage is refused unless discarding was asked for (then a copy is kept). */
function checkWal(
  dbFile: string,
  discard: boolean,
  found: (WalAnalysis & { path: string })[],
  discarded: { path: string; keptAs: string; droppedTransactions: number }[],
): void {
  const wal = checkWalFile(`${dbFile}-wal`, databasePageSize(dbFile));
  if (!wal) return;
  found.push(wal);
  if (wal.verdict !== 'damaged') return;
  if (!discard) {
    const where =
      wal.firstBadFrame === 0
        ? 'its header is damaged'
        : `frame ${wal.firstBadFrame} (byte ${wal.firstBadOffset}) fails its checksum`;
    throw new DataDirError(
      'DATADIR_WAL_DAMAGED',
      `${wal.path} is damaged: ${where} and ${wal.droppedTransactions} committed transaction(s) after it would be silently dropped`,
      'restore the data directory from a backup (plushlink restore), or accept the loss by starting once with --discard-damaged-wal (a copy of the log is kept)',
    );
  }
  const keptAs = `${wal.path}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  copyFileSync(wal.path, keptAs);
  chmodSync(keptAs, 0o600);
  discarded.push({ path: wal.path, keptAs, droppedTransactions: wal.droppedTransactions });
}

/**
 * Decides whether a data directory may be opened, before SQLite touches it (SQLite would
 * silently start an empty store on a missing or 0-byte file, and silently drop the committed
 * transactions after a damaged WAL frame). Throws a DataDirError (one line) when:
 * - gateway.db is missing or empty while a gateway key or audit log shows a gateway was here;
 * - a WAL (gateway.db-wal, audit.db-wal) is damaged (not merely torn at its last transaction);
 * - gateway.db fails PRAGMA quick_check (or is not a database);
 * - the gateway key does not match the gateway id recorded in gateway.db, or identity.json;
 * - gateway.db belongs to a gateway (recorded id, or signed audit anchors) but the key is gone.
 * A directory that does not exist or is empty is a first start. Writes nothing itself: only SQLite
 * does, applying the log when the check connection opens and checkpointing it when it closes.
 */
export async function checkDataDir(dir: string, opts: DataDirCheckOptions): Promise<DataDirCheck> {
  const busy = opts.busyTimeoutMs ?? 5000;
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new DataDirError('DATADIR_NOT_A_DIR', `${dir} is not a directory`);
  }
  const { keyDir, identityFile } = gatewayDataPaths(dir);
  const keyFile = join(keyDir, PRIVATE_KEY_FILE);
  const dbFile = join(dir, STORE_FILE);
  const hasKey = existsSync(keyFile);
  const dbSize = sizeOf(dbFile);
  const traces = [AUDIT_FILE, ANCHOR_FILE, `${STORE_FILE}-wal`, `${AUDIT_FILE}-wal`]
    .map((f) => join(dir, f))
    .filter((p) => sizeOf(p) > 0);

  const readKey = async (): Promise<{ key: PrivateIdentity | undefined; id: EndpointId | undefined }> => {
    if (!hasKey) return { key: undefined, id: undefined };
    if (opts.purpose === 'admin' && existsSync(identityFile)) {
      return { key: undefined, id: (await readIdentity(identityFile)).id };
    }
    const key = await readPrivateKey(keyDir);
    if (key.role !== 'gateway') {
      throw new PlushlinkError('PLK_E_KEY_FILE', `${keyFile} is a ${key.role} key, not a gateway key`);
    }
    if (existsSync(identityFile)) {
      const pub = await readIdentity(identityFile);
      if (pub.id !== key.id) {
        throw new DataDirError(
          'DATADIR_IDENTITY_MISMATCH',
          `${identityFile} (gateway ${pub.id}) does not match ${keyFile} (gateway ${key.id})`,
          'restore DATA/gateway from a backup (plushlink restore)',
        );
      }
    }
    return { key, id: key.id };
  };

  if (dbSize <= 0) {
    const evidence = hasKey ? keyFile : traces[0];
    const keyOnlyForAdmin = opts.purpose === 'admin' && opts.create === true && traces.length === 0;
    if (dbSize === 0 && evidence) {
      throw new DataDirError(
        'DATADIR_STORE_EMPTY',
        `${dbFile} is empty (0 bytes) but ${evidence} exists: a gateway used to be here and its data is gone`,
        RESTORE_ADVICE,
      );
    }
    if (dbSize < 0 && evidence && !(hasKey && keyOnlyForAdmin)) {
      throw new DataDirError(
        'DATADIR_STORE_MISSING',
        `${dbFile} is missing but ${evidence} exists: a gateway used to be here and its data is gone`,
        RESTORE_ADVICE,
      );
    }
    const k = await readKey();
    return {
      dir,
      fresh: true,
      gatewayKey: k.key,
      keyId: k.id,
      storedGatewayId: undefined,
      quickCheckMs: undefined,
      wal: [],
      discardedWal: [],
    };
  }

  // Before any SQLite connection: opening one would already apply (and on close checkpoint) the
  // truncated log, and the damaged frames could never be looked at again.
  const wal: (WalAnalysis & { path: string })[] = [];
  const discardedWal: { path: string; keptAs: string; droppedTransactions: number }[] = [];
  for (const f of [dbFile, join(dir, AUDIT_FILE)])
    checkWal(f, opts.discardDamagedWal === true, wal, discardedWal);

  const { storedId, ms } = inspectStore(dbFile, busy);
  // A discarded log goes now (what SQLite recovers from it is checkpointed): intact frames left
  // behind the new writes would otherwise look like damage at the next start.
  for (const d of discardedWal) {
    const db = new Database(d.path.slice(0, -'-wal'.length), { fileMustExist: true, timeout: busy });
    try {
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
  }
  const k = await readKey();
  if (k.id !== undefined && storedId !== undefined && storedId !== k.id) {
    throw new DataDirError(
      'DATADIR_IDENTITY_MISMATCH',
      `${keyFile} is gateway ${k.id} but ${dbFile} belongs to gateway ${storedId}: the key and the data come from different gateways`,
      `put back the key of gateway ${storedId} (plushlink restore from its backup), or use the --data directory that belongs to this key`,
    );
  }
  if (k.id === undefined) {
    const lostBy = storedId
      ? `${dbFile} belongs to gateway ${storedId}`
      : auditIsSigned(dir, busy)
        ? `${join(dir, AUDIT_FILE)} is signed by a gateway key`
        : undefined;
    if (lostBy) {
      throw new DataDirError(
        'DATADIR_IDENTITY_LOST',
        `${lostBy} but ${keyFile} is missing: the gateway's identity is lost (toys pinned to it would refuse a new one)`,
        'restore DATA/gateway from a backup (plushlink restore BACKUP --data NEWDIR)',
      );
    }
  }
  return {
    dir,
    fresh: false,
    gatewayKey: k.key,
    keyId: k.id,
    storedGatewayId: storedId,
    quickCheckMs: ms,
    wal,
    discardedWal,
  };
}

/** True when `dir` does not exist or is an empty directory. */
export function isEmptyDir(dir: string): boolean {
  if (!existsSync(dir)) return true;
  return statSync(dir).isDirectory() && readdirSync(dir).length === 0;
}
