// Kernel TCP counters from /proc/net/netstat (Linux): connection attempts dropped at a full accept queue and SYN retransmissions, so a storm's figure says when it waited on TCP back-off.
import { readFileSync } from 'node:fs';

/**
 * What a reconnect storm needs from the kernel's TcpExt counters. They count for the whole network
 * namespace, not one listener: read them around a phase in which one system under test runs alone.
 */
export interface TcpCounters {
  /** Connection attempts dropped because a listener's accept queue was full (SYNs and final ACKs). */
  readonly listenOverflows: number;
  /** Connection attempts dropped at a listener for any reason (overflows included). */
  readonly listenDrops: number;
  /** SYNs sent again because no SYN-ACK came: each is a client waiting 1 s, 3 s, 7 s… in back-off. */
  readonly synRetransmits: number;
}

/** /proc/net/netstat is a few kB; anything far larger is not it. */
const MAX_NETSTAT_CHARS = 64 * 1024;

/**
 * The counters from /proc/net/netstat's text: the `TcpExt:` header line and the value line after
 * it. Null when the text is too large, has no such pair, a value is not a whole number, or one of
 * the three counters is missing (a counter the kernel lacks is unknown, not zero).
 */
export function parseNetstat(text: string): TcpCounters | null {
  if (text.length > MAX_NETSTAT_CHARS) return null;
  const lines = text.split('\n').filter((l) => l.startsWith('TcpExt:'));
  if (lines.length < 2) return null;
  const names = (lines[0] ?? '').trim().split(/\s+/).slice(1);
  const values = (lines[1] ?? '').trim().split(/\s+/).slice(1);
  if (names.length !== values.length) return null;
  const byName = new Map<string, number>();
  for (let i = 0; i < names.length; i++) {
    const v = values[i] ?? '';
    if (!/^\d{1,20}$/.test(v)) return null;
    byName.set(names[i] ?? '', Number(v));
  }
  const listenOverflows = byName.get('ListenOverflows');
  const listenDrops = byName.get('ListenDrops');
  const synRetransmits = byName.get('TCPSynRetrans');
  if (listenOverflows === undefined || listenDrops === undefined || synRetransmits === undefined) return null;
  return { listenOverflows, listenDrops, synRetransmits };
}

/** This machine's counters now, or null where /proc/net/netstat is missing or unreadable. */
export function readTcpCounters(path = '/proc/net/netstat'): TcpCounters | null {
  try {
    return parseNetstat(readFileSync(path, 'latin1'));
  } catch {
    return null;
  }
}

/** The longest accept queue the kernel grants any listener (net.core.somaxconn), or null. */
export function acceptQueueCap(path = '/proc/sys/net/core/somaxconn'): number | null {
  try {
    const n = Number(readFileSync(path, 'latin1').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** `b - a`, or null when either is unknown or a counter went down (reset: the delta means nothing). */
export function tcpCountersDelta(a: TcpCounters | null, b: TcpCounters | null): TcpCounters | null {
  if (!a || !b) return null;
  const d = {
    listenOverflows: b.listenOverflows - a.listenOverflows,
    listenDrops: b.listenDrops - a.listenDrops,
    synRetransmits: b.synRetransmits - a.synRetransmits,
  };
  return d.listenOverflows < 0 || d.listenDrops < 0 || d.synRetransmits < 0 ? null : d;
}

const n = (x: number): string => x.toLocaleString('en-US');

/**
 * Why a storm's clients waited without the system under test being busy, or null when no attempt
 * was dropped. `queueCap` is the accept queue the listener got (its backlog, capped by
 * net.core.somaxconn), when known.
 */
export function acceptQueueText(delta: TcpCounters | null, queueCap: number | null): string | null {
  if (!delta || delta.listenOverflows === 0) return null;
  const queue =
    queueCap === null
      ? 'the full accept queue'
      : `the full accept queue (${n(queueCap)}, capped by net.core.somaxconn)`;
  return `the kernel dropped ${n(delta.listenOverflows)} connection attempts at ${queue}; their clients waited on TCP back-off (${n(delta.synRetransmits)} SYN retransmissions, the first after 1 s)`;
}

/**
 * The accept queue a listener on `port` got, from `ss` (iproute2): for a listening socket its
 * Send-Q column is the backlog the kernel granted (the program's request, capped by
 * net.core.somaxconn). Null when `ss` is missing or shows no such listener.
 */
export function listenerQueueFromSs(output: string, port: number): number | null {
  for (const line of output.slice(0, MAX_NETSTAT_CHARS).split('\n')) {
    const f = line.trim().split(/\s+/);
    // State Recv-Q Send-Q Local-Address:Port Peer-Address:Port
    if (f[0] !== 'LISTEN' || f.length < 5) continue;
    const local = f[3] ?? '';
    if (!local.endsWith(`:${port}`)) continue;
    const q = Number(f[2]);
    return Number.isSafeInteger(q) && q > 0 ? q : null;
  }
  return null;
}
