// SUBSCRIBE handling: own inbox only (wildcards, $SYS and other inboxes refused with 0x80), then the gateway proof and the backlog [PLK-4.3] [PLK-4.4].
import type { Client, Subscription } from 'aedes';
import { createGatewayProof } from '../shared/token.ts';
import { maySubscribe } from '../shared/topics.ts';
import type { GatewayContext } from './context.ts';
import { type Forwarder, publishTo } from './forward.ts';

/** [PLK-12.6] Why a subscription was refused (SUBACK 0x80 for that filter): metric label and audit detail. */
export const SUBSCRIBE_REASONS = {
  sys: 'a `$` topic such as `$SYS/#`',
  wildcard: 'a filter with `#` or `+`',
  'not-own-inbox': "any topic but the connection's own inbox",
} as const;
export type SubscribeReason = keyof typeof SUBSCRIBE_REASONS;

type AuthorizeSubscribe = (
  client: Client,
  sub: Subscription,
  cb: (error: Error | null, subscription?: Subscription | null) => void,
) => void;

/** Aedes' authorizeSubscribe hook and the handler of its `subscribe` event. */
export function subscribeHandlers(
  ctx: GatewayContext,
  forwarder: Forwarder,
): { authorizeSubscribe: AuthorizeSubscribe; onSubscribed: (subs: Subscription[], client: Client) => void } {
  const authorizeSubscribe: AuthorizeSubscribe = (client, sub, cb) => {
    const state = ctx.states.get(client);
    if (state && maySubscribe(state.endpoint.id, sub.topic)) {
      // [PLK-4.3] own inbox only; deliveries are QoS 1, so never grant more.
      cb(null, { ...sub, qos: sub.qos === 2 ? 1 : sub.qos });
      return;
    }
    const reason: SubscribeReason = sub.topic.startsWith('$')
      ? 'sys'
      : sub.topic.includes('#') || sub.topic.includes('+')
        ? 'wildcard'
        : 'not-own-inbox';
    ctx.metrics.subscribeRefusals.inc({ reason });
    ctx.log.info(
      { event: 'subscribe.refused', reason, endpoint: state?.endpoint.id },
      'subscription refused',
    );
    void ctx.audit({
      at: ctx.clock(),
      kind: 'subscribe.refused',
      endpoint: state?.endpoint.id,
      detail: { reason, topic: sub.topic.slice(0, 80) },
    });
    // (null, null) makes Aedes answer 0x80 for this topic in the SUBACK (aedes/lib/handlers/subscribe.js).
    cb(null, null);
  };

  /** [PLK-4.4] On the inbox subscription: the proof, bound to the token nonce, then the backlog. */
  const onSubscribed = (subs: Subscription[], client: Client): void => {
    const state = ctx.states.get(client);
    if (!state || state.proofSent) return;
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
    forwarder.open(client, state.inbox);
  };

  return { authorizeSubscribe, onSubscribed };
}
