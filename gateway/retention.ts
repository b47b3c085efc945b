// Retention: undelivered clips older than the limit are deleted, on a timer, with an audit entry [PLK-12.5].
import type { GatewayContext } from './context.ts';

/** Runs retention once now; returns the number of expired clips. */
export async function runRetention(ctx: GatewayContext, undeliveredMaxAgeMs: number): Promise<number> {
  const now = ctx.clock();
  const n = await ctx.store.expireUndelivered(now - undeliveredMaxAgeMs);
  if (n > 0) {
    ctx.log.info({ event: 'retention.expired', clips: n }, 'expired undelivered clips');
    await ctx.audit({
      at: now,
      kind: 'retention.expired',
      detail: { clips: n, maxAgeMs: undeliveredMaxAgeMs },
    });
  }
  return n;
}
