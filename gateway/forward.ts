// Inbox delivery: gateway proof first, then the stored backlog in batches, then live clips and receipts, all at QoS 1 [PLK-4.4] [PLK-12.4].
import type { Client, PublishPacket } from 'aedes';
import type { Logger } from 'pino';
import type { EndpointId } from '../shared/types.ts';
import type { GatewayContext } from './context.ts';
import type { GatewayStore } from './interfaces.ts';
import type { GatewayMetrics } from './metrics.ts';

/** One inbox message: a raw wire object whose first byte says what it is (0x03 proof, 0x01 clip, 0x02 receipt). */
export function inboxPacket(topic: string, payload: Uint8Array): PublishPacket {
  return {
    cmd: 'publish',
    topic,
    payload: Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(payload.buffer, payload.byteOffset, payload.length),
    qos: 1,
    retain: false,
    dup: false,
  };
}

/** Publishes to one connected client; resolves when the packet has been handed to its socket. */
export function publishTo(client: Client, topic: string, payload: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (client.closed) {
      reject(new Error('client closed'));
      return;
    }
    client.publish(inboxPacket(topic, payload), (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * The connections that have subscribed to their inbox and received the gateway proof, by endpoint id.
 *
 * Why not `broker.publish(inboxTopic)`: Aedes de-duplicates deliveries per client by a broker-wide
 * packet counter (`dedupe` in aedes/lib/client.js). Packets sent with `broker.publish` pass through
 * asynchronous persistence steps before that check, while packets sent with `client.publish` are
 * checked at once; mixing the two (backlog vs. live forwarding) lets a live clip with a lower
 * counter arrive after a backlog clip and be silently dropped as a "duplicate". Sending every inbox
 * message through the recipient's own Client keeps the counter order, and also makes sure nothing
 * reaches an inbox before its proof. (A multi-node gateway would route through a shared bus here.)
 */
export class InboxRegistry {
  private readonly byId = new Map<EndpointId, Client>();

  set(id: EndpointId, client: Client): void {
    this.byId.set(id, client);
  }

  get(id: EndpointId): Client | undefined {
    const c = this.byId.get(id);
    return c && !c.closed ? c : undefined;
  }

  /** Removes `client` only if it is still the registered connection for `id` (a takeover keeps the new one). */
  delete(id: EndpointId, client: Client): void {
    if (this.byId.get(id) === client) this.byId.delete(id);
  }

  get size(): number {
    return this.byId.size;
  }

  /** The open inboxes' connections. */
  clients(): Client[] {
    return [...this.byId.values()].filter((c) => !c.closed);
  }
}

/** Backlog delivery state of one connection's inbox. */
export interface InboxSession {
  readonly endpointId: EndpointId;
  readonly topic: string;
  /**
   * Backlog deliveries not yet receipted in this session ("sender:clipId"); null until the first
   * backlog send (most connections never have a backlog, and an empty Set is ~150 bytes each).
   */
  outstanding: Set<string> | null;
  /** The last batch was full: more are waiting in the store. */
  truncated: boolean;
  running: boolean;
  /** A refill was asked for while a batch was being written. */
  again: boolean;
}

export function newInboxSession(endpointId: EndpointId, topic: string): InboxSession {
  return { endpointId, topic, outstanding: null, truncated: false, running: false, again: false };
}

/**
 * Delivers to inboxes: the stored backlog when an endpoint subscribes (in batches, the next one
 * once the previous is receipted), and live clips and receipts to whoever is connected. Every
 * message goes through the recipient's own connection (see InboxRegistry).
 */
export class Forwarder {
  readonly inboxes = new InboxRegistry();
  private readonly store: GatewayStore;
  private readonly metrics: GatewayMetrics;
  private readonly log: Logger;
  /** Backlog sends per "recipient:sender:clipId" in this gateway's run [PLK-12.4]. */
  private readonly attempts = new Map<string, number>();
  /**
   * A cluster node's delivery to an inbox that is not open here (the recipient may be connected to
   * another node): set by createGateway when it has a shared bus. Without one, such a recipient
   * gets the clip from its backlog when it next subscribes.
   */
  remote: ((topic: string, payload: Uint8Array) => void) | undefined;

  constructor(
    private readonly ctx: GatewayContext,
    private readonly backlogBatch: number,
    /** [PLK-12.4] Backlog sends without a receipt after which a delivery is set aside; default 5. */
    private readonly maxAttempts = 5,
  ) {
    this.store = ctx.store;
    this.metrics = ctx.metrics;
    this.log = ctx.log;
  }

  /**
   * Counts one more backlog send of this delivery; past `maxAttempts` it is set aside instead
   * (audited), so that a clip the recipient never receipts cannot block the backlog for ever.
   */
  private async mayResend(recipient: EndpointId, sender: EndpointId, clipId: string): Promise<boolean> {
    const key = `${recipient}:${sender}:${clipId}`;
    const n = (this.attempts.get(key) ?? 0) + 1;
    if (n <= this.maxAttempts) {
      if (this.attempts.size >= 100_000) this.attempts.clear();
      this.attempts.set(key, n);
      return true;
    }
    this.attempts.delete(key);
    if (await this.store.setAside(recipient, sender, clipId, this.ctx.clock())) {
      this.metrics.deliveriesSetAside.inc({ reason: 'no-receipt' });
      await this.ctx.audit({
        at: this.ctx.clock(),
        kind: 'delivery.set_aside',
        endpoint: recipient,
        detail: { reason: 'no-receipt', sender, attempts: this.maxAttempts },
      });
    }
    return false;
  }

  /** [PLK-4.4] After the proof: the endpoint receives live messages, and its backlog is sent. */
  open(client: Client, session: InboxSession): void {
    this.inboxes.set(session.endpointId, client);
    void this.sendBacklog(client, session);
  }

  /** The connection is gone (a takeover keeps the newer one). */
  close(client: Client, session: InboxSession): void {
    this.inboxes.delete(session.endpointId, client);
  }

  /**
   * Sends up to `backlogBatch` undelivered clips, oldest first [PLK-12.4]. When the batch was full,
   * the next one is sent once this session has receipted the whole batch (a refill requested while
   * a batch is still being written runs right after it).
   */
  async sendBacklog(client: Client, session: InboxSession): Promise<void> {
    if (session.running) {
      session.again = true;
      return;
    }
    session.running = true;
    try {
      do {
        session.again = false;
        const t0 = performance.now();
        const pending = await this.store.pendingFor(session.endpointId, this.backlogBatch);
        this.metrics.storeLatency.observe({ op: 'pendingFor' }, (performance.now() - t0) / 1000);
        session.truncated = pending.length >= this.backlogBatch;
        let sent = 0;
        let setAside = 0;
        for (const p of pending) {
          if (client.closed) return;
          const key = `${p.sender}:${p.clipId}`;
          if (session.outstanding?.has(key)) continue;
          if (!(await this.mayResend(session.endpointId, p.sender, p.clipId))) {
            setAside++;
            continue;
          }
          session.outstanding ??= new Set();
          session.outstanding.add(key);
          await publishTo(client, session.topic, p.envelope);
          this.metrics.clipsForwarded.inc();
          sent++;
        }
        // A batch that was all set aside sends nothing, so no receipt would ever ask for the next
        // one: fetch it now, so that poison clips never hold back the clips behind them.
        if (setAside > 0 && sent === 0 && session.truncated) session.again = true;
      } while (session.again && !client.closed);
    } catch (err) {
      if (!client.closed)
        this.log.warn({ err: String(err), endpoint: session.endpointId }, 'backlog delivery failed');
    } finally {
      session.running = false;
    }
  }

  /** A receipt from this session's endpoint: refill a truncated backlog once its batch is receipted. */
  receipted(client: Client, session: InboxSession, sender: EndpointId, clipIdHex: string): void {
    const outstanding = session.outstanding;
    if (outstanding?.delete(`${sender}:${clipIdHex}`) && session.truncated && outstanding.size === 0) {
      void this.sendBacklog(client, session);
    }
  }

  /** A clip just stored: to every recipient that is connected now (the others get it from the backlog). */
  forwardClip(
    recipients: readonly EndpointId[],
    inboxOf: (id: EndpointId) => string,
    envelope: Uint8Array,
  ): void {
    for (const r of recipients) {
      const target = this.inboxes.get(r);
      if (!target) {
        this.remote?.(inboxOf(r), envelope);
        continue;
      }
      this.sendClip(target, inboxOf(r), envelope);
    }
  }

  /** One live clip to one connected inbox, counted once it is handed to the socket. */
  sendClip(target: Client, topic: string, envelope: Uint8Array): void {
    publishTo(target, topic, envelope).then(
      () => this.metrics.clipsForwarded.inc(),
      () => {},
    );
  }

  /** [PLK-12.4] A receipt: to the clip's sender when it is connected. */
  forwardReceipt(sender: EndpointId, topic: string, receipt: Uint8Array): void {
    const target = this.inboxes.get(sender);
    if (target) publishTo(target, topic, receipt).catch(() => {});
    else this.remote?.(topic, receipt);
  }

  /**
   * Sends every open inbox its backlog again (a cluster's shared bus reconnected: live clips
   * published meanwhile by other nodes were lost in transit, but they are pending in the store).
   * Deliveries still outstanding in a session are skipped; the rest may arrive twice [PLK-8.2].
   */
  async resync(sessionOf: (client: Client) => InboxSession | undefined, concurrency = 16): Promise<void> {
    // A few inboxes at a time: a node with 100,000 open inboxes must not send 100,000 store reads at once.
    const clients = this.inboxes.clients();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < clients.length) {
        const client = clients[next++]!;
        const session = sessionOf(client);
        if (session && !client.closed) await this.sendBacklog(client, session);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, clients.length) }, worker));
  }
}
