// Checkpoint thread of SqliteStore (`checkpoint: 'thread'`): copies committed WAL frames into gateway.db on its own connection, so the gateway's event loop never stalls for a checkpoint [PLK-12.3].
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

/** What the store hands the thread (workerData). */
export interface CheckpointerSetup {
  readonly path: string;
  readonly busyTimeoutMs: number;
  /** How often a PASSIVE checkpoint runs, ms. */
  readonly intervalMs: number;
}

/** Messages from the store. */
export type CheckpointerRequest = { t: 'close' };
/** Messages to the store: one per checkpoint that copied frames, and the answer to close. */
export type CheckpointerReply =
  | { t: 'ckpt'; log: number; checkpointed: number; ms: number }
  | { t: 'error'; message: string }
  | { t: 'closed' };

const setup = workerData as CheckpointerSetup;
const port = parentPort;
if (!port) throw new Error('checkpointer.ts runs in a worker thread');
// The store created and migrated the file; this connection only checkpoints. FULL: the WAL is synced
// before frames are copied and the database file after, as SQLite's own checkpoints do.
const db = new Database(setup.path, { timeout: setup.busyTimeoutMs, fileMustExist: true });
db.pragma('synchronous = FULL');
db.pragma('wal_autocheckpoint = 0');

let last = 0;
const timer = setInterval(() => {
  const t0 = performance.now();
  try {
    // PASSIVE never waits for the writer nor blocks it: it copies what no reader still needs. The
    // next write after a complete checkpoint restarts the WAL from its beginning.
    const r = (
      db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[]
    )[0];
    if (r && r.log !== last && r.log > 0) {
      port.postMessage({ t: 'ckpt', log: r.log, checkpointed: r.checkpointed, ms: performance.now() - t0 });
    }
    last = r?.log ?? 0;
  } catch (err) {
    // SQLITE_BUSY: another connection (an erase's TRUNCATE checkpoint) holds the checkpoint; next tick.
    if ((err as { code?: string }).code !== 'SQLITE_BUSY')
      port.postMessage({ t: 'error', message: String((err as Error).message ?? err) });
  }
}, setup.intervalMs);

port.on('message', (m: CheckpointerRequest) => {
  if (m.t !== 'close') return;
  clearInterval(timer);
  db.close();
  port.postMessage({ t: 'closed' } satisfies CheckpointerReply);
  port.close(); // nothing keeps the thread alive any more: it exits
});
