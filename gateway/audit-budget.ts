// Bounded audit of refusals: one row each within a budget per source address and overall, the rest counted and written as one summary row a minute [PLK-12.8].
import type { Clock } from '../shared/types.ts';
import type { AuditEvent } from './interfaces.ts';
import { MemoryRateLimiter } from './limits.ts';

export interface AuditBudgetOptions {
  /** Rows per source address: a burst, then this many per minute. Default 20, then 10 a minute. */
  readonly perSourceBurst?: number;
  readonly perSourcePerMinute?: number;
  /** Rows in all: a burst, then this many per second. Default 200, then 20 a second. */
  readonly totalBurst?: number;
  readonly totalPerSecond?: number;
  /** How often suppressed refusals are summarised; default 60 s (0: only on flush()). */
  readonly summaryEveryMs?: number;
}

/**
 * An attacker must not turn packets into audit rows faster than an operator can read them, nor
 * fill the disk: every refusal is still counted (metrics, and this summary), but only a budgeted
 * number become rows of their own. The summary row `audit.suppressed` holds counts by kind and
 * reason for the interval, never addresses or ids.
 */
export class AuditBudget {
  private readonly perSource: MemoryRateLimiter;
  private readonly total: MemoryRateLimiter;
  private suppressed = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly write: (event: AuditEvent) => Promise<void>,
    private readonly clock: Clock,
    private readonly opts: AuditBudgetOptions = {},
  ) {
    this.perSource = new MemoryRateLimiter({
      capacity: opts.perSourceBurst ?? 20,
      refillPerSecond: (opts.perSourcePerMinute ?? 10) / 60,
      maxKeys: 100_000,
    });
    this.total = new MemoryRateLimiter({
      capacity: opts.totalBurst ?? 200,
      refillPerSecond: opts.totalPerSecond ?? 20,
      maxKeys: 1,
    });
  }

  /** Starts the summary timer (unref'd). */
  start(): void {
    const every = this.opts.summaryEveryMs ?? 60_000;
    if (every > 0 && !this.timer) {
      this.timer = setInterval(() => void this.flush(), every);
      this.timer.unref();
    }
  }

  /** Writes the summary of what was suppressed so far (if anything) and stops the timer. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Records one refusal by `source`: its own row within the budget, else counted for the summary. */
  refusal(event: AuditEvent, source: string): Promise<void> {
    const now = this.clock();
    // A refused source is not charged against the total, so one address cannot use up everyone's budget.
    if (this.perSource.tryTake(source, 1, now) && this.total.tryTake('all', 1, now)) return this.write(event);
    const reason = event.detail?.reason;
    const key = `${event.kind}.${typeof reason === 'string' ? reason : 'other'}`;
    this.suppressed.set(key, (this.suppressed.get(key) ?? 0) + 1);
    return Promise.resolve();
  }

  /** Refusals counted but not written since the last summary. */
  get pending(): number {
    let n = 0;
    for (const v of this.suppressed.values()) n += v;
    return n;
  }

  /** Writes one `audit.suppressed` row with the counts since the last one. */
  async flush(): Promise<void> {
    if (this.suppressed.size === 0) return;
    const counts = this.suppressed;
    this.suppressed = new Map();
    const detail: Record<string, number> = { total: 0 };
    for (const [k, v] of counts) {
      detail[k] = v;
      detail.total = (detail.total ?? 0) + v;
    }
    await this.write({ at: this.clock(), kind: 'audit.suppressed', detail });
  }
}
