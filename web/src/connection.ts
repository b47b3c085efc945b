// The page's gateway connection over MQTT-over-WebSocket: a connect token it signs itself as the password, the inbox subscription, and the gateway's proof checked before anything else is sent [PLK-3] [PLK-4.4].
import mqtt, { type MqttClient } from 'mqtt';
import { toBase64Url } from '../../shared/base64url.ts';
import { tweetnaclSuite } from '../../shared/crypto-nacl.ts';
import type { PublicIdentity } from '../../shared/identity.ts';
import { CONTEXT, MSG } from '../../shared/limits.ts';
import { createConnectToken, type GatewayProof, verifyGatewayProof } from '../../shared/token.ts';
import { inboxTopic } from '../../shared/topics.ts';
import { WebError } from './errors.ts';
import { type BrowserKeys, signWithKeys } from './keys.ts';

/** What each CONNACK refusal means for a parent [PLK-3.3]. */
const REFUSED: Readonly<Record<number, string>> = {
  1: 'the gateway speaks another MQTT version',
  2: 'the gateway refused the client id',
  3: 'the gateway is busy (too many connections from this address, or its store is unavailable)',
  4: 'the gateway refused the connect token (is this computer’s clock right?)',
  5: 'this browser’s key is not registered with the gateway (or was revoked)',
};

/** An authenticated connection whose gateway has proved itself. */
export interface GatewayConnection {
  readonly proof: GatewayProof;
  /** QoS 1 publish; resolves on PUBACK (for a clip: durably stored [PLK-12.3]). */
  publish(topic: string, payload: Uint8Array): Promise<void>;
  /** Inbox messages after the proof, in arrival order (earlier ones are replayed to the handler). */
  onMessage(handler: (payload: Uint8Array) => void): void;
  onClose(handler: () => void): void;
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** ws(s)://host:port/mqtt — the page's own origin. */
  readonly url: string;
  readonly keys: BrowserKeys;
  /** The pinned gateway identity: its id goes into the token, its key checks the proof. */
  readonly gateway: PublicIdentity;
  readonly timeoutMs?: number;
}

/**
 * [PLK-3.1] username = client id = the page's endpoint id, password = a fresh connect token in
 * its base64url form (MQTT.js sends passwords as text); then [PLK-3.6] only the inbox SUBSCRIBE
 * until the first inbox message, which must be a proof bound to the token's nonce and signed by
 * the pinned gateway key. A token is single-use, so every reconnect calls this again.
 */
export async function connectGateway(opts: ConnectOptions): Promise<GatewayConnection> {
  const id = opts.keys.identity.id;
  const inbox = inboxTopic(id);
  const timeoutMs = opts.timeoutMs ?? 8000;
  let nonce: Uint8Array = new Uint8Array(0);
  const token = await signWithKeys(opts.keys, CONTEXT.TOKEN, ({ identity, crypto }) => {
    const t = createConnectToken({ identity, gatewayId: opts.gateway.id, now: Date.now(), crypto });
    nonce = t.nonce;
    return t.bytes;
  });
  const client: MqttClient = mqtt.connect(opts.url, {
    clientId: id,
    username: id,
    password: toBase64Url(token),
    protocolVersion: 4,
    clean: true,
    // Native timers: MQTT.js's default starts its timers in a Worker made from a blob: URL, which
    // the page's CSP forbids (no worker-src). A hidden tab's timers may slow to once a minute, so
    // the keepalive is 60 s (the gateway allows 1.5 × that).
    timerVariant: 'native',
    keepalive: 60,
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
    resubscribe: false,
  });

  return new Promise((resolve, reject) => {
    let settled = false;
    let connacked = false;
    const buffered: Uint8Array[] = [];
    let handler: ((payload: Uint8Array) => void) | undefined;
    const closeHandlers: (() => void)[] = [];

    const fail = (err: WebError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end(true);
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          connacked
            ? new WebError('WEB_PROOF', `the gateway did not prove itself within ${timeoutMs / 1000} s`)
            : new WebError('WEB_CONNECT', `no answer from the gateway within ${timeoutMs / 1000} s`),
        ),
      timeoutMs,
    );

    client.on('error', (err: Error & { code?: unknown }) => {
      const code = typeof err.code === 'number' ? err.code : undefined;
      if (code !== undefined && code >= 1 && code <= 5)
        fail(new WebError('WEB_REFUSED', REFUSED[code]!, { cause: err, returnCode: code }));
      else fail(new WebError('WEB_CONNECT', `cannot reach the gateway (${err.message})`, { cause: err }));
    });
    client.on('close', () => {
      if (!settled) fail(new WebError('WEB_CONNECT', 'the gateway closed the connection'));
      else for (const h of closeHandlers.splice(0)) h();
    });
    client.on('message', (topic, payload) => {
      if (topic !== inbox) return;
      const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.length).slice();
      if (!settled) {
        // [PLK-3.6] the very first inbox message must be the proof for our nonce.
        try {
          if (bytes[0] !== MSG.PROOF)
            throw new WebError('WEB_PROOF', 'the first inbox message is not a gateway proof');
          const proof = verifyGatewayProof(bytes, {
            gatewayId: opts.gateway.id,
            gatewaySignPublicKey: opts.gateway.signPublicKey,
            endpointId: id,
            nonce,
            crypto: tweetnaclSuite(),
          });
          settled = true;
          clearTimeout(timer);
          resolve(connection(proof));
        } catch (err) {
          fail(
            err instanceof WebError
              ? err
              : new WebError('WEB_PROOF', `the gateway's proof is wrong (${(err as Error).message})`, {
                  cause: err,
                }),
          );
        }
        return;
      }
      if (handler) handler(bytes);
      else buffered.push(bytes);
    });
    client.once('connect', () => {
      connacked = true;
      client.subscribe(inbox, { qos: 1 }, (err, granted) => {
        if (err) return fail(new WebError('WEB_CONNECT', err.message, { cause: err }));
        const g = granted?.[0];
        if (!g || g.qos === 128)
          fail(new WebError('WEB_CONNECT', 'the gateway refused the inbox subscription'));
      });
    });

    function connection(proof: GatewayProof): GatewayConnection {
      return {
        proof,
        publish: (topic, payload) =>
          new Promise<void>((res, rej) => {
            if (!client.connected) {
              rej(new WebError('WEB_CONNECT', 'not connected'));
              return;
            }
            // MQTT.js's browser build wants its own Buffer; a Uint8Array view is what it writes.
            client.publish(topic, payload as Buffer, { qos: 1 }, (err) =>
              err ? rej(new WebError('WEB_CONNECT', err.message, { cause: err })) : res(),
            );
          }),
        onMessage(h) {
          handler = h;
          for (const b of buffered.splice(0)) h(b);
        },
        onClose(h) {
          if (!client.connected) h();
          else closeHandlers.push(h);
        },
        close: () =>
          new Promise<void>((res) => {
            client.end(false, {}, () => res());
          }),
      };
    }
  });
}
