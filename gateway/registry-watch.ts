// Registry changes take effect at once: tails the store's change feed, cuts revoked and erased sessions, refreshes caches and pushes rosters [PLK-12.7].
import type { Client } from 'aedes';
import type { EndpointId } from '../shared/types.ts';
import type { GatewayContext } from './context.ts';
import type { FamilyId } from './interfaces.ts';
import type { Rosters } from './roster.ts';

/** Changes read per poll; a full page means more are waiting (read at the next poll). */
const FEED_PAGE = 1000;

export interface RegistryWatchOptions {
  /** How often the change feed is read; default 250 ms. */
  readonly intervalMs?: number;
}

/**
 * Polls `registryChanges` (cheap: an indexed range read) so that changes made by the admin
 * commands in another process take effect within one interval. A revoked or erased endpoint's
 * connections are closed (it can no longer connect: authentication reads the registry); every
 * family whose membership changed gets its new roster on its members' inboxes.
 */
export class RegistryWatch {
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly rosters: Rosters,
    private readonly opts: RegistryWatchOptions = {},
  ) {}

  async start(): Promise<void> {
    const at = this.ctx.clock();
    this.seq = await this.ctx.store.latestRegistryChange();
    this.ctx.ingest.registry?.confirm(at);
    this.rosters.version = this.seq;
    this.timer = setInterval(() => {
      void this.poll();
    }, this.opts.intervalMs ?? 250);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Reads and applies every change since the last one (one poll at a time). */
  poll(): Promise<void> {
    this.running ??= this.apply().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private connected = (id: EndpointId): Client[] => this.ctx.sessions.clients(id);

  private async apply(): Promise<void> {
    let changes: Awaited<ReturnType<GatewayContext['store']['registryChanges']>>;
    const at = this.ctx.clock();
    try {
      changes = await this.ctx.store.registryChanges(this.seq, FEED_PAGE);
    } catch (err) {
      if (!this.ctx.closing()) this.ctx.log.error({ err: String(err) }, 'registry watch failed');
      return;
    }
    if (changes.length === 0) {
      this.ctx.ingest.registry?.confirm(at);
      return;
    }
    const families = new Set<FamilyId>();
    for (const c of changes) {
      this.seq = c.seq;
      this.ctx.ingest.registry?.invalidate(c.endpoint, c.family);
      if (c.family) families.add(c.family);
      if (c.kind === 'revoked' || c.kind === 'erased') {
        for (const client of this.connected(c.endpoint)) {
          this.ctx.log.info(
            { event: 'session.closed', endpoint: c.endpoint, reason: c.kind },
            'session closed',
          );
          this.ctx.metrics.sessionsClosed.inc({ reason: c.kind });
          client.close();
        }
      }
    }
    this.rosters.version = this.seq;
    // Every change up to the poll's start is applied: cached registry reads are current [PLK-12.7].
    if (changes.length < FEED_PAGE) this.ctx.ingest.registry?.confirm(at);
    for (const f of families) {
      try {
        await this.rosters.push(f, this.connected);
      } catch (err) {
        this.ctx.log.warn({ err: String(err), family: f }, 'roster push failed');
      }
    }
  }
}
