// Test helper: a throw-away self-signed P-256 certificate for localhost, made with the openssl CLI.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Writes DIR/NAME.pem and DIR/NAME.key (valid one day, SAN localhost and 127.0.0.1); returns their paths. */
export function selfSignedCert(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-subj',
      '/CN=localhost',
      '-days',
      '1',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}
