// Clips in transit: forwarded to connected recipients before their commit, which waits a moment for their receipts, so a clip receipted in time is never written to disk [PLK-12.9].
import type { Client } from 'aedes';
import type { Logger } from 'pino';
import type { EndpointId } from '../shared/types.ts';
import type { Forwarder } from './forward.ts';
import {
  type ClipOutcome,
  commitClip,
  type IngestContext,
  type PreparedClip,
  type TransitReceipts,
} from './ingest.ts';
import type { GatewayStore } from './interfaces.ts';
import type { GatewayMetrics } from './metrics.ts';

/** Default time a clip forwarded before its commit waits there for its receipts, ms [PLK-12.9]. */
export const DEFAULT_TRANSIT_HOLD_MS = 10;
/** The longest hold allowed (a PUBACK then waits up to this, plus up to 20 ms for a shared commit). */
export const MAX_TRANSIT_HOLD_MS = 1000;
/**
 * Clips submitted and not yet committed, at most, for a clip to be forwarded early and held. Past
 * it a clip goes straight to its commit: a gateway this far behind would not see receipts in time
 * anyway, and held clips are memory.
 */
export const MAX_UNSETTLED_FOR_TRANSIT = 128;

/** What became of a submitted clip, and to whom it must still be forwarded now that it is stored. */
export interface TransitResult {
  readonly outcome: ClipOutcome;
  /** Recipients that have not had the clip on their current connection and have not receipted it. */
  readonly forward: readonly EndpointId[];
}

/** One held clip: forwarded (or, behind another clip of its sender, just waiting) and not yet committed. */
interface Held {
  readonly prepared: PreparedClip;
  /** When the hold ends; 0 for a clip that only waits for the clips of its sender before it. */
  readonly due: number;
  /** The connection each early copy went to: a recipient that reconnected meanwhile gets it again. */
  readonly sentTo: Map<EndpointId, Client>;
  readonly receipted: EndpointId[];
  /** False once its commit has been submitted. */
  held: boolean;
  readonly settled: Promise<ClipOutcome>;
  settle(outcome: ClipOutcome): void;
}

type VerdictStore = GatewayStore & Required<Pick<GatewayStore, 'clipVerdict'>>;

/**
 * [PLK-12.9] Every clip of a gateway whose store can say what it would decide (`clipVerdict`) goes
 * through here. A clip that the store would accept as new, with a recipient connected now, is
 * forwarded at once and its commit held for `holdMs`: each recipient's receipt that arrives meanwhile
 * means no pending delivery is stored for it, and when all have receipted, no body at all — only
 * the clip id and sequence number (the replay guard, PLK-8.1, PLK-8.2). The PUBACK still waits for
 * the commit [PLK-12.3], and so does the PUBACK of a receipt absorbed here.
 *
 * The verdict is taken on committed state plus every clip submitted here and not yet settled, so a
 * replayed, resent or duplicate clip is never forwarded early. A sender's clips reach the store in
 * submission order (sequence order): a clip behind a held clip of its sender is held too.
 */
