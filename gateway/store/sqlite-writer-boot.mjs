// Writer-thread entry of WorkerSqliteStore: Node 20 workers cannot load .ts (and ignore `--import tsx` in execArgv), so register tsx's ESM hooks here, then load the TypeScript writer.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
