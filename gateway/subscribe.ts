// SUBSCRIBE handling: own inbox only (wildcards, $SYS and other inboxes refused with 0x80), then the gateway proof and the backlog [PLK-4.3] [PLK-4.4].
import type { Client, Subscription } from 'aedes';
import { createGatewayProof } from '../shared/token.ts';
import { maySubscribe } from '../shared/topics.ts';
import type { GatewayContext } from './context.ts';
import { type Forwarder, publishTo } from './forward.ts';
import type { Rosters } from './roster.ts';

/** [PLK-12.6] Why a subscription was refused (SUBACK 0x80 for that filter): metric label and audit detail. */
export const SUBSCRIBE_REASONS = {
  sys: 'a `$` topic such as `$SYS/#`',
  wildcard: 'a filter with `#` or `+`',
  'not-own-inbox': "any topic but the connection's own inbox",
} as const;
export type SubscribeReason = keyof typeof SUBSCRIBE_REASONS;

/** [PLK-4.3] Refused filters a connection may ask for (in one SUBSCRIBE or in all) before it is closed. */
export const MAX_REFUSED_FILTERS = 4;

type AuthorizeSubscribe = (
  client: Client,
  sub: Subscription,
  cb: (error: Error | null, subscription?: Subscription | null) => void,
) => void;

/** Aedes' authorizeSubscribe hook and the handler of its `subscribe` event. */
export function subscribeHandlers(
  ctx: GatewayContext,
  forwarder: Forwarder,
  rosters: Rosters,
): { authorizeSubscribe: AuthorizeSubscribe; onSubscribed: (subs: Subscription[], client: Client) => void } {
  /** Refused filters per connection: past MAX_REFUSED_FILTERS the connection is closed [PLK-4.3]. */
  const refused = new WeakMap<Client, number>();

  const authorizeSubscribe: AuthorizeSubscribe = (client, sub, cb) => {
    const state = ctx.states.get(client);
    if (state && maySubscribe(state.endpoint.id, sub.topic)) {
      // [PLK-4.3] own inbox only, always granted at QoS 1: inbox delivery is QoS 1 [PLK-4.4].
      cb(null, { ...sub, qos: 1 });
      return;
    }
    const n = (refused.get(client) ?? 0) + 1;
    refused.set(client, n);
    const reason: SubscribeReason = sub.topic.startsWith('$')
      ? 'sys'
      : sub.topic.includes('#') || sub.topic.includes('+')
        ? 'wildcard'
        : 'not-own-inbox';
    ctx.metrics.subscribeRefusals.inc({ reason });
    if (n <= MAX_REFUSED_FILTERS) {
      ctx.log.info(
        { event: 'subscribe.refused', reason, endpoint: state?.endpoint.id },
        'subscription refused',
      );
      void ctx.auditRefusal(
        {
          at: ctx.clock(),
          kind: 'subscribe.refused',
          endpoint: state?.endpoint.id,
          detail: { reason, topic: sub.topic.slice(0, 80) },
        },
        state?.source ?? 'unknown',
      );
    }
    if (n === MAX_REFUSED_FILTERS + 1) {
      ctx.metrics.socketViolations.inc({ reason: 'subscribe-flood' });
      void ctx.auditRefusal(
        {
          at: ctx.clock(),
          kind: 'socket.violation',
          endpoint: state?.endpoint.id,
          detail: { reason: 'subscribe-flood', filters: n },
        },
        state?.source ?? 'unknown',
      );
      ctx.log.info(
        { event: 'subscribe.flood', endpoint: state?.endpoint.id },
        'too many refused filters; closing',
      );
      setImmediate(() => client.close());
    }
    // (null, null) makes Aedes answer 0x80 for this topic in the SUBACK (aedes/lib/handlers/subscribe.js).
    cb(null, null);
  };

  /** [PLK-4.4] On the inbox subscription: the proof, bound to the token nonce, then the backlog. */
  const onSubscribed = (subs: Subscription[], client: Client): void => {
    const state = ctx.states.get(client);
    // A connection that closed meanwhile gets no proof: its signature would go to no one.
    if (!state || state.proofSent || client.closed) return;
    if (!subs.some((s) => s.topic === state.inbox.topic && (s.qos as number) !== 128)) return;
    state.proofSent = true;
    const proof = createGatewayProof({
      gateway: ctx.identity,
      endpointId: state.endpoint.id,
      nonce: state.nonce,
      now: ctx.clock(),
      crypto: ctx.crypto,
    });
    publishTo(client, state.inbox.topic, proof).catch(() => {});
    // [PLK-4.4] then the roster, then the backlog and live messages (Client.publish keeps this order).
    rosters.forEndpoint(state.endpoint).then(
      (roster) => {
        if (client.closed) return;
        if (roster) publishTo(client, state.inbox.topic, roster).catch(() => {});
        forwarder.open(client, state.inbox);
        ctx.firmware?.onInboxOpened(client, state); // [PLK-13.6] the latest release of each model, after the proof
      },
      (err: unknown) => {
        ctx.log.error({ err: String(err), endpoint: state.endpoint.id }, 'roster failed; closing');
        client.close();
      },
    );
  };

  return { authorizeSubscribe, onSubscribed };
}
