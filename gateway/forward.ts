// Inbox delivery: gateway proof first, then the stored backlog, then live clips and receipts, all at QoS 1 [PLK-4.4] [PLK-12.4].
import type { Client, PublishPacket } from 'aedes';
import type { EndpointId } from '../shared/types.ts';

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
}
