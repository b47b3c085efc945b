// The one MQTT connect client of endpoints and simulators: signed token as password, inbox subscription, gateway proof checked before anything else is sent [PLK-3] [PLK-4.4].
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { CryptoSuite } from '../../shared/crypto.ts';
import { defaultCrypto } from '../../shared/crypto.ts';
import { CodedError } from '../../shared/errors.ts';
import type { PrivateIdentity, PublicIdentity } from '../../shared/identity.ts';
import { MSG, NONCE_BYTES } from '../../shared/limits.ts';
import {
  createConnectToken,
  decodeConnectToken,
  type GatewayProof,
  verifyGatewayProof,
} from '../../shared/token.ts';
import { clipTopic, inboxTopic, receiptTopic, relayTopic } from '../../shared/topics.ts';
import type { Clock, EndpointId, RandomSource } from '../../shared/types.ts';

/** Transport options every connection takes. */
export interface MqttConnectOptions {
  /** mqtt://host:port or mqtts://host:port. */
  readonly url: string;
  readonly identity: PrivateIdentity;
  readonly clock?: Clock;
  readonly random?: RandomSource;
  readonly crypto?: CryptoSuite;
  /** PEM CA (or self-signed gateway certificate) to pin for mqtts://. */
  readonly ca?: string | Buffer;
  /** TLS server name when it differs from the URL host. */
  readonly servername?: string;
  /** Give up when CONNACK, SUBACK and the proof have not all arrived in time; default 5000 ms. */
  readonly timeoutMs?: number;
  /** MQTT keepalive in seconds; default 30. */
  readonly keepalive?: number;
}

export interface ConnectEndpointOptions extends MqttConnectOptions {
  /** The pinned gateway identity (its id is bound into the token; its key verifies the proof). */
  readonly gateway: PublicIdentity;
  /**
   * Attack scenarios and tests only: send these bytes as the MQTT password instead of a freshly
   * signed token (a captured token replayed, a forged one). The proof must still match their nonce.
   */
  readonly token?: Uint8Array;
  /** Called with the token bytes about to be sent (an attack scenario captures them here). */
  readonly onToken?: (token: Uint8Array) => void;
}

export type InboxKind = 'clip' | 'receipt' | 'unknown';
export type InboxHandler = (kind: InboxKind, bytes: Uint8Array) => void;

/** A connection whose inbox subscription was granted. */
export interface MqttEndpointConnection {
  readonly client: MqttClient;
  readonly endpointId: EndpointId;
  /**
   * Sets the handler for inbox messages after the proof: clip envelopes (0x01) and receipts (0x02).
   * Messages that arrived before a handler was set are buffered and delivered to it at once.
   */
  onInbox(handler: InboxHandler): void;
  /** Publishes a clip envelope to the endpoint's own clip topic (QoS 1); resolves on PUBACK (= durably stored). */
  publishClip(envelope: Uint8Array): Promise<void>;
  /**
   * Publishes an envelope sealed and signed by another member of the family (a toy that handed it
   * over BLE) to this endpoint's relay topic, unchanged (QoS 1; resolves on PUBACK) [PLK-4.5].
   */
  publishRelay(envelope: Uint8Array): Promise<void>;
  /** Publishes a receipt to the endpoint's own receipt topic (QoS 1). */
  publishReceipt(receipt: Uint8Array): Promise<void>;
  /** Disconnects cleanly. */
  close(): Promise<void>;
}

/** An authenticated, gateway-verified connection of one endpoint. */
export interface EndpointConnection extends MqttEndpointConnection {
  readonly proof: GatewayProof;
}

export type ConnectErrorCode =
  | 'CONNECT_REFUSED'
  | 'CONNECT_TIMEOUT'
  | 'CONNECT_CLOSED'
  | 'SUBSCRIBE_REFUSED'
  | 'PROOF_INVALID'
  | 'PROOF_TIMEOUT'
  | 'TRANSPORT';

