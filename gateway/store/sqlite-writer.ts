// Writer thread of WorkerSqliteStore: owns the write connection and runs the group commits (and their fsyncs) off the gateway's event loop [PLK-12.3].
import { parentPort, workerData } from 'node:worker_threads';
import {
  checkpointTruncate,
  commitBatch,
  createWriteOps,
  openDatabase,
  traceCommit,
  type WriteOpName,
} from './sqlite.ts';
import type { WriterJob, WriterReply, WriterRequest, WriterSetup } from './sqlite-worker.ts';

const setup = workerData as WriterSetup;
const port = parentPort;
if (!port) throw new Error('sqlite-writer.ts runs in a worker thread');
const db = openDatabase(setup.path, setup.busyTimeoutMs);
const ops = createWriteOps(db);
const run = (job: WriterJob): unknown =>
  job.op === 'sync' ? null : (ops[job.op as WriteOpName] as (...a: unknown[]) => unknown)(...job.args);

let queue: WriterJob[] = [];
let scheduled = false;

const serializeError = (err: unknown): { name: string; message: string; code?: unknown } =>
  err instanceof Error
    ? { name: err.name, message: err.message, code: (err as { code?: unknown }).code }
    : { name: 'Error', message: String(err) };

/**
 * Group commit: everything that arrived while the previous commit (and its fsync) was running is
 * committed together in the next one — at most one commit in flight, no timer. Replies go back in
 * one message per commit, after the commit is durable.
 */
function flush(): void {
  while (queue.length > 0) {
    const jobs = queue.length > setup.maxBatch ? queue.slice(0, setup.maxBatch) : queue;
    queue = queue.length > setup.maxBatch ? queue.slice(setup.maxBatch) : [];
    const t0 = performance.now();
    const reply: WriterReply = { t: 'r', ids: jobs.map((j) => j.id), ok: [], values: [] };
    try {
      const outcomes = commitBatch(db, jobs, run);
      for (const o of outcomes) {
        reply.ok.push(o.ok);
        reply.values.push(o.ok ? o.value : serializeError(o.value));
      }
      // [PLK-12.5] an erased family leaves no trace in the WAL either.
      if (jobs.some((j) => j.op === 'eraseFamily')) checkpointTruncate(db);
    } catch (err) {
      // The commit itself failed: nothing of this batch is durable.
      const e = serializeError(err);
      reply.ok = jobs.map(() => false);
      reply.values = jobs.map(() => e);
    }
    traceCommit(jobs.length, performance.now() - t0);
    port!.postMessage(reply);
  }
}

port.on('message', (m: WriterRequest) => {
  if (m.t === 'w') {
    for (const j of m.jobs) queue.push(j);
    if (!scheduled) {
      scheduled = true;
      // Let every message already waiting in the port join this batch first.
      setImmediate(() => {
        scheduled = false;
        flush();
      });
    }
  } else if (m.t === 'close') {
    flush();
    db.close();
    port.postMessage({ t: 'closed' } satisfies WriterReply);
    port.close();
  }
});
