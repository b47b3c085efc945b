// `plushlink ble airtime`: output figures match the timing model; bad parameters name the option.
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { estimateTransfer, linkParams } from '../../device/ble/timing.ts';
import { registerBleCommands } from '../../scripts/commands/ble.ts';

async function run(args: string[]): Promise<{ out: string; err: string; code: number | undefined }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    err += String(s);
    return true;
  });
  const program = new Command('plushlink').exitOverride();
  registerBleCommands(program);
  process.exitCode = undefined;
  await program.parseAsync(['node', 'plushlink', ...args]);
  const code = process.exitCode as number | undefined;
  process.exitCode = undefined;
  vi.restoreAllMocks();
  return { out, err, code };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('plushlink ble airtime', () => {
  it('prints the modelled figures as JSON', async () => {
    const r = await run([
      'ble',
      'airtime',
      '--bytes',
      '30000',
      '--mtu',
      '247',
      '--dl',
      '251',
      '--phy',
      '2M',
      '--json',
    ]);
    const j = JSON.parse(r.out) as { expectedUs: number; llPackets: number };
    const e = estimateTransfer(30_000, linkParams({ attMtu: 247, llDataLength: 251, phy: '2M' }));
    expect(j.expectedUs).toBe(e.expectedUs);
    expect(j.llPackets).toBe(123);
  });

  it('prints a human summary with the defaults', async () => {
    const r = await run(['ble', 'airtime', '--bytes', '100']);
    expect(r.out).toContain('lossless time    30.558 ms');
    expect(r.out).toContain('2 events');
  });

  it('an interval off the 1.25 ms grid is a usage error naming --interval-ms', async () => {
    const r = await run(['ble', 'airtime', '--bytes', '100', '--interval-ms', '8']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--interval-ms/);
  });
});
