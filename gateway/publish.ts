// PUBLISH handling: ACL first, then one handler per topic kind (clip, relay, receipt); a clip's PUBACK is held until its store commit [PLK-4.2] [PLK-12.1] [PLK-12.3].
import type { AedesPublishPacket, Client, PublishPacket } from 'aedes';
import { toHex } from '../shared/bytes.ts';
import { CodedError } from '../shared/errors.ts';
import { inboxTopic, mayPublish, parseTopic } from '../shared/topics.ts';
import type { ConnState, GatewayContext } from './context.ts';
import type { Forwarder } from './forward.ts';
import { commitClip, type IngestReason, ingestReceipt, prepareClip } from './ingest.ts';
import type { InTransit } from './transit.ts';

/**
 * Passed to the authorizePublish callback to refuse a publish: Aedes then sends no PUBACK and
 * closes the connection (handlePublish → done(err) → client 'error' → _onError → conn.destroy),
 * the only refusal MQTT 3.1.1 has for a PUBLISH. `code` is the refusal reason.
 */
export class PublishRefusedError extends CodedError<
  IngestReason | 'connection-closed' | 'ingest-failed' | 'unauthenticated'
> {}

/** Completes one publish: no argument = PUBACK (QoS 1) and let Aedes route it; an error = refuse and close. */
type Done = (error?: Error | null) => void;

/** A handler for the publishes of one topic kind; runs in the connection's ingest queue. */
type TopicHandler = (
  client: Client,
  state: ConnState,
  payload: Buffer,
  now: number,
  done: Done,
) => Promise<void>;

type AuthorizePublish = (client: Client | null, packet: PublishPacket, callback: Done) => void;

