// Clock seam for devices: the real clock, and a virtual clock test double that runs timers in simulated time.
import type { MicClock } from './audio/microphone.ts';

export interface Timer {
  cancel(): void;
}

/** What a toy or parent app needs from time: wall-clock ms, one-shot timers, and sleeps. */
export interface DeviceClock extends MicClock {
  now(): number;
  /** Runs `fn` once after `ms`. */
  setTimer(ms: number, fn: () => void): Timer;
  /** Resolves after `ms`, or as soon as `signal` aborts (it never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

function checkDelay(ms: number): number {
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw new TypeError('delay must be a number of ms');
  return Math.max(0, ms);
}

function sleepOn(clock: Pick<DeviceClock, 'setTimer'>, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      timer.cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = clock.setTimer(ms, done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Date.now and setTimeout. Timers are unref'd so a forgotten one never keeps the process alive. */
export const realClock: DeviceClock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, checkDelay(ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  sleep(ms, signal) {
    return sleepOn(realClock, ms, signal);
  },
};

interface VirtualTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** Lets every already-queued promise continuation and I/O callback run (a few event-loop turns). */
export async function flushEventLoop(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * Test double: time stands still until advance() or runUntilIdle() moves it. Timers fire in
 * (due time, creation order) order, and the event loop is flushed after each one, so code that
 * awaits between timers sees the same interleaving on every run: same seed → same bytes.
 */
export class VirtualClock implements DeviceClock {
  private current: number;
  private seq = 0;
  private timers: VirtualTimer[] = [];

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    if (!Number.isSafeInteger(startMs) || startMs < 0)
      throw new RangeError('startMs must be a safe integer ≥ 0');
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimer(ms: number, fn: () => void): Timer {
    const t: VirtualTimer = { at: this.current + checkDelay(ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(t);
    return {
      cancel: () => {
        t.cancelled = true;
      },
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Live (not cancelled, not yet fired) timers. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  private nextDue(limit: number): VirtualTimer | undefined {
    this.timers = this.timers.filter((t) => !t.cancelled);
    let best: VirtualTimer | undefined;
    for (const t of this.timers) {
      if (t.at > limit) continue;
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.current + checkDelay(ms);
    await flushEventLoop();
    for (;;) {
      const t = this.nextDue(target);
      if (!t) break;
      this.current = Math.max(this.current, t.at);
      t.cancelled = true;
      t.fn();
      await flushEventLoop();
    }
    this.current = target;
    await flushEventLoop();
  }

  /** Fires timers until none is left (or `maxTimers` fired, against runaway loops); returns how many fired. */
  async runUntilIdle(maxTimers = 100_000): Promise<number> {
    let fired = 0;
    await flushEventLoop();
    while (fired < maxTimers) {
      const t = this.nextDue(Number.POSITIVE_INFINITY);
      if (!t) break;
      this.current = Math.max(this.current, t.at);
      t.cancelled = true;
      t.fn();
      fired++;
      await flushEventLoop();
    }
    return fired;
  }
}
