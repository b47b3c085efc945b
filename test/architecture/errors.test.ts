// One error hierarchy: every error class of the runtime extends CodedError (stable code, name, cause kept).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AttError } from '../../device/ble/att.ts';
import { CodecError } from '../../device/codec/errors.ts';
import { FirmwareError } from '../../device/firmware.ts';
import { OutboxError } from '../../device/outbox.ts';
import { ConnectError, ConnectRefusedError, GatewayProofError } from '../../device/transport/mqtt-connect.ts';
import { AdminError } from '../../gateway/admin.ts';
import { PublishRefusedError } from '../../gateway/publish.ts';
import { StoreError } from '../../gateway/store/common.ts';
import { WebServerError } from '../../gateway/web.ts';
import { WebSocketError } from '../../gateway/websocket.ts';
import { CliError } from '../../scripts/cli-util.ts';
import { CodedError, isCodedError, PlushlinkError } from '../../shared/errors.ts';
import { WebError } from '../../web/src/errors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RUNTIME = ['shared', 'platform', 'device', 'gateway', 'sim', 'scripts', 'web'];

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('error hierarchy', () => {
  const cause = new Error('the root cause');
  const samples: [string, CodedError<string | number>][] = [
    ['PlushlinkError', new PlushlinkError('PLK_E_FIELD', 'x', { cause })],
    ['AdminError', new AdminError('ADMIN_NO_DATA', 'x', { cause })],
    ['StoreError', new StoreError('STORE_CLOSED', 'x', { cause })],
    ['CodecError', new CodecError('OPUS_ENCODE_FAILED', 'x', { cause })],
    ['OutboxError', new OutboxError('OUTBOX_FULL', 'x', { cause })],
    ['FirmwareError', new FirmwareError('FIRMWARE_STATE_CORRUPT', 'x', { cause })],
    ['ConnectError', new ConnectError('TRANSPORT', 'x', { cause })],
    ['ConnectRefusedError', new ConnectRefusedError(4, 'x', { cause })],
    ['GatewayProofError', new GatewayProofError('x', { cause })],
    ['PublishRefusedError', new PublishRefusedError('bad-signature', 'x', { cause })],
    ['CliError', new CliError('x', 2, { cause })],
    ['WebServerError', new WebServerError('WEB_NOT_BUILT', 'x', { cause })],
    ['WebSocketError', new WebSocketError('WS_OPTIONS', 'x', { cause })],
    ['WebError', new WebError('WEB_CONNECT', 'x', { cause })],
  ];

  for (const [name, err] of samples) {
    it(`${name} is a CodedError with a stable code, its own name and the cause it wraps`, () => {
      expect(err).toBeInstanceOf(CodedError);
      expect(err).toBeInstanceOf(Error);
      expect(err.name).toBe(name);
      expect(isCodedError(err, err.code)).toBe(true);
      expect(err.cause).toBe(cause);
    });
  }

  it('AttError carries the ATT error code of the Core Spec', () => {
    const e = new AttError(0x05, 0x0a, 0x0003);
    expect(e).toBeInstanceOf(CodedError);
    expect(e.code).toBe(0x05);
    expect(e.message).toBe('ATT error 0x05 on handle 0x0003');
  });

  it('no runtime class extends Error directly except CodedError itself', () => {
    const direct: string[] = [];
    for (const dir of RUNTIME) {
      for (const f of files(dir)) {
        for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(
          /class\s+(\w+)(?:<[^>]*>)?\s+extends\s+Error\b/g,
        )) {
          if (m[1] !== 'CodedError') direct.push(`${f}: ${m[1]}`);
        }
      }
    }
    expect(direct).toEqual([]);
  });

  it('the CLI exit codes map to codes: usage errors are CLI_USAGE', () => {
    expect(new CliError('bad flag', 2).code).toBe('CLI_USAGE');
    expect(new CliError('failed').code).toBe('CLI_FAILED');
  });
});
