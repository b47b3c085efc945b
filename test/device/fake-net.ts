// Transport test double: an in-process "gateway" implementing Connector, with deterministic delivery and dedup (v1 envelopes and v2 chunks alike).

import type { Connector, ConnectRequest, EndpointLink } from '../../device/transport/wifi.ts';
import { toHex } from '../../shared/bytes.ts';
import { MSG } from '../../shared/limits.ts';
import { decodeReceipt } from '../../shared/receipt.ts';
import { inboxTopic, parseTopic } from '../../shared/topics.ts';
import type { EndpointId } from '../../shared/types.ts';
import { decodeClipObject } from '../../shared/versions.ts';

export interface Published {
  readonly from: EndpointId;
  readonly topic: string;
  readonly payload: Uint8Array;
}

class FakeLink implements EndpointLink {
  closed = false;
  private handler: ((topic: string, payload: Uint8Array) => void) | undefined;
  private readonly buffered: Uint8Array[] = [];
  private readonly closeHandlers: ((reason: Error | undefined) => void)[] = [];
  private readonly pending = new Set<(err: Error) => void>();
  constructor(
    private readonly net: FakeNet,
    readonly id: EndpointId,
  ) {}
  publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error('closed'));
    return new Promise((resolve, reject) => {
      this.pending.add(reject);
      // PUBACK after the "store write": a microtask later, unless the link dies first.
      void Promise.resolve().then(() => {
        if (this.closed) return;
        const ok = this.net.ingest(this, topic, payload);
        // Stored, but its PUBACK is lost: the publish stays pending until the link dies.
        if (ok && this.net.loseAcksOf.has(this.id)) return;
        this.pending.delete(reject);
        if (ok) resolve();
        else {
          reject(new Error('refused'));
          this.destroy();
        }
      });
    });
  }
  /** [PLK-4.6] Whether the toy waits for a roster after connecting (FakeNet.sendsRoster). */
  get sendsRoster(): boolean {
    return this.net.sendsRoster;
  }
  deliver(payload: Uint8Array): void {
    if (this.handler) this.handler(inboxTopic(this.id), payload);
    else this.buffered.push(payload);
  }
  onMessage(handler: (topic: string, payload: Uint8Array) => void): void {
    this.handler = handler;
    for (const b of this.buffered.splice(0)) handler(inboxTopic(this.id), b);
  }
  onClose(handler: (reason: Error | undefined) => void): void {
    if (this.closed) handler(undefined);
    else this.closeHandlers.push(handler);
  }
  async close(): Promise<void> {
    this.destroy();
  }
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.pending) r(new Error('closed'));
    this.pending.clear();
    this.net.detach(this);
    for (const h of this.closeHandlers.splice(0)) h(undefined);
  }
}

/** Accepts clips with increasing sequence numbers, acknowledges duplicates, forwards clips and receipts. */
export class FakeNet implements Connector {
  up = true;
  /** Endpoints whose publishes are stored and forwarded, but whose PUBACKs never arrive. */
  readonly loseAcksOf = new Set<EndpointId>();
  /** Links announce a roster after the proof (then `push` one); default false. */
  sendsRoster = false;
  connects = 0;
  readonly published: Published[] = [];
  private readonly links = new Map<EndpointId, FakeLink>();
  private readonly queued = new Map<EndpointId, Uint8Array[]>();
  private readonly lastSeq = new Map<EndpointId, number>();
  private readonly clips = new Set<string>();
  private readonly senders = new Map<string, EndpointId>();

  async connect(req: ConnectRequest): Promise<EndpointLink> {
    this.connects++;
    if (!this.up) throw new Error('network down');
    req.onCheckingProof?.();
    const link = new FakeLink(this, req.identity.id);
    this.links.get(req.identity.id)?.destroy();
    this.links.set(req.identity.id, link);
    for (const p of this.queued.get(req.identity.id)?.splice(0) ?? []) link.deliver(p);
    return link;
  }

  link(id: EndpointId): FakeLink | undefined {
    return this.links.get(id);
  }

  detach(link: FakeLink): void {
    if (this.links.get(link.id) === link) this.links.delete(link.id);
  }

  /** Puts a message in `to`'s inbox now, or when it next connects. */
  push(to: EndpointId, payload: Uint8Array): void {
    this.send(to, payload);
  }

  private send(to: EndpointId, payload: Uint8Array): void {
    const link = this.links.get(to);
    if (link) link.deliver(payload);
    else {
      const q = this.queued.get(to) ?? [];
      q.push(payload);
      this.queued.set(to, q);
    }
  }

  /** Returns false to refuse (the link is then closed, as the real gateway does). */
  ingest(from: FakeLink, topic: string, payload: Uint8Array): boolean {
    const t = parseTopic(topic);
    if (t.id !== from.id) return false;
    this.published.push({ from: from.id, topic, payload });
    if (payload[0] === MSG.CLIP) {
      // Stored under its store id: a v1 clip id, a v2 chunk's delivery id [PLK-14.9].
      const clip = decodeClipObject(payload);
      const h = clip.header;
      const key = `${h.sender}:${toHex(clip.storeId)}`;
      if (this.clips.has(key)) return true; // duplicate: acknowledged again, not forwarded
      if (h.sequence <= (this.lastSeq.get(h.sender) ?? 0)) return false;
      this.lastSeq.set(h.sender, h.sequence);
      this.clips.add(key);
      this.senders.set(toHex(clip.storeId), h.sender);
      for (const r of h.recipients) this.send(r.id, payload);
      return true;
    }
    if (payload[0] === MSG.RECEIPT || payload[0] === MSG.UNOPENABLE) {
      const r = decodeReceipt(payload);
      this.send(r.sender, payload);
      return true;
    }
    return false;
  }
}
