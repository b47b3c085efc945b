// `plushlink provision|family|revoke|endpoints|audit|backup|restore`: gateway administration on a data directory [PLK-12].
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Argument, type Command } from 'commander';
import {
  AdminError,
  type AdminHandles,
  addFamilyMember,
  backup,
  createFamily,
  eraseFamily,
  listEndpoints,
  openAdmin,
  provisionEndpoint,
  registerEndpoint,
  restore,
  revoke,
  verifyAudit,
} from '../../gateway/admin.ts';
import type { AuditVerifyReport } from '../../gateway/audit.ts';
import {
  type ClusterAdminHandles,
  openClusterAdmin,
  restoreIntoPostgres,
} from '../../gateway/cluster/admin.ts';
import type { EndpointRole, FamilyId } from '../../gateway/interfaces.ts';
import { isFamilyId } from '../../gateway/store/common.ts';
import { PRIVATE_KEY_FILE, readIdentity } from '../../platform/keyfiles.ts';
import { toHex } from '../../shared/bytes.ts';
import { isEndpointId, type PublicIdentity } from '../../shared/identity.ts';
import { looksLikeIdentityCode, parseIdentityCode } from '../../shared/identity-code.ts';
import type { EndpointId } from '../../shared/types.ts';
import { action, CliError, checkOutDir, printJson } from '../cli-util.ts';
import { addClusterOptions } from './gateway-cluster.ts';

interface DataOptions {
  data: string;
  /** provision and family create only: a --data without a store may become a new one. */
  create?: boolean;
  gatewayKey?: string;
  json?: boolean;
  yes?: boolean;
  out?: string;
  /** A gateway on PostgreSQL (docs/SCALING.md): its store and audit log instead of DATA's SQLite files. */
  postgres?: string;
  pgSchema?: string;
}

const DATA_HELP = 'gateway data directory (gateway.db, audit.db)';
const KEY_HELP =
  'gateway key directory (signs audit anchors) or its identity.json (checks them); default DATA/gateway if present';

function familyArg(value: string): FamilyId {
  if (!isFamilyId(value)) throw new CliError(`"${value}" is not a family id ("f" + 26 base32 characters)`, 2);
  return value;
}

function endpointArg(value: string): EndpointId {
  if (!isEndpointId(value)) throw new CliError(`"${value}" is not an endpoint id (32 base32 characters)`, 2);
  return value;
}

/**
 * `--public`: an identity code [PLK-1.5] or an identity.json [PLK-1.4] (its id re-derived from
 * its key either way), of the role being registered.
 */
async function readPublicIdentity(value: string, role: EndpointRole): Promise<PublicIdentity> {
  try {
    if (looksLikeIdentityCode(value)) return parseIdentityCode(value, role);
    const identity = await readIdentity(value);
    if (identity.role !== role)
      throw new CliError(`${value} is the identity of a ${identity.role}, not of a ${role}`, 2);
    return identity;
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(
      `--public ${value.length > 40 ? `${value.slice(0, 40)}…` : value}: ${(err as Error).message}`,
      2,
      {
        cause: err,
      },
    );
  }
}

const CREATE_HELP =
  'accept a --data directory without a gateway store and create a new one there (without it, a missing or mistyped --data is refused)';

/**
 * Opens the data directory, runs `fn`, always closes (which also anchors the audit head). Only an
 * explicit --create (provision, family create) may turn a directory without a store into a new
 * one: every other command, and these without it, refuse it with one line and create nothing.
 */
