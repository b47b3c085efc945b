// Tests of the kernel TCP counters a storm reads (/proc/net/netstat): parsing, deltas and the text that explains a storm that waited on TCP back-off.
import { describe, expect, it } from 'vitest';
import {
  acceptQueueText,
  listenerQueueFromSs,
  parseNetstat,
  readTcpCounters,
  tcpCountersDelta,
} from '../../scripts/loadtest/netstat.ts';

// The shape of /proc/net/netstat on Linux 6.x: header and value lines in pairs, per protocol.
const SAMPLE = [
  'TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPTimeouts TCPSynRetrans',
  'TcpExt: 4892 11311 360016 360017 315153 216585',
  'IpExt: InNoRoutes InOctets',
  'IpExt: 0 98765',
  '',
].join('\n');

describe('parseNetstat', () => {
  it('reads the TcpExt counters by name', () => {
    const c = parseNetstat(SAMPLE);
    expect(c).toEqual({ listenOverflows: 360016, listenDrops: 360017, synRetransmits: 216585 });
  });

  it('is null when the TcpExt lines are missing, unpaired or not numbers', () => {
    expect(parseNetstat('')).toBeNull();
    expect(parseNetstat('IpExt: InNoRoutes\nIpExt: 0\n')).toBeNull();
    expect(parseNetstat('TcpExt: ListenOverflows ListenDrops TCPSynRetrans\n')).toBeNull();
    expect(parseNetstat('TcpExt: ListenOverflows ListenDrops TCPSynRetrans\nTcpExt: 1 x 3\n')).toBeNull();
    // a counter the kernel does not have is a missing line, not a zero
    expect(parseNetstat('TcpExt: ListenOverflows ListenDrops\nTcpExt: 1 2\n')).toBeNull();
  });

  it('refuses oversized input instead of scanning it', () => {
    expect(parseNetstat(`TcpExt: ${'x '.repeat(40_000)}\nTcpExt: 1\n`)).toBeNull();
  });
});

describe('tcpCountersDelta', () => {
  it('subtracts, and is null when either side is missing', () => {
    const a = { listenOverflows: 10, listenDrops: 11, synRetransmits: 5 };
    const b = { listenOverflows: 5914, listenDrops: 5915, synRetransmits: 4000 };
    expect(tcpCountersDelta(a, b)).toEqual({
      listenOverflows: 5904,
      listenDrops: 5904,
      synRetransmits: 3995,
    });
    expect(tcpCountersDelta(null, b)).toBeNull();
    expect(tcpCountersDelta(a, null)).toBeNull();
  });

  it('never reports a negative count (a counter reset, e.g. a new network namespace)', () => {
    const a = { listenOverflows: 100, listenDrops: 100, synRetransmits: 100 };
    const b = { listenOverflows: 3, listenDrops: 3, synRetransmits: 3 };
    expect(tcpCountersDelta(a, b)).toBeNull();
  });
});

describe('readTcpCounters', () => {
  it('reads this machine (Linux) or says it cannot', () => {
    const c = readTcpCounters();
    if (process.platform === 'linux') {
      expect(c).not.toBeNull();
      expect(c?.listenOverflows).toBeGreaterThanOrEqual(0);
    } else expect(c).toBeNull();
  });
});

describe('acceptQueueText', () => {
  it('says nothing when no connection attempt was dropped', () => {
    expect(acceptQueueText({ listenOverflows: 0, listenDrops: 0, synRetransmits: 12 }, 4096)).toBeNull();
    expect(acceptQueueText(null, 4096)).toBeNull();
  });

  it('names the dropped attempts, the queue cap and the back-off they waited on', () => {
    const t = acceptQueueText({ listenOverflows: 5904, listenDrops: 5904, synRetransmits: 6100 }, 4096);
    expect(t).toContain('5,904');
    expect(t).toContain('4,096');
    expect(t).toContain('net.core.somaxconn');
    expect(t).toContain('6,100 SYN retransmissions');
  });

  it('leaves out the cap when it is not known', () => {
    const t = acceptQueueText({ listenOverflows: 7, listenDrops: 7, synRetransmits: 7 }, null);
    expect(t).toContain('7 connection attempts');
    expect(t).not.toContain('somaxconn');
  });
});

describe('listenerQueueFromSs', () => {
  const SS = [
    'LISTEN 0      100        127.0.0.1:18839      0.0.0.0:*',
    'LISTEN 12     4096       127.0.0.1:43249      0.0.0.0:*',
    'ESTAB  0      0          127.0.0.1:43249      127.0.0.1:50000',
    '',
  ].join('\n');

  it('reads the backlog (Send-Q) of the listener on the port', () => {
    expect(listenerQueueFromSs(SS, 43249)).toBe(4096);
    expect(listenerQueueFromSs(SS, 18839)).toBe(100);
  });

  it('is null for a port nobody listens on, or a suffix of another port', () => {
    expect(listenerQueueFromSs(SS, 3249)).toBeNull();
    expect(listenerQueueFromSs(SS, 1)).toBeNull();
    expect(listenerQueueFromSs('', 43249)).toBeNull();
  });
});
