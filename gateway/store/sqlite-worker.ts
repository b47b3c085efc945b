// GatewayStore on SQLite with the writer in a worker thread: group commits and their fsyncs never block the gateway's event loop [PLK-12.3].
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { startWorker } from '../../platform/entry.ts';
import { StoreError, type StoreErrorCode } from './common.ts';
import {
  backupTo,
  ensurePrivateDir,
  MIGRATIONS,
  migrateDatabase,
  openDatabase,
  prepareStatements,
  SqliteStoreBase,
  type SqliteStoreOptions,
  STORE_FILE,
  type WriteOpName,
  type WriteOps,
} from './sqlite.ts';

/** workerData of the writer thread. */
export interface WriterSetup {
  readonly path: string;
  readonly busyTimeoutMs: number;
  readonly maxBatch: number;
}
export interface WriterJob {
  readonly id: number;
  readonly op: WriteOpName | 'sync';
  readonly args: readonly unknown[];
}
export type WriterRequest = { readonly t: 'w'; readonly jobs: WriterJob[] } | { readonly t: 'close' };
export type WriterReply =
  | { readonly t: 'r'; ids: number[]; ok: boolean[]; values: unknown[] }
  | { readonly t: 'closed' };

interface Waiter {
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/**
 * A byte array that owns exactly its bytes: structured cloning a view copies its whole underlying
 * ArrayBuffer (for a socket payload, possibly a much larger pooled chunk).
 */
const compact = (b: Uint8Array): Uint8Array =>
  b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b);

/** Compacts the byte arrays of a write argument: itself, its array items, or a record's fields. */
function compactArg(a: unknown): unknown {
  if (a instanceof Uint8Array) return compact(a);
  if (Array.isArray(a)) return a.map(compactArg);
  if (a !== null && typeof a === 'object') {
    return Object.fromEntries(
      Object.entries(a).map(([k, v]) => [k, v instanceof Uint8Array ? compact(v) : v]),
    );
  }
  return a;
}

function reviveError(e: { name?: string; message?: string; code?: unknown }): Error {
  if (e.name === 'StoreError') return new StoreError(e.code as StoreErrorCode, e.message ?? '');
  const err = new Error(e.message ?? 'store write failed') as Error & { code?: unknown };
  if (e.name) err.name = e.name;
  if (e.code !== undefined) err.code = e.code;
  return err;
}

/**
 * The same database and semantics as `SqliteStore`, but the write connection lives in a worker
 * thread (`sqlite-writer.ts`) that runs classic group commit: at most one commit in flight, and
 * everything that arrives meanwhile goes into the next one. The gateway's thread keeps its own
 * connection for reads only (WAL readers see every committed transaction), so signature checks,
 * socket I/O and the fsync of a commit overlap. A write promise resolves only after the writer
 * has reported its commit durable [PLK-12.3]; writes reach the writer, and are applied, in call order.
 */
export class WorkerSqliteStore extends SqliteStoreBase {
  /** The read connection (query_only). */
  readonly db: Database.Database;
  readonly path: string;
  protected readonly s: ReturnType<typeof prepareStatements>;
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Waiter>();
  private outbox: WriterJob[] = [];
  private posting = false;
  private nextId = 1;
  private failed: Error | null = null;
  private closedReply: (() => void) | null = null;
  private readonly exited: Promise<void>;

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    super();
    this.path = path;
    const busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
    // Create and migrate here, synchronously, so the file exists before the writer opens it.
    this.db = openDatabase(path, busyTimeoutMs);
    migrateDatabase(this.db, MIGRATIONS);
    this.db.pragma('query_only = ON');
    this.s = prepareStatements(this.db);
    const setup: WriterSetup = {
      path,
      busyTimeoutMs,
      maxBatch: opts.maxBatch ?? 512,
    };
    this.worker = startWorker(import.meta.url, 'sqlite-writer', './sqlite-writer-boot.mjs', {
      workerData: setup,
    });
    this.worker.unref();
    this.worker.on('message', (m: WriterReply) => this.onReply(m));
    this.worker.on('error', (err) => this.fail(err));
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        if (!this.closed || this.waiting.size > 0) this.fail(new Error(`store writer exited (${code})`));
        resolve();
      });
    });
  }

  private onReply(m: WriterReply): void {
    if (m.t === 'closed') {
      this.closedReply?.();
      return;
    }
    for (let i = 0; i < m.ids.length; i++) {
      const w = this.waiting.get(m.ids[i]!);
      if (!w) continue;
      this.waiting.delete(m.ids[i]!);
      if (m.ok[i]) w.resolve(m.values[i]);
      else w.reject(reviveError(m.values[i] as { name?: string; message?: string; code?: unknown }));
    }
    if (this.waiting.size === 0) this.worker.unref();
  }

  private fail(err: Error): void {
    this.failed ??= err;
    const waiters = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiters) w.reject(err);
    this.closedReply?.();
  }

  private send(op: WriterJob['op'], args: readonly unknown[]): Promise<never>;
  private send<T>(op: WriterJob['op'], args: readonly unknown[]): Promise<T>;
  private send<T>(op: WriterJob['op'], args: readonly unknown[]): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError('STORE_CLOSED', 'store is closed'));
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref(); // pending durable writes keep the process alive
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.outbox.push({ id, op, args });
      if (!this.posting) {
        this.posting = true;
        queueMicrotask(() => this.post());
      }
    });
  }

  /** One message per turn of synchronous calls. */
  private post(): void {
    this.posting = false;
    if (this.outbox.length === 0) return;
    const jobs = this.outbox;
    this.outbox = [];
    this.worker.postMessage({ t: 'w', jobs } satisfies WriterRequest);
  }

  /** Byte arrays are copied compactly so postMessage clones only the bytes they view. */
  protected write<K extends WriteOpName>(
    op: K,
    args: Parameters<WriteOps[K]>,
  ): Promise<ReturnType<WriteOps[K]>> {
    return this.send(op, args.map(compactArg));
  }

  /** Online, consistent copy once every earlier write is committed; created exclusively with mode 0600. */
  async backup(path: string): Promise<void> {
    await this.send('sync', []);
    await backupTo(this.db, path);
  }

  /** Commits every write already made, stops the writer, closes both connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.post();
    this.closed = true;
    if (!this.failed) {
      const done = new Promise<void>((resolve) => {
        this.closedReply = resolve;
      });
      this.worker.ref();
      this.worker.postMessage({ t: 'close' } satisfies WriterRequest);
      await done;
    }
    await this.worker.terminate();
    await this.exited;
    this.db.close();
  }
}

/** Opens DIR/gateway.db with the writer in a worker thread (DIR created with mode 0700, the file with 0600). */
export function openWorkerSqliteStore(dir: string, opts: SqliteStoreOptions = {}): WorkerSqliteStore {
  ensurePrivateDir(dir);
  return new WorkerSqliteStore(join(dir, STORE_FILE), opts);
}