export class InTransit implements TransitReceipts {
  /** Per sender: the highest sequence among its unsettled clips, and how many there are. */
  private readonly unsettledSeq = new Map<EndpointId, { max: number; n: number }>();
  /** Held or committing clips that were forwarded early, for their receipts. */
  private readonly byKey = new Map<string, Held>();
  /** Held clips per sender, oldest first. */
  private readonly chains = new Map<EndpointId, Held[]>();
  /**
   * Held clips, oldest first: the order in which the holds of forwarded clips end (all last as
   * long). A clip that only waits behind its sender's clips is released with the one before it.
   */
  private fifo: Held[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Closing: nothing is held any more. */
  private draining = false;
  /** Clips submitted and not yet settled. */
  private unsettled = 0;
  private readonly store: VerdictStore;

  constructor(
    private readonly ingest: IngestContext,
    private readonly forwarder: Forwarder,
    private readonly inboxOf: (id: EndpointId) => string,
    private readonly metrics: GatewayMetrics,
    private readonly log: Logger,
    private readonly holdMs = DEFAULT_TRANSIT_HOLD_MS,
  ) {
    const store = ingest.store;
    if (!store.clipVerdict) throw new TypeError('clips in transit need a store that offers clipVerdict');
    this.store = store as VerdictStore;
  }

  /** Submits a checked clip; resolves once its commit has settled (durable, or refused). */
  submit(prepared: PreparedClip): Promise<TransitResult> {
    const rec = prepared.record;
    const key = `${rec.sender}:${rec.clipId}`;
    const chain = this.chains.get(rec.sender);
    const online: [EndpointId, Client][] = [];
    for (const r of prepared.recipients) {
      const c = this.forwarder.inboxes.get(r);
      if (c) online.push([r, c]);
    }
    const early =
      !this.draining &&
      online.length > 0 &&
      this.unsettled < MAX_UNSETTLED_FOR_TRANSIT &&
      this.isNew(rec.sender, rec.clipId, rec.sequence);
    this.track(rec.sender, rec.sequence);
    if (!early && !chain) {
      return commitClip(this.ingest, prepared).then((outcome) => {
        this.untrack(rec.sender);
        return { outcome, forward: prepared.recipients };
      });
    }
    let settle: (o: ClipOutcome) => void = () => {};
    const settled = new Promise<ClipOutcome>((resolve) => {
      settle = resolve;
    });
    const h: Held = {
      prepared,
      due: early ? performance.now() + this.holdMs : 0,
      sentTo: new Map(),
      receipted: [],
      held: true,
      settled,
      settle,
    };
    if (early) {
      for (const [r, client] of online) {
        h.sentTo.set(r, client);
        this.forwarder.sendClip(client, this.inboxOf(r), rec.envelope);
      }
      if (!this.byKey.has(key)) this.byKey.set(key, h);
    }
    if (chain) chain.push(h);
    else this.chains.set(rec.sender, [h]);
    this.fifo.push(h);
    this.arm();
    return settled.then((outcome) => {
      this.untrack(rec.sender);
      if (this.byKey.get(key) === h) this.byKey.delete(key);
      if (early && outcome.kind === 'accepted') {
        const stored =
          h.receipted.length === 0
            ? 'all'
            : h.receipted.length < prepared.recipients.length
              ? 'some'
              : 'none';
        this.metrics.transit.inc({ stored });
      } else if (early && outcome.kind !== 'retransmit') {
        // Only a writer outside this process can make the store disagree with the verdict.
        this.log.warn(
          { event: 'transit.refused', sender: rec.sender, outcome: outcome.kind },
          'a clip forwarded before its commit was not stored',
        );
      }
      const forward = prepared.recipients.filter((r) => {
        if (h.receipted.includes(r)) return false;
        const sent = h.sentTo.get(r);
        return sent === undefined || sent !== this.forwarder.inboxes.get(r);
      });
      return { outcome, forward };
    });
  }

  /** [PLK-12.9] See TransitReceipts. Only an `opened` receipt of a recipient the clip was sent to early is absorbed. */
  receipt(
    recipient: EndpointId,
    sender: EndpointId,
    clipId: string,
    opened: boolean,
  ): Promise<boolean> | undefined {
    const h = this.byKey.get(`${sender}:${clipId}`);
    if (!h) return undefined;
    if (!h.held || !opened || !h.sentTo.has(recipient) || h.receipted.includes(recipient)) {
      return h.settled.then(() => false);
    }
    h.receipted.push(recipient);
    if (h.receipted.length === h.prepared.recipients.length) this.releaseReady(sender, performance.now());
    return h.settled.then((o) => o.kind === 'accepted');
  }

  /** Submits every held clip's commit now (the gateway is closing). */
  releaseAll(): void {
    this.draining = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const sender of [...this.chains.keys()]) this.releaseReady(sender, Number.POSITIVE_INFINITY);
    this.fifo = [];
  }

  /**
   * [PLK-12.9] The store would accept it as new, counting the clips submitted here and not settled
   * yet: a sequence not above the highest of those cannot be new (that covers a resend of one).
   */
  private isNew(sender: EndpointId, clipId: string, sequence: number): boolean {
    const pending = this.unsettledSeq.get(sender);
    if (pending && sequence <= pending.max) return false;
    try {
      return this.store.clipVerdict(sender, clipId, sequence) === 'new';
    } catch {
      return false; // the store cannot tell: nothing early
    }
  }

  private track(sender: EndpointId, sequence: number): void {
    this.unsettled++;
    const s = this.unsettledSeq.get(sender);
    if (s) {
      s.max = Math.max(s.max, sequence);
      s.n++;
    } else this.unsettledSeq.set(sender, { max: sequence, n: 1 });
  }

  private untrack(sender: EndpointId): void {
    this.unsettled--;
    const s = this.unsettledSeq.get(sender);
    if (s && --s.n === 0) this.unsettledSeq.delete(sender);
  }

  /** Submits the commits of the sender's oldest held clips that are due or fully receipted, in order. */
  private releaseReady(sender: EndpointId, now: number): void {
    const chain = this.chains.get(sender);
    if (!chain) return;
    while (chain.length > 0) {
      const h = chain[0]!;
      if (h.due > now && h.receipted.length < h.prepared.recipients.length) break;
      chain.shift();
      h.held = false;
      // Recipients that have it already: its PUBACK can wait for the next commit (lazy, up to
      // 20 ms more) — unless the hold is 0, which asks for the PUBACK as soon as the commit allows.
      const opts = { receipted: h.receipted, lazy: this.holdMs > 0 && h.sentTo.size > 0 };
      commitClip(this.ingest, h.prepared, opts).then(h.settle, (err: unknown) =>
        h.settle({ kind: 'refused', reason: 'store-error', detail: String(err) }),
      );
    }
    if (chain.length === 0) this.chains.delete(sender);
  }

  /** One timer, for the oldest held clip. */
  private arm(): void {
    if (this.timer) return;
    while (this.fifo.length > 0 && !this.fifo[0]!.held) this.fifo.shift();
    const head = this.fifo[0];
    if (!head) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = performance.now();
        while (this.fifo.length > 0) {
          const h = this.fifo[0]!;
          if (h.held && h.due > now) break;
          this.fifo.shift();
          if (h.held) this.releaseReady(h.prepared.record.sender, now);
        }
        this.arm();
      },
      Math.max(0, head.due - performance.now()),
    );
  }
}
