// Endpoint-side MQTT connect: signed token as password, inbox subscription, gateway proof checked before anything else is sent [PLK-3] [PLK-4.4].
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { CryptoSuite } from '../../shared/crypto.ts';
import { defaultCrypto } from '../../shared/crypto.ts';
import type { PrivateIdentity, PublicIdentity } from '../../shared/identity.ts';
import { MSG } from '../../shared/limits.ts';
import { createConnectToken, type GatewayProof, verifyGatewayProof } from '../../shared/token.ts';
import { clipTopic, inboxTopic, receiptTopic, relayTopic } from '../../shared/topics.ts';
import type { Clock, EndpointId, RandomSource } from '../../shared/types.ts';

export interface ConnectEndpointOptions {
  /** mqtt://host:port or mqtts://host:port. */
  readonly url: string;
  readonly identity: PrivateIdentity;
  /** The pinned gateway identity (its id is bound into the token; its key verifies the proof). */
  readonly gateway: PublicIdentity;
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

export type InboxKind = 'clip' | 'receipt' | 'unknown';
export type InboxHandler = (kind: InboxKind, bytes: Uint8Array) => void;

/** An authenticated, gateway-verified connection of one endpoint. */
export interface EndpointConnection {
  readonly client: MqttClient;
  readonly endpointId: EndpointId;
  readonly proof: GatewayProof;
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

/** The gateway refused the connection: `returnCode` is the MQTT 3.1.1 CONNACK code (2..5). */
export class ConnectRefusedError extends Error {
  constructor(
    readonly returnCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'ConnectRefusedError';
  }
}

/** The gateway did not prove its identity (missing, late, wrong or badly signed proof) [PLK-3.6]. */
export class GatewayProofError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GatewayProofError';
  }
}

function kindOf(bytes: Uint8Array): InboxKind {
  return bytes[0] === MSG.CLIP ? 'clip' : bytes[0] === MSG.RECEIPT ? 'receipt' : 'unknown';
}

const toBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.length);

/**
 * Connects an endpoint: MQTT username = client id = endpoint id, password = a fresh signed connect
 * token [PLK-3.1]; subscribes to its inbox and waits for the gateway proof bound to the token's
 * nonce, verified against the pinned gateway key [PLK-3.6]. Nothing else is sent before the proof
 * has been checked. Resolves with the connection, or rejects (and disconnects) with
 * ConnectRefusedError, GatewayProofError or a transport error.
 *
 * Auto-reconnect is off: a token is single-use, so reconnecting means calling connectEndpoint again.
 */
export function connectEndpoint(opts: ConnectEndpointOptions): Promise<EndpointConnection> {
  const clock = opts.clock ?? Date.now;
  const crypto = opts.crypto ?? defaultCrypto();
  const id = opts.identity.id;
  const inbox = inboxTopic(id);
  const token = createConnectToken({
    identity: opts.identity,
    gatewayId: opts.gateway.id,
    now: clock(),
    crypto,
    ...(opts.random ? { random: opts.random } : {}),
  });
  const timeoutMs = opts.timeoutMs ?? 5000;
  const mqttOpts: IClientOptions = {
    clientId: id,
    username: id,
    password: toBuffer(token.bytes),
    protocolVersion: 4,
    clean: true,
    keepalive: opts.keepalive ?? 30,
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
    resubscribe: false,
  };
  if (opts.ca !== undefined) {
    mqttOpts.ca = opts.ca;
    mqttOpts.rejectUnauthorized = true;
  }
  if (opts.servername !== undefined) mqttOpts.servername = opts.servername;
  const client = mqtt.connect(opts.url, mqttOpts);

  return new Promise<EndpointConnection>((resolve, reject) => {
    let settled = false;
    let proof: GatewayProof | undefined;
    const buffered: Uint8Array[] = [];
    let handler: InboxHandler | undefined;

    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end(true);
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new GatewayProofError(`no gateway proof within ${timeoutMs} ms`)),
      timeoutMs,
    );

    client.on('error', (err: Error & { code?: unknown }) => {
      if (typeof err.code === 'number' && err.code >= 1 && err.code <= 5) {
        fail(new ConnectRefusedError(err.code, err.message));
      } else {
        fail(err);
      }
    });
    client.on('close', () => fail(new Error('connection closed before the gateway proof')));

    client.on('message', (topic, payload) => {
      if (topic !== inbox) return;
      const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.length);
      if (!proof) {
        // [PLK-3.6] the very first inbox message must be a valid proof for our nonce.
        try {
          if (bytes[0] !== MSG.PROOF)
            throw new GatewayProofError('first inbox message is not a gateway proof');
          proof = verifyGatewayProof(bytes, {
            gatewayId: opts.gateway.id,
            gatewaySignPublicKey: opts.gateway.signPublicKey,
            endpointId: id,
            nonce: token.nonce,
            crypto,
          });
        } catch (err) {
          fail(
            err instanceof GatewayProofError
              ? err
              : new GatewayProofError(err instanceof Error ? err.message : String(err)),
          );
          return;
        }
        settled = true;
        clearTimeout(timer);
        resolve(connection(proof));
        return;
      }
      if (handler) handler(kindOf(bytes), bytes);
      else buffered.push(bytes);
    });

    client.once('connect', () => {
      client.subscribe(inbox, { qos: 1 }, (err, granted) => {
        if (err) {
          fail(err);
          return;
        }
        const g = granted?.[0];
        if (!g || g.qos === 128) fail(new Error('gateway refused the inbox subscription'));
      });
    });

    const publish = (topic: string, bytes: Uint8Array) =>
      new Promise<void>((res, rej) => {
        client.publish(topic, toBuffer(bytes), { qos: 1 }, (err) => (err ? rej(err) : res()));
      });

    function connection(p: GatewayProof): EndpointConnection {
      return {
        client,
        endpointId: id,
        proof: p,
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
    }
  });
}