/** A connection attempt failed; `code` says how, `cause` holds the transport error when there is one. */
export class ConnectError extends CodedError<ConnectErrorCode> {}

/** The gateway refused the connection: `returnCode` is the MQTT 3.1.1 CONNACK code (1..5). */
export class ConnectRefusedError extends ConnectError {
  constructor(
    readonly returnCode: number,
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super('CONNECT_REFUSED', message, options);
  }
}

/** The gateway did not prove its identity (missing, late, wrong or badly signed proof) [PLK-3.6]. */
export class GatewayProofError extends ConnectError {
  constructor(message: string, options?: { readonly cause?: unknown; readonly late?: boolean }) {
    super(options?.late ? 'PROOF_TIMEOUT' : 'PROOF_INVALID', message, options);
  }
}

function kindOf(bytes: Uint8Array): InboxKind {
  return bytes[0] === MSG.CLIP ? 'clip' : bytes[0] === MSG.RECEIPT ? 'receipt' : 'unknown';
}

const toBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.length);

/** How the connection proves who is at each end. */
type Auth =
  | {
      readonly kind: 'plushlink';
      readonly gateway: PublicIdentity;
      readonly token: Uint8Array;
      /** The nonce the proof must be bound to (zeros when the token bytes do not decode). */
      readonly nonce: Uint8Array;
    }
  | { readonly kind: 'none' };

/**
 * Connects an endpoint: MQTT username = client id = endpoint id, password = a fresh signed connect
 * token [PLK-3.1]; subscribes to its inbox and waits for the gateway proof bound to the token's
 * nonce, verified against the pinned gateway key [PLK-3.6]. Nothing else is sent before the proof
 * has been checked. Resolves with the connection, or rejects (and disconnects) with a ConnectError
 * (ConnectRefusedError, GatewayProofError, or a code for timeouts, closes and transport errors).
 *
 * Auto-reconnect is off: a token is single-use, so reconnecting means calling connectEndpoint again.
 */
export function connectEndpoint(opts: ConnectEndpointOptions): Promise<EndpointConnection> {
  const crypto = opts.crypto ?? defaultCrypto();
  let token = opts.token;
  let nonce: Uint8Array;
  if (token === undefined) {
    const t = createConnectToken({
      identity: opts.identity,
      gatewayId: opts.gateway.id,
      now: (opts.clock ?? Date.now)(),
      crypto,
      ...(opts.random ? { random: opts.random } : {}),
    });
    token = t.bytes;
    nonce = t.nonce;
  } else {
    try {
      nonce = decodeConnectToken(token).nonce;
    } catch {
      nonce = new Uint8Array(NONCE_BYTES); // a forged token: no proof can match it
    }
  }
  opts.onToken?.(token);
  return open(
    opts,
    { kind: 'plushlink', gateway: opts.gateway, token, nonce },
    crypto,
  ) as Promise<EndpointConnection>;
}

/**
 * Benchmarks only: an anonymous MQTT connection to a plain reference broker (bare Aedes,
 * Mosquitto) with the same inbox subscription, so that a load test can push the same bytes
 * through a broker that does no authentication. Never used by a toy or a parent app.
 */
export function connectPlain(opts: MqttConnectOptions): Promise<MqttEndpointConnection> {
  return open(opts, { kind: 'none' }, opts.crypto ?? defaultCrypto());
}

