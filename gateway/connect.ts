// CONNECT handling: per-address rate limit before any crypto, then token authentication with the proper CONNACK code and an audit entry [PLK-3].

import type { Duplex } from 'node:stream';
import type { AuthenticateError, Client } from 'aedes';
import { inboxTopic } from '../shared/topics.ts';
import type { EndpointId } from '../shared/types.ts';
import { AUTH_RETURN_CODES, type AuthReason, authenticateConnect } from './auth.ts';
import type { ConnectInfo, GatewayContext } from './context.ts';
import { newInboxSession } from './forward.ts';

/** The ingest queue of a connection that has published nothing yet: one settled promise for all of them. */
const IDLE: Promise<void> = Promise.resolve();

type PreConnect = (
  client: Client,
  packet: { clean?: boolean; will?: unknown; protocolVersion?: number },
  cb: (e: Error | null, ok: boolean) => void,
) => void;
type Authenticate = (
  client: Client,
  username: Readonly<string | undefined>,
  password: Readonly<Buffer | undefined>,
  done: (error: AuthenticateError | null, success: boolean | null) => void,
) => void;

/** Aedes' preConnect and authenticate hooks; `sources` maps a connection's stream to its peer address. */
export function connectHandlers(
  ctx: GatewayContext,
  sources: WeakMap<Duplex, string>,
): { preConnect: PreConnect; authenticate: Authenticate } {
  const connects = new WeakMap<Client, ConnectInfo>();

  const preConnect: PreConnect = (client, packet, cb) => {
    const source = sources.get(client.conn) ?? 'unknown';
    if (packet.protocolVersion !== 4) {
      // [PLK-3.1] MQTT 3.1.1 only. Aedes answers CONNACK 1 for levels outside 3..4 itself, but lets
      // 3 (MQTT 3.1) through to authenticate, which can only return 2..5: so the level is marked
      // unacceptable here (Aedes then sends CONNACK 1 before any authentication), counted and audited.
      const level = packet.protocolVersion ?? 0;
      packet.protocolVersion = 0;
      ctx.metrics.authFailures.inc({ reason: 'protocol-version' });
      ctx.log.info(
        { event: 'auth.refused', reason: 'protocol-version', level, source },
        'connection refused',
      );
      void ctx.auditRefusal(
        {
          at: ctx.clock(),
          kind: 'auth.refused',
          detail: { reason: 'protocol-version', code: 1, level, source },
        },
        source,
      );
      cb(null, true);
      return;
    }
    // [PLK-12.1] Per-source-address connection rate (token bucket). The refusal itself is sent as
    // CONNACK 3 from authenticate, so that well-behaved clients back off; no crypto work is done.
    ctx.limiters.connect.take(source, 1, ctx.clock()).then(
      (allowed) => {
        connects.set(client, {
          source,
          rateLimited: !allowed,
          clean: packet.clean !== false,
          hasWill: packet.will !== undefined && packet.will !== null,
        });
        cb(null, true);
      },
      (err: unknown) => {
        ctx.log.error({ err: String(err) }, 'connect rate limiter failed');
        cb(new Error('rate limiter unavailable', { cause: err }), false);
      },
    );
  };

  function refusal(reason: AuthReason, endpoint: EndpointId | undefined, source: string) {
    ctx.metrics.authFailures.inc({ reason });
    ctx.log.info({ event: 'auth.refused', reason, endpoint, source }, 'connection refused');
    const err = new Error(`connection refused: ${reason}`) as AuthenticateError;
    err.returnCode = AUTH_RETURN_CODES[reason];
    return err;
  }

  const authenticate: Authenticate = (client, username, password, done) => {
    const info = connects.get(client);
    // Read once: the entry would otherwise live as long as the connection.
    connects.delete(client);
    const source = info?.source ?? 'unknown';
    if (client.closed) {
      // The connection closed while its CONNECT waited (a storm's toy that gave up and will try
      // again): no registry read, no signature check, no audit for a CONNACK nobody reads. Aedes
      // itself stops at this point for a closed client whatever the answer.
      ctx.metrics.connectsAbandoned.inc();
      done(null, false);
      return;
    }
    if (!info || info.rateLimited) {
      // Not audited: a connection storm must not turn into an audit-log write storm.
      done(refusal('rate-limited', undefined, source), false);
      return;
    }
    const now = ctx.clock();
    authenticateConnect(
      {
        gatewayId: ctx.identity.id,
        store: ctx.store,
        nonces: ctx.nonces,
        crypto: ctx.crypto,
        tokenWindowMs: ctx.tokenWindowMs,
      },
      { clientId: client.id, username, password, clean: info.clean, hasWill: info.hasWill, now },
    ).then(
      async (result) => {
        if (result.ok) {
          const id = result.endpoint.id;
          ctx.states.set(client, {
            endpoint: result.endpoint,
            nonce: result.token.nonce,
            source,
            proofSent: false,
            queue: IDLE,
            inbox: newInboxSession(id, inboxTopic(id)),
          });
          ctx.sessions.add(id, client);
          ctx.metrics.connectsAccepted.inc();
          ctx.log.debug({ event: 'auth.ok', endpoint: id }, 'connected');
          done(null, true);
          return;
        }
        const err = refusal(result.reason, result.endpoint, source);
        await ctx.auditRefusal(
          {
            at: now,
            kind: 'auth.refused',
            endpoint: result.endpoint,
            detail: { reason: result.reason, code: err.returnCode, source },
          },
          source,
        );
        done(err, false);
      },
      (err: unknown) => {
        ctx.log.error({ err: String(err) }, 'authenticate failed');
        done(refusal('store-error', undefined, source), false);
      },
    );
  };

  return { preConnect, authenticate };
}
