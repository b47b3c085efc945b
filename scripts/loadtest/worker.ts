// Load-generator worker thread: a thin message adapter around sim/load-driver.ts, plus this thread's CPU, event-loop use and lag.
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { type DriverInit, LoadDriver } from '../../sim/load-driver.ts';
import { encodeHistogram } from '../../sim/stats.ts';
import type { MainToWorker, WorkerToMain } from './types.ts';

const init = (workerData as { init: DriverInit }).init;
const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');
const post = (m: WorkerToMain): void => port.postMessage(m);
const driver = new LoadDriver(init);

const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
let elu = performance.eventLoopUtilization();
let lastCpuMs = threadCpuMs();

/** CPU time of this thread in ms from /proc/thread-self/stat (Linux), or -1. */
function threadCpuMs(): number {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * 10 : -1; // CLK_TCK = 100 on Linux
  } catch {
    return -1;
  }
}

/** Sends the interval's figures to the main thread and starts the next interval. */
function tick(): void {
  const now = performance.eventLoopUtilization();
  const d = performance.eventLoopUtilization(now, elu);
  elu = now;
  const cpu = threadCpuMs();
  const cpuMs = cpu < 0 || lastCpuMs < 0 ? -1 : cpu - lastCpuMs;
  lastCpuMs = cpu;
  const iv = driver.interval();
  post({
    type: 'tick',
    index: init.index,
    at: performance.timeOrigin + performance.now(),
    counters: iv.counters,
    errors: iv.errors,
    connect: encodeHistogram(iv.connect),
    puback: encodeHistogram(iv.puback),
    e2e: encodeHistogram(iv.e2e),
    cpuMs,
    elu: d.utilization,
    lagP99Ms: lag.count > 0 ? lag.percentile(99) / 1e6 : 0,
    lagMaxMs: lag.count > 0 ? lag.max / 1e6 : 0,
    connected: iv.connected,
    inflight: iv.inflight,
    attacks: iv.attacks,
  });
  driver.resetInterval();
  lag.reset();
}
const ticker = setInterval(tick, 1000);

const fatal = (err: unknown): void => post({ type: 'fatal', index: init.index, message: String(err) });

port.on('message', (msg: MainToWorker) => {
  const i = init.index;
  switch (msg.type) {
    case 'connect':
      driver.connect(msg.who, msg.rate, msg.timeoutMs).then((r) => {
        tick();
        post({ type: 'connected', index: i, ...r });
      }, fatal);
      break;
    case 'run':
      driver.run(msg.clipRate, msg.attackRate, msg.durationMs).then(() => {
        tick();
        post({ type: 'ran', index: i });
      }, fatal);
      break;
    case 'storm':
      driver.storm(msg.timeoutMs).then((r) => {
        tick();
        post({ type: 'stormed', index: i, ...r, dropAt: performance.timeOrigin + r.dropAt });
      }, fatal);
      break;
    case 'drain':
      driver.drain(msg.timeoutMs).then((r) => {
        tick();
        post({ type: 'drained', index: i, ...r });
      }, fatal);
      break;
    case 'stop':
      driver.stop().then(() => {
        tick();
        clearInterval(ticker);
        lag.disable();
        post({ type: 'stopped', index: i });
      }, fatal);
      break;
  }
});

post({ type: 'ready', index: init.index });