function open(
  opts: MqttConnectOptions,
  auth: Auth,
  crypto: CryptoSuite,
): Promise<MqttEndpointConnection | EndpointConnection> {
  const id = opts.identity.id;
  const inbox = inboxTopic(id);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const mqttOpts: IClientOptions = {
    clientId: id,
    protocolVersion: 4,
    clean: true,
    keepalive: opts.keepalive ?? 30,
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
    resubscribe: false,
  };
  if (auth.kind === 'plushlink') {
    mqttOpts.username = id;
    mqttOpts.password = toBuffer(auth.token);
  }
  if (opts.ca !== undefined) {
    mqttOpts.ca = opts.ca;
    mqttOpts.rejectUnauthorized = true;
  }
  if (opts.servername !== undefined) mqttOpts.servername = opts.servername;
  const client = mqtt.connect(opts.url, mqttOpts);

  return new Promise((resolve, reject) => {
    let settled = false;
    let connacked = false;
    const buffered: Uint8Array[] = [];
    let handler: InboxHandler | undefined;

    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end(true);
      reject(err);
    };
    const succeed = (proof: GatewayProof | null) => {
      settled = true;
      clearTimeout(timer);
      resolve(connection(proof));
    };
    const timer = setTimeout(
      () =>
        fail(
          !connacked
            ? new ConnectError('CONNECT_TIMEOUT', `no CONNACK within ${timeoutMs} ms`)
            : auth.kind === 'plushlink'
              ? new GatewayProofError(`no gateway proof within ${timeoutMs} ms`, { late: true })
              : new ConnectError('CONNECT_TIMEOUT', `no SUBACK within ${timeoutMs} ms`),
        ),
      timeoutMs,
    );

    client.on('error', (err: Error & { code?: unknown }) => {
      if (typeof err.code === 'number' && err.code >= 1 && err.code <= 5) {
        fail(new ConnectRefusedError(err.code, err.message, { cause: err }));
      } else {
        fail(new ConnectError('TRANSPORT', err.message, { cause: err }));
      }
    });
    client.on('close', () =>
      fail(new ConnectError('CONNECT_CLOSED', 'connection closed before it was ready')),
    );

    client.on('message', (topic, payload) => {
      if (topic !== inbox) return;
      const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.length);
      if (!settled && auth.kind === 'plushlink') {
        // [PLK-3.6] the very first inbox message must be a valid proof for our nonce.
        let proof: GatewayProof;
        try {
          if (bytes[0] !== MSG.PROOF)
            throw new GatewayProofError('first inbox message is not a gateway proof');
          proof = verifyGatewayProof(bytes, {
            gatewayId: auth.gateway.id,
            gatewaySignPublicKey: auth.gateway.signPublicKey,
            endpointId: id,
            nonce: auth.nonce,
            crypto,
          });
        } catch (err) {
          fail(
            err instanceof GatewayProofError
              ? err
              : new GatewayProofError(err instanceof Error ? err.message : String(err), { cause: err }),
          );
          return;
        }
        succeed(proof);
        return;
      }
      if (handler) handler(kindOf(bytes), bytes);
      else buffered.push(bytes);
    });

    client.once('connect', () => {
      connacked = true;
      client.subscribe(inbox, { qos: 1 }, (err, granted) => {
        if (err) {
          fail(new ConnectError('TRANSPORT', err.message, { cause: err }));
          return;
        }
        const g = granted?.[0];
        if (!g || g.qos === 128) {
          fail(new ConnectError('SUBSCRIBE_REFUSED', 'the broker refused the inbox subscription'));
          return;
        }
        if (auth.kind === 'none' && !settled) succeed(null);
      });
    });

    const publish = (topic: string, bytes: Uint8Array) =>
      new Promise<void>((res, rej) => {
        client.publish(topic, toBuffer(bytes), { qos: 1 }, (err) => (err ? rej(err) : res()));
      });

    function connection(p: GatewayProof | null): MqttEndpointConnection | EndpointConnection {
      const base: MqttEndpointConnection = {
        client,
        endpointId: id,
        onInbox(h) {
          handler = h;
          for (const b of buffered.splice(0)) h(kindOf(b), b);
        },
        publishClip: (envelope) => publish(clipTopic(id), envelope),
        publishRelay: (envelope) => publish(relayTopic(id), envelope),
        publishReceipt: (receipt) => publish(receiptTopic(id), receipt),
        close: () =>
          new Promise<void>((res) => {
            client.end(false, {}, () => res());
          }),
      };
      return p ? { ...base, proof: p } : base;
    }
  });
}
