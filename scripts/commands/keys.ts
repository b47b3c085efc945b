// `plushlink keys …`: create an endpoint key directory (private key 0600 + public identity.json) [PLK-1.4].
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { IDENTITY_FILE, PRIVATE_KEY_FILE, readIdentity, writeKeyDir } from '../../platform/keyfiles.ts';
import { toHex } from '../../shared/bytes.ts';
import { generateIdentity } from '../../shared/identity.ts';
import type { Role } from '../../shared/types.ts';
import { action, CliError, checkOutDir, printJson } from '../cli-util.ts';

interface KeysNewOptions {
  role: Role;
  out: string;
  json?: boolean;
}

interface KeysShowOptions {
  json?: boolean;
}

export function registerKeysCommands(program: Command): void {
  const keys = program
    .command('keys')
    .description('endpoint key pairs (Ed25519 signing + X25519 encryption)');

  keys
    .command('new')
    .description(`create ${PRIVATE_KEY_FILE} (mode 0600) and ${IDENTITY_FILE} in DIR; never overwrites a key`)
    .addOption(new Option('--role <role>', 'endpoint role').choices(['toy', 'parent']).makeOptionMandatory())
    .requiredOption('--out <dir>', 'key directory (created with mode 0700)')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: KeysNewOptions) => {
        await checkOutDir(opts.out, '--out');
        if (existsSync(join(opts.out, PRIVATE_KEY_FILE))) {
          throw new CliError(
            `${join(opts.out, PRIVATE_KEY_FILE)} already exists; refusing to overwrite a private key`,
          );
        }
        const identity = generateIdentity(opts.role);
        const files = await writeKeyDir(opts.out, identity);
        if (opts.json) {
          printJson({
            id: identity.id,
            role: identity.role,
            signPublicKey: toHex(identity.signPublicKey),
            boxPublicKey: toHex(identity.boxPublicKey),
            keyFile: files.keyFile,
            identityFile: files.identityFile,
          });
        } else {
          process.stdout.write(`${identity.id}\n`);
        }
      }),
    );

  keys
    .command('show')
    .description('print the public identity of a key directory or identity.json (never the secrets)')
    .argument('<path>', `key directory or ${IDENTITY_FILE}`)
    .option('--json', 'print the identity as JSON')
    .action(
      action(async (path: string, opts: KeysShowOptions) => {
        const identity = await readIdentity(path);
        if (opts.json) {
          printJson({
            id: identity.id,
            role: identity.role,
            signPublicKey: toHex(identity.signPublicKey),
            boxPublicKey: toHex(identity.boxPublicKey),
          });
        } else {
          process.stdout.write(`${identity.id} ${identity.role}\n`);
        }
      }),
    );
}
