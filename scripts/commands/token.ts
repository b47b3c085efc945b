// `plushlink token`: a fresh connect token for an endpoint key, and the mosquitto_sub/mosquitto_pub command lines that use it [PLK-3.1].
import { type Command, Option } from 'commander';
import { readIdentity } from '../../platform/keyfiles.ts';
import type { PrivateIdentity, PublicIdentity } from '../../shared/identity.ts';
import { createConnectToken, DEFAULT_TOKEN_WINDOW_MS } from '../../shared/token.ts';
import { clipTopic, inboxTopic, receiptTopic, relayTopic } from '../../shared/topics.ts';
import { action, CliError, durationOption, printJson, readKeyOption } from '../cli-util.ts';

type PublishKind = 'clip' | 'rcpt' | 'relay';

interface TokenOptions {
  key: string;
  gatewayIdentity: string;
  gateway: string;
  cafile?: string;
  tokenWindow: number;
  mosquitto?: boolean;
  publish: PublishKind;
  file: string;
  json?: boolean;
}

/** A connect token in the form a UTF-8-only MQTT client sends as its password (base64url, 174 characters). */
export function tokenText(identity: PrivateIdentity, gatewayId: PublicIdentity['id'], now: number): string {
  return Buffer.from(createConnectToken({ identity, gatewayId, now }).bytes).toString('base64url');
}

/** Quotes a word for a POSIX shell when it needs it (tokens, ids and topics never do). */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_\-./:=%@+,]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function brokerOf(url: string): { host: string; port: number; tls: boolean } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CliError(`--gateway must be a URL such as mqtt://127.0.0.1:1883, got "${url}"`, 2);
  }
  if (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') {
    throw new CliError(`--gateway must be an mqtt:// or mqtts:// URL, got "${url}"`, 2);
  }
  const tls = u.protocol === 'mqtts:';
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: u.port === '' ? (tls ? 8883 : 1883) : Number(u.port), tls };
}

const TOPIC_OF: Readonly<Record<PublishKind, (id: PublicIdentity['id']) => string>> = {
  clip: clipTopic,
  rcpt: receiptTopic,
  relay: relayTopic,
};

async function tokenCommand(opts: TokenOptions): Promise<void> {
  const broker = brokerOf(opts.gateway);
  const identity = await readKeyOption(opts.key);
  if (identity.role === 'gateway') {
    throw new CliError(
      `--key ${opts.key} is a gateway key: a connect token is made with a toy's or parent's key`,
    );
  }
  const gateway = await readIdentity(opts.gatewayIdentity);
  if (gateway.role !== 'gateway') {
    throw new CliError(
      `--gateway-identity ${opts.gatewayIdentity} is a ${gateway.role} identity, not a gateway's (DATA/gateway/identity.json, printed by plushlink gateway)`,
    );
  }
  const now = Date.now();
  const token = tokenText(identity, gateway.id, now);
  const windowMs = opts.tokenWindow;
  const until = new Date(now + windowMs).toISOString();
  const validity =
    `single use (one connection); accepted until ${until} — within ±${windowMs / 1000} s ` +
    `of its time ${new Date(now).toISOString()} on the gateway's clock (the gateway's --token-window)`;

  const common = (password: string): string[] => [
    '-h',
    broker.host,
    '-p',
    String(broker.port),
    ...(broker.tls ? ['--cafile', opts.cafile ?? 'CA.pem'] : []),
    '-V',
    'mqttv311',
    '-i',
    identity.id,
    '-u',
    identity.id,
    '-P',
    password,
    '-q',
    '1',
  ];
  // A token is single use: the publisher's connection needs one of its own.
  const pubToken = opts.mosquitto ? tokenText(identity, gateway.id, now) : undefined;
  const sub = ['mosquitto_sub', ...common(token), '-t', inboxTopic(identity.id), '-F', '%x'];
  const pub = pubToken
    ? ['mosquitto_pub', ...common(pubToken), '-t', TOPIC_OF[opts.publish](identity.id), '-f', opts.file]
    : undefined;

  if (opts.json) {
    printJson({
      endpoint: identity.id,
      role: identity.role,
      gateway: gateway.id,
      url: opts.gateway,
      token,
      timestamp: now,
      issuedAt: new Date(now).toISOString(),
      validUntil: until,
      windowMs,
      singleUse: true,
      ...(pub && pubToken
        ? { mosquitto: { sub: { token, argv: sub }, pub: { token: pubToken, argv: pub } } }
        : {}),
    });
    return;
  }
  if (!pub) {
    process.stdout.write(`${token}\n`);
    process.stderr.write(`token for ${identity.role} ${identity.id} → gateway ${gateway.id}: ${validity}\n`);
    return;
  }
  process.stdout.write(
    [
      `# ${identity.role} ${identity.id} → gateway ${gateway.id} at ${opts.gateway}`,
      `# each token below: ${validity}`,
      '# one connection per endpoint id at a time (a second one takes over the first): the inbox receives',
      "# the gateway's proof first, then the family roster and the backlog (payloads printed as hex)",
      sub.map(shellWord).join(' '),
      pub.map(shellWord).join(' '),
      '',
    ].join('\n'),
  );
}

export function registerTokenCommands(program: Command): void {
  program
    .command('token')
    .description(
      'print a fresh connect token [PLK-3.1] for an endpoint key, in the base64url form any MQTT client can send as its password (mosquitto_sub -P); with --mosquitto, the mosquitto_sub and mosquitto_pub command lines that use it',
    )
    .requiredOption('--key <dir>', "the endpoint's key directory (or its endpoint.key)")
    .requiredOption(
      '--gateway-identity <file>',
      "the gateway's identity.json (DATA/gateway/identity.json; plushlink gateway prints its path)",
    )
    .option('--gateway <url>', 'gateway address for the command lines', 'mqtt://127.0.0.1:1883')
    .option('--cafile <pem>', 'CA certificate for an mqtts:// gateway (mosquitto --cafile)')
    .option(
      '--token-window <duration>',
      "the gateway's accepted clock skew, to state the token's validity",
      durationOption('--token-window', 1000, 600_000),
      DEFAULT_TOKEN_WINDOW_MS,
    )
    .option('--mosquitto', 'print mosquitto_sub and mosquitto_pub command lines (each with its own token)')
    .addOption(
      new Option('--publish <topic>', 'what the mosquitto_pub line publishes')
        .choices(['clip', 'rcpt', 'relay'])
        .default('clip'),
    )
    .option('--file <path>', 'the file the mosquitto_pub line sends (-f)', 'ENVELOPE')
    .option('--json', 'print the token, its validity and (with --mosquitto) the command lines as JSON')
    .action(action(tokenCommand));
}
