// What the gateway's packet handlers share: configuration, seams, metrics and the state of each authenticated connection.
import type { Client } from 'aedes';
import type { Logger } from 'pino';
import type { CryptoSuite } from '../shared/crypto.ts';
import type { PrivateIdentity } from '../shared/identity.ts';
import type { Clock, EndpointId } from '../shared/types.ts';
import type { FirmwareDistributor } from './firmware.ts';
import type { InboxSession } from './forward.ts';
import type { IngestContext } from './ingest.ts';
import type {
  AuditEvent,
  AuditLog,
  EndpointRecord,
  GatewayStore,
  NonceStore,
  RateLimiter,
} from './interfaces.ts';
import type { GatewayMetrics } from './metrics.ts';

export interface GatewayRateLimiters {
  /** New connections per source address (cost 1 per CONNECT). */
  readonly connect: RateLimiter;
  /** Clips per endpoint (cost 1 per clip). */
  readonly clips: RateLimiter;
  /** Envelope bytes per endpoint (cost = envelope size). */
  readonly bytes: RateLimiter;
  /** Receipts per endpoint (cost 1); unlimited when absent. */
  readonly receipts?: RateLimiter;
}

/** An authenticated connection: who it is, the nonce its proof is bound to, its inbox delivery state. */
export interface ConnState {
  readonly endpoint: EndpointRecord;
  readonly nonce: Uint8Array;
  readonly source: string;
  proofSent: boolean;
  /** Publishes of one connection are ingested one after the other (sequence order [PLK-8.1]). */
  queue: Promise<void>;
  readonly inbox: InboxSession;
}

/** Shape of a CONNECT, noted by preConnect for authenticate. */
export interface ConnectInfo {
  readonly source: string;
  readonly rateLimited: boolean;
  readonly clean: boolean;
  readonly hasWill: boolean;
}

export interface GatewayContext {
  readonly identity: PrivateIdentity;
  readonly store: GatewayStore;
  readonly nonces: NonceStore;
  readonly limiters: GatewayRateLimiters;
  readonly clock: Clock;
  readonly crypto: CryptoSuite;
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  readonly tokenWindowMs: number;
  readonly ingest: IngestContext;
  /** State per authenticated connection (absent: not authenticated). */
  readonly states: WeakMap<Client, ConnState>;
  /** Authenticated connections by endpoint (a takeover briefly has two) [PLK-12.7]. */
  readonly sessions: SessionTable;
  /** [PLK-13.6] The firmware channel: releases to toys' inboxes after their proof (absent: no firmware). */
  readonly firmware?: FirmwareDistributor | undefined;
  /** True once close() has begun: new work is refused. */
  closing(): boolean;
  /** [PLK-12.2] Appends to the audit log; never throws into the broker (a failure is logged loudly). */
  audit(event: AuditEvent): Promise<void>;
  /** [PLK-12.8] A refusal caused by `source`: its own audit row within the budget, else summarised. */
  auditRefusal(event: AuditEvent, source: string): Promise<void>;
}

/**
 * Authenticated connections by endpoint: the Client itself, or a Set only while a takeover has two
 * (an empty Set and its table cost ~150 bytes per connected toy, and most endpoints have one).
 */
export class SessionTable {
  private readonly byId = new Map<EndpointId, Client | Set<Client>>();

  add(id: EndpointId, client: Client): void {
    const cur = this.byId.get(id);
    if (cur === undefined) this.byId.set(id, client);
    else if (cur instanceof Set) cur.add(client);
    else if (cur !== client) this.byId.set(id, new Set([cur, client]));
  }

  delete(id: EndpointId, client: Client): void {
    const cur = this.byId.get(id);
    if (cur === client) this.byId.delete(id);
    else if (cur instanceof Set && cur.delete(client)) {
      const [only, ...rest] = cur;
      if (only === undefined) this.byId.delete(id);
      else if (rest.length === 0) this.byId.set(id, only);
    }
  }

  /** The endpoint's connections (a copy). */
  clients(id: EndpointId): Client[] {
    const cur = this.byId.get(id);
    if (cur === undefined) return [];
    return cur instanceof Set ? [...cur] : [cur];
  }

  /** Endpoints with at least one connection. */
  get size(): number {
    return this.byId.size;
  }
}

/** The audit appender of a GatewayContext: failures are logged, never thrown. */
export function safeAudit(audit: AuditLog, log: Logger): (event: AuditEvent) => Promise<void> {
  return async (event) => {
    try {
      await audit.append(event);
    } catch (err) {
      log.error({ err: String(err), kind: event.kind }, 'audit append failed');
    }
  };
}
