// Wi-Fi link: the device transport seam (Connector/EndpointLink) and its MQTT.js implementation over TCP or pinned TLS [PLK-3][PLK-4].
import type { PrivateIdentity, PublicIdentity } from '../../shared/identity.ts';
import { inboxTopic } from '../../shared/topics.ts';
import type { Clock, RandomSource } from '../../shared/types.ts';
import { connectEndpoint, type EndpointConnection } from './mqtt-connect.ts';

/** An authenticated connection to the gateway: the gateway's proof has already been checked [PLK-3.6]. */
export interface EndpointLink {
  /** QoS 1 publish; resolves on PUBACK, rejects when the link closes first. */
  publish(topic: string, payload: Uint8Array): Promise<void>;
  /** Inbox messages (in arrival order); messages that arrived before a handler was set are replayed to it. */
  onMessage(handler: (topic: string, payload: Uint8Array) => void): void;
  /** Called once, when the link is closed for any reason. */
  onClose(handler: (reason: Error | undefined) => void): void;
  readonly closed: boolean;
  /** The gateway behind this link sends a roster right after its proof [PLK-4.6]. */
  readonly sendsRoster?: boolean;
  /** Graceful MQTT DISCONNECT. */
  close(): Promise<void>;
  /** Kills the socket without DISCONNECT (a lost Wi-Fi, a crash): in-flight publishes stay unacknowledged. */
  destroy(): void;
}

export interface ConnectRequest {
  readonly identity: PrivateIdentity;
  /** The pinned gateway identity whose proof must verify. */
  readonly gateway: PublicIdentity;
  /** Called after CONNACK, while the endpoint waits for and checks the gateway's proof. */
  readonly onCheckingProof?: () => void;
  readonly signal?: AbortSignal;
}

/** Opens EndpointLinks (Wi-Fi/MQTT here; a BLE relay or a test double elsewhere). */
export interface Connector {
  connect(req: ConnectRequest): Promise<EndpointLink>;
}

export interface WifiOptions {
  /** mqtt://host:port (TCP) or mqtts://host:port (TLS). */
  readonly url: string;
  /** For mqtts://: the gateway's PEM certificate, the only trust anchor (certificate pinning). */
  readonly ca?: string | Buffer;
  /** TLS server name when it differs from the URL host. */
  readonly servername?: string;
  /** Clock for connect-token timestamps (the gateway checks them against its own, ±60 s). */
  readonly clock?: Clock;
  /** Random source for connect-token nonces; the system CSPRNG when absent. */
  readonly random?: RandomSource;
  /** CONNACK + SUBACK + proof deadline; default 5000 ms. */
  readonly timeoutMs?: number;
  readonly keepalive?: number;
}

const toBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.length);

/** Wraps a verified MQTT connection as an EndpointLink; pending publishes fail when the socket goes. */
class MqttLink implements EndpointLink {
  readonly sendsRoster = true;
  private closedFlag = false;
  private reason: Error | undefined;
  private readonly closeHandlers: ((reason: Error | undefined) => void)[] = [];
  private readonly pending = new Set<(err: Error) => void>();

  constructor(private readonly conn: EndpointConnection) {
    const client = conn.client;
    client.on('error', (err: Error) => {
      this.reason ??= err;
    });
    client.on('close', () => this.markClosed());
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  private markClosed(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    const err = this.reason ?? new Error('connection closed');
    for (const reject of this.pending) reject(err);
    this.pending.clear();
    // No auto-reconnect (a token is single-use): release MQTT.js's timers and stores.
    this.conn.client.end(true);
    for (const h of this.closeHandlers.splice(0)) h(this.reason);
  }

  publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.closedFlag) return Promise.reject(new Error('connection closed'));
    return new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void => reject(err);
      this.pending.add(fail);
      this.conn.client.publish(topic, toBuffer(payload), { qos: 1 }, (err) => {
        this.pending.delete(fail);
        if (err) reject(err);
        else resolve();
      });
    });
  }

  onMessage(handler: (topic: string, payload: Uint8Array) => void): void {
    const inbox = inboxTopic(this.conn.endpointId);
    this.conn.onInbox((_kind, bytes) => handler(inbox, bytes));
  }

  onClose(handler: (reason: Error | undefined) => void): void {
    if (this.closedFlag) handler(this.reason);
    else this.closeHandlers.push(handler);
  }

  async close(): Promise<void> {
    if (this.closedFlag) return;
    // MQTT.js's end() waits for in-flight QoS 1 publishes and never calls back when the socket
    // dies meanwhile (a gateway closing on a refused clip): whichever comes first ends the link.
    await Promise.race([this.conn.close(), new Promise<void>((resolve) => this.onClose(() => resolve()))]);
    this.markClosed();
  }

  destroy(): void {
    // A lost Wi-Fi: the socket dies without DISCONNECT.
    this.conn.client.stream?.destroy();
  }
}

/**
 * Wi-Fi transport: MQTT.js over TCP, or over TLS with the gateway's certificate as the only CA.
 * Authentication (signed token, proof check before anything is published) is connectEndpoint's
 * [PLK-3.6]; this adds the EndpointLink shape the toy and parent state machines use.
 */
export class WifiConnector implements Connector {
  constructor(private readonly opts: WifiOptions) {
    if (!opts || typeof opts.url !== 'string' || !/^mqtts?:\/\//.test(opts.url)) {
      throw new TypeError('url must be mqtt://host:port or mqtts://host:port');
    }
    if (opts.url.startsWith('mqtts://') && opts.ca === undefined) {
      throw new TypeError('mqtts:// needs the gateway certificate (ca) to pin');
    }
  }

  async connect(req: ConnectRequest): Promise<EndpointLink> {
    if (req.signal?.aborted) throw new Error('aborted');
    // connectEndpoint resolves only after CONNACK, SUBACK and a valid proof; the "checking" phase is
    // reported when the attempt starts waiting on the network.
    req.onCheckingProof?.();
    const conn = await connectEndpoint({
      url: this.opts.url,
      identity: req.identity,
      gateway: req.gateway,
      ...(this.opts.ca !== undefined ? { ca: this.opts.ca } : {}),
      ...(this.opts.servername !== undefined ? { servername: this.opts.servername } : {}),
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
      ...(this.opts.random ? { random: this.opts.random } : {}),
      ...(this.opts.timeoutMs !== undefined ? { timeoutMs: this.opts.timeoutMs } : {}),
      ...(this.opts.keepalive !== undefined ? { keepalive: this.opts.keepalive } : {}),
    });
    if (!conn.client.connected) {
      await conn.close().catch(() => undefined);
      throw new Error('connection closed right after the gateway proof');
    }
    return new MqttLink(conn);
  }
}