async function withAdmin(
  opts: DataOptions,
  canCreate: boolean,
  fn: (h: AdminHandles | ClusterAdminHandles) => Promise<void>,
): Promise<void> {
  // Default: the key `plushlink gateway --data DIR` keeps in DIR/gateway (scripts/commands/gateway.ts).
  const defaultKey = join(opts.data, 'gateway');
  const gatewayKey =
    opts.gatewayKey ?? (existsSync(join(defaultKey, PRIVATE_KEY_FILE)) ? defaultKey : undefined);
  let h: AdminHandles | ClusterAdminHandles;
  try {
    const common = { create: canCreate && opts.create === true, ...(gatewayKey ? { gatewayKey } : {}) };
    h =
      opts.postgres !== undefined
        ? await openClusterAdmin(opts.data, {
            ...common,
            postgres: opts.postgres,
            ...(opts.pgSchema ? { schema: opts.pgSchema } : {}),
          })
        : await openAdmin(opts.data, common);
  } catch (err) {
    if (err instanceof AdminError && err.code === 'ADMIN_NO_DATA' && opts.postgres !== undefined) {
      // The schema's tables may now exist (empty): the store creates them when it opens.
      throw new CliError(
        canCreate ? `${err.message}: add --create to start a new gateway there` : err.message,
        1,
        { cause: err },
      );
    }
    if (err instanceof AdminError && err.code === 'ADMIN_NO_DATA') {
      throw new CliError(
        canCreate
          ? `no PlushLink gateway data in ${opts.data} (wrong --data?): add --create to start a new data directory there`
          : `no PlushLink gateway data in ${opts.data} (wrong --data?); nothing was created`,
        1,
        { cause: err },
      );
    }
    throw err;
  }
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

function withDataOptions(cmd: Command): Command {
  return addClusterOptions(
    cmd.option('--data <dir>', DATA_HELP, './data').option('--gateway-key <path>', KEY_HELP),
    'administer the gateway whose store is there (--data then only holds its key)',
  );
}

export function registerAdminCommands(program: Command): void {
  withDataOptions(
    program
      .command('provision')
      .description(
        'register an endpoint: a new key pair with its private key only into --out (0600), or --public, a key pair made elsewhere (the browser parent page) of which only the public identity ever comes here',
      )
      .addArgument(new Argument('<role>', 'endpoint role').choices(['toy', 'parent']))
      .option('--out <keydir>', 'key directory for the new private key (never overwritten)')
      .option(
        '--public <file-or-code>',
        'register this public identity instead of making keys: an identity.json, or the identity code (plkid1.…) the parent page shows [PLK-1.5]',
      )
      .option('--family <family>', 'also add the endpoint to this family'),
  )
    .option('--create', CREATE_HELP)
    .option('--json', 'print the result as JSON')
    .action(
      action(
        async (
          role: EndpointRole,
          opts: DataOptions & { out?: string; public?: string; family?: string },
        ) => {
          if ((opts.out === undefined) === (opts.public === undefined))
            throw new CliError(
              'provision needs exactly one of --out (new keys) and --public (keys made elsewhere)',
              2,
            );
          const fam = opts.family === undefined ? undefined : familyArg(opts.family);
          let publicIdentity: PublicIdentity | undefined;
          if (opts.public !== undefined) publicIdentity = await readPublicIdentity(opts.public, role);
          else if (opts.out !== undefined) {
            // Before the store is opened: a key directory that cannot take the key is refused first.
            await checkOutDir(opts.out, '--out');
            if (existsSync(join(opts.out, PRIVATE_KEY_FILE))) {
              throw new CliError(
                `${join(opts.out, PRIVATE_KEY_FILE)} already exists; refusing to overwrite a private key`,
              );
            }
          }
          await withAdmin(opts, true, async ({ store, audit }) => {
            const id = publicIdentity
              ? await registerEndpoint(store, audit, publicIdentity, { source: 'cli' })
              : await provisionEndpoint(store, audit, role, opts.out!);
            if (fam) await addFamilyMember(store, audit, fam, id.id);
            if (opts.json) {
              printJson({
                id: id.id,
                role: id.role,
                signPublicKey: toHex(id.signPublicKey),
                boxPublicKey: toHex(id.boxPublicKey),
                ...(opts.out !== undefined ? { keyDir: opts.out } : {}),
                ...(fam ? { family: fam } : {}),
              });
            } else {
              process.stdout.write(`${id.id}\n`);
              if (fam) process.stderr.write(`added ${id.id} to ${fam}\n`);
            }
          });
        },
      ),
    );

  const family = program
    .command('family')
    .description('pseudonymous families: create, add members, list, erase');

  withDataOptions(family.command('create').description('create a family; prints its new pseudonymous id'))
    .option('--create', CREATE_HELP)
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: DataOptions) => {
        await withAdmin(opts, true, async ({ store, audit }) => {
          const id = await createFamily(store, audit);
          if (opts.json) printJson({ id });
          else process.stdout.write(`${id}\n`);
        });
      }),
    );

  withDataOptions(
    family
      .command('add')
      .description('add an endpoint to a family (an endpoint belongs to at most one family)')
      .argument('<family>', 'family id')
      .argument('<endpoint>', 'endpoint id'),
  ).action(
    action(async (fam: string, endpoint: string, opts: DataOptions) => {
      const f = familyArg(fam);
      const e = endpointArg(endpoint);
      await withAdmin(opts, false, async ({ store, audit }) => {
        await addFamilyMember(store, audit, f, e);
        process.stdout.write(`added ${e} to ${f}\n`);
      });
    }),
  );

  withDataOptions(family.command('list').description('list families and their member counts'))
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: DataOptions) => {
        await withAdmin(opts, false, async ({ store }) => {
          const list = await store.listFamilies();
          if (opts.json) printJson(list);
          else for (const f of list) process.stdout.write(`${f.id} ${f.members}\n`);
        });
      }),
    );

  withDataOptions(
    family
      .command('erase')
      .description(
        'erase every clip, delivery, sequence number and endpoint of a family, and the family [PLK-12.5]',
      )
      .argument('<family>', 'family id')
      .option('--yes', 'confirm the erase (required: it cannot be undone)'),
  )
    .option('--json', 'print the result as JSON')
    .action(
      action(async (fam: string, opts: DataOptions) => {
        const f = familyArg(fam);
        if (!opts.yes) throw new CliError('family erase cannot be undone: add --yes to confirm', 2);
        await withAdmin(opts, false, async ({ store, audit }) => {
          const r = await eraseFamily(store, audit, f);
          if (opts.json) printJson({ family: f, ...r });
          else process.stdout.write(`erased ${f}: ${r.clips} clips, ${r.endpoints} endpoints\n`);
        });
      }),
    );

  withDataOptions(
    program
      .command('revoke')
      .description('revoke an endpoint: it can no longer connect and its id can never be registered again')
      .argument('<endpoint>', 'endpoint id'),
  ).action(
    action(async (endpoint: string, opts: DataOptions) => {
      const e = endpointArg(endpoint);
      await withAdmin(opts, false, async ({ store, audit }) => {
        await revoke(store, audit, e);
        process.stdout.write(`revoked ${e}\n`);
      });
    }),
  );

  const endpoints = program
    .command('endpoints')
    .description('registered endpoints (public keys and pseudonymous ids only)');
  withDataOptions(endpoints.command('list').description('list registered endpoints'))
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: DataOptions) => {
        await withAdmin(opts, false, async ({ store, audit }) => {
          const list = await listEndpoints(store, audit);
          if (opts.json) {
            printJson(
              list.map((e) => ({
                id: e.id,
                role: e.role,
                familyId: e.familyId,
                revoked: e.revoked,
                createdAt: e.createdAt,
                signPublicKey: toHex(e.signPublicKey),
                boxPublicKey: toHex(e.boxPublicKey),
              })),
            );
          } else {
            for (const e of list) {
              process.stdout.write(
                `${e.id} ${e.role.padEnd(6)} ${e.familyId ?? '-'.padEnd(27)} ${e.revoked ? 'revoked' : 'active'}\n`,
              );
            }
          }
        });
      }),
    );

  const audit = program.command('audit').description('tamper-evident audit log [PLK-12.2]');
  withDataOptions(
    audit
      .command('verify')
      .description('recompute the hash chain and check the anchors; exit 1 when tampered'),
  )
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: DataOptions) => {
        // A --gateway-key of another gateway is refused by openAdmin (ADMIN_WRONG_GATEWAY_KEY) before
        // anything is verified: with the right key, an anchor that does not verify is a real alarm.
        await withAdmin(opts, false, async ({ audit: log }) => {
          const r = (await verifyAudit(log)) as AuditVerifyReport;
          if (opts.json) printJson(r);
          if (!r.ok)
            throw new CliError(
              `audit log TAMPERED at row ${r.firstBadRow ?? '?'}: ${r.reason ?? 'unknown'}`,
              1,
            );
          if (!opts.json) {
            const sig = r.signaturesChecked
              ? 'anchor signatures checked'
              : 'anchor signatures NOT checked (no --gateway-key)';
            process.stdout.write(
              `audit log OK: ${r.rows} rows, anchored through row ${r.anchoredSeq}, ${sig}\n`,
            );
          }
        });
      }),
    );

  withDataOptions(
    program
      .command('backup')
      .description(
        "online backup (safe while the gateway runs) into a new directory (0700): the databases and the gateway's identity, PRIVATE key included; restore it with plushlink restore",
      )
      .argument('<out>', 'new backup directory'),
  )
    .option('--json', 'print the result as JSON')
    .action(
      action(async (out: string, opts: DataOptions) => {
        await checkOutDir(out, 'backup directory');
        await withAdmin(opts, false, async ({ store, audit: log }) => {
          const r = await backup(store, log, out, { gatewayKeyDir: join(opts.data, 'gateway') });
          const names = r.files.map((f) => relative(r.dir, f));
          if (opts.json) {
            printJson({ dir: r.dir, files: names, gatewayId: r.gatewayId ?? null, privateKey: r.privateKey });
            return;
          }
          process.stdout.write(
            `backup of gateway ${r.gatewayId ?? '(no gateway key)'} in ${r.dir}: ${names.join(', ')}\n`,
          );
          process.stdout.write(
            r.privateKey
              ? `this backup holds the gateway's PRIVATE key (${join(r.dir, 'gateway', PRIVATE_KEY_FILE)}, 0600): keep it as safe as the data directory\n`
              : `no gateway key in ${join(opts.data, 'gateway')}: this backup cannot be restored as a gateway's identity\n`,
          );
        });
      }),
    );

  addClusterOptions(
    program
      .command('restore')
      .description(
        'restore a backup into a new data directory, after checking it (files, PRAGMA quick_check, audit chain with its own key, key ↔ database)',
      )
      .argument('<backup>', 'backup directory (made by plushlink backup)')
      .requiredOption('--data <dir>', 'new data directory to restore into (must not exist, or be empty)')
      .option('--json', 'print the result as JSON'),
    'restore into that (empty) schema instead; --data then receives only the gateway key',
  ).action(
    action(
      async (from: string, opts: { data: string; json?: boolean; postgres?: string; pgSchema?: string }) => {
        await checkOutDir(opts.data, '--data');
        const r =
          opts.postgres !== undefined
            ? await restoreIntoPostgres(from, opts.data, {
                postgres: opts.postgres,
                ...(opts.pgSchema ? { schema: opts.pgSchema } : {}),
              })
            : await restore(from, opts.data);
        if (opts.json) {
          printJson(r);
          return;
        }
        process.stdout.write(
          `restored gateway ${r.gatewayId} from ${r.from} into ${r.dir}: ${r.endpoints} endpoints, ${r.families} families, ${r.pendingDeliveries} pending deliveries; audit log ${r.audit.rows} rows verified (anchored through row ${r.audit.anchoredSeq}, signatures checked)\n`,
        );
        process.stdout.write(`files: ${r.files.join(', ')}\n`);
        if (!r.idRecorded) {
          process.stdout.write(
            'the database did not record its gateway id (older data): the gateway records it at its next start\n',
          );
        }
        process.stdout.write(
          opts.postgres !== undefined
            ? `start nodes with: plushlink gateway --data ${r.dir} --postgres URL --redis URL${opts.pgSchema ? ` --pg-schema ${opts.pgSchema}` : ''} (copy ${r.dir}/gateway to every node)\n`
            : `start it with: plushlink gateway --data ${r.dir}\n`,
        );
      },
    ),
  );
}