/** Aedes' authorizePublish and authorizeForward hooks. */
export function publishHandlers(
  ctx: GatewayContext,
  forwarder: Forwarder,
  transit?: InTransit,
): {
  authorizePublish: AuthorizePublish;
  authorizeForward: (client: Client, packet: AedesPublishPacket) => AedesPublishPacket | null;
} {
  const { metrics, log } = ctx;

  async function refuse(state: ConnState, done: Done, reason: IngestReason, detail?: string): Promise<void> {
    metrics.clipsRefused.inc({ reason });
    log.info(
      { event: 'publish.refused', reason, endpoint: state.endpoint.id },
      'publish refused; closing connection',
    );
    await ctx.auditRefusal(
      {
        at: ctx.clock(),
        kind: 'clip.refused',
        endpoint: state.endpoint.id,
        detail: detail ? { reason, detail: detail.slice(0, 120) } : { reason },
      },
      state.source,
    );
    done(new PublishRefusedError(reason, `refused: ${reason}`));
  }

  /**
   * clip and relay topics [PLK-12.1]: the checks run in this connection's queue, and the store write
   * is *submitted* in arrival order (sequence order [PLK-8.1]) without waiting for the previous one
   * to be durable, so that a burst shares group commits. The PUBACK waits for the commit.
   */
  const clipHandler =
    (relay: boolean): TopicHandler =>
    async (client, state, payload, now, done) => {
      const prepared = await prepareClip(ctx.ingest, state.endpoint, payload, now, { relay });
      if (prepared.kind === 'refused') return refuse(state, done, prepared.reason, prepared.detail);
      if (client.closed) return done(new PublishRefusedError('connection-closed', 'connection closed'));
      // [PLK-12.9] through the clips in transit when the store can tell its verdict in advance.
      const submitted = transit
        ? transit.submit(prepared)
        : commitClip(ctx.ingest, prepared).then((outcome) => ({ outcome, forward: prepared.recipients }));
      submitted.then(
        async ({ outcome, forward }) => {
          if (outcome.kind === 'refused') return refuse(state, done, outcome.reason, outcome.detail);
          if (outcome.kind === 'retransmit') {
            // [PLK-8.2] durable since its first arrival: PUBACK again; recipients got or will get it.
            metrics.clipsRetransmitted.inc();
            return done();
          }
          metrics.clipsAccepted.inc();
          metrics.bytesAccepted.inc(payload.length);
          // [PLK-12.3] the store write is durable: only now may Aedes send the PUBACK. In
          // aedes/lib/handlers/publish.js the chain is authorizePublish → (callback) → write PUBACK
          // → broker.publish, so nothing is acknowledged before this call.
          metrics.observeIngest(done);
          done();
          forwarder.forwardClip(forward, inboxTopic, payload);
        },
        (err: unknown) => failed(state, done, err),
      );
    };

  /**
   * rcpt topic [PLK-12.4]: a signed receipt of the connection's own endpoint. Verification is
   * synchronous; the store write is submitted without holding the queue, like a clip's commit.
   */
  const receiptHandler: TopicHandler = async (client, state, payload, now, done) => {
    ingestReceipt(ctx.ingest, state.endpoint, payload, now).then(
      async (outcome) => {
        if (outcome.kind === 'refused') return refuse(state, done, outcome.reason);
        metrics.receipts.inc({ result: outcome.kind });
        done();
        const r = outcome.receipt;
        // [PLK-12.4] the sender learns that (and when) its clip arrived, or that it cannot be opened.
        if (outcome.kind === 'delivered' || outcome.kind === 'set-aside')
          forwarder.forwardReceipt(r.sender, inboxTopic(r.sender), payload);
        if (outcome.kind === 'set-aside') metrics.deliveriesSetAside.inc({ reason: 'unopenable' });
        if (outcome.kind === 'set-aside')
          void ctx.audit({
            at: now,
            kind: 'delivery.set_aside',
            endpoint: state.endpoint.id,
            detail: { reason: 'unopenable', sender: r.sender },
          });
        forwarder.receipted(client, state.inbox, r.sender, toHex(r.clipId));
      },
      (err: unknown) => failed(state, done, err),
    );
  };

  /** One handler per topic kind an endpoint may publish to (mayPublish allows exactly these). */
  const handlers: Readonly<Record<'clip' | 'relay' | 'rcpt', TopicHandler>> = {
    clip: clipHandler(false),
    relay: clipHandler(true),
    rcpt: receiptHandler,
  };

  function failed(state: ConnState, done: Done, err: unknown): void {
    log.error({ err: String(err), endpoint: state.endpoint.id }, 'ingest failed');
    done(new PublishRefusedError('ingest-failed', 'ingest failed', { cause: err }));
  }

  const authorizePublish: AuthorizePublish = (client, packet, callback) => {
    let called = false;
    const done: Done = (error) => {
      if (called) return;
      called = true;
      callback(error);
    };
    metrics.startIngest(done);
    const state = client ? ctx.states.get(client) : undefined;
    if (!client || !state) {
      // Internal publishes do not come here; wills are refused at connect.
      done(new PublishRefusedError('unauthenticated', 'publish without an authenticated endpoint'));
      return;
    }
    // Cheap synchronous ACL checks first [PLK-4.2].
    if (!mayPublish(state.endpoint.id, packet.topic)) {
      void refuse(state, done, 'topic', packet.topic.slice(0, 80));
      return;
    }
    if (packet.retain) {
      void refuse(state, done, 'retain');
      return;
    }
    if (packet.qos > 1) {
      void refuse(state, done, 'qos');
      return;
    }
    const kind = parseTopic(packet.topic).kind;
    const handler = kind === 'clip' || kind === 'relay' || kind === 'rcpt' ? handlers[kind] : undefined;
    if (!handler) {
      void refuse(state, done, 'topic', packet.topic.slice(0, 80));
      return;
    }
    const payload = packet.payload as Buffer;
    const job = async (): Promise<void> => {
      if (client.closed || ctx.closing()) {
        done(new PublishRefusedError('connection-closed', 'connection closed'));
        return;
      }
      await handler(client, state, payload, ctx.clock(), done);
    };
    state.queue = state.queue.then(job).catch((err: unknown) => failed(state, done, err));
  };

  /** Defence in depth: a client only ever receives messages of its own inbox. */
  const authorizeForward = (client: Client, packet: AedesPublishPacket): AedesPublishPacket | null => {
    const state = ctx.states.get(client);
    return state?.proofSent && packet.topic === state.inbox.topic ? packet : null;
  };

  return { authorizePublish, authorizeForward };
}
