// MQTT topic names and the endpoint topic ACL [PLK-4].
import { PlushlinkError } from './errors.ts';
import { isEndpointId } from './identity.ts';
import type { EndpointId } from './types.ts';

/** [PLK-4.1] Topic root; the protocol major version is part of every topic. */
export const TOPIC_ROOT = 'plk/1';
export type TopicKind = 'clip' | 'rcpt' | 'inbox' | 'relay';
const KINDS: readonly TopicKind[] = ['clip', 'rcpt', 'inbox', 'relay'];

export const clipTopic = (id: EndpointId): string => `${TOPIC_ROOT}/${id}/clip`;
export const receiptTopic = (id: EndpointId): string => `${TOPIC_ROOT}/${id}/rcpt`;
export const inboxTopic = (id: EndpointId): string => `${TOPIC_ROOT}/${id}/inbox`;
/** [PLK-4.5] Where an endpoint publishes envelopes it relays for a family member (a toy over BLE). */
export const relayTopic = (id: EndpointId): string => `${TOPIC_ROOT}/${id}/relay`;

export interface ParsedTopic {
  readonly id: EndpointId;
  readonly kind: TopicKind;
}

/** Parses an exact PlushLink topic; wildcards, $-topics and anything else throw PLK_E_TOPIC. */
export function parseTopic(topic: string): ParsedTopic {
  if (typeof topic !== 'string' || topic.length > 64) throw new PlushlinkError('PLK_E_TOPIC', 'bad topic');
  const parts = topic.split('/');
  if (parts.length !== 4 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT)
    throw new PlushlinkError('PLK_E_TOPIC', topic);
  const id = parts[2];
  const kind = parts[3] as TopicKind;
  if (!isEndpointId(id) || !KINDS.includes(kind)) throw new PlushlinkError('PLK_E_TOPIC', topic);
  return { id, kind };
}

/** [PLK-4.2] An endpoint publishes only to its own clip, receipt and relay topics. */
export function mayPublish(endpoint: EndpointId, topic: string): boolean {
  try {
    const t = parseTopic(topic);
    return t.id === endpoint && t.kind !== 'inbox';
  } catch {
    return false;
  }
}

/** [PLK-4.3] An endpoint subscribes only to its own inbox; `#`, `+` and `$SYS` never match. */
export function maySubscribe(endpoint: EndpointId, topic: string): boolean {
  try {
    const t = parseTopic(topic);
    return t.id === endpoint && t.kind === 'inbox';
  } catch {
    return false;
  }
}
