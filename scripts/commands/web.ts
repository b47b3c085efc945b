// `plushlink gateway --web-port / --ws-port`: the options and the listeners — the parent page with MQTT over WebSocket on its own origin, and MQTT over WebSocket alone — beside the TCP/TLS listener.
import type { Command } from 'commander';
import type { Logger } from 'pino';
import type { EmbeddedGateway } from '../../gateway/embedded.ts';
import { startWebServer, type WebServer } from '../../gateway/web.ts';
import { listenWebSocketMqtt, type WebSocketListener } from '../../gateway/websocket.ts';
import { CliError, intOption } from '../cli-util.ts';

export interface WebCliOptions {
  webPort?: number;
  webHost?: string;
  webOrigin?: string[];
  wsPort?: number;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Adds --web-port, --web-host, --web-origin and --ws-port to a command. */
export function addWebOptions(cmd: Command): Command {
  return cmd
    .option(
      '--web-port <n>',
      'serve the parent page (docs/WEB.md) and MQTT over WebSocket at /mqtt on this port: HTTPS and wss with --tls-cert/--tls-key (0 picks a free port)',
      intOption('--web-port', 0, 65535),
    )
    .option('--web-host <addr>', 'listen address of --web-port and --ws-port (default: --host)')
    .option(
      '--web-origin <url>',
      'another origin the page is opened from, e.g. https://plushlink.lan:8443 (repeatable; the loopback names are always allowed): its host is served and its WebSocket connections accepted',
      collect,
    )
    .option(
      '--ws-port <n>',
      'MQTT over WebSocket alone on this port (ws://, or wss:// with TLS), for MQTT clients that are not the page: requests without an Origin, or from a --web-origin or the page, are accepted',
      intOption('--ws-port', 0, 65535),
    );
}

export interface WebListeners {
  readonly web?: WebServer;
  readonly ws?: WebSocketListener;
  /** ` web=http://…/ ws=ws://…/mqtt` for the listening line (empty without either). */
  readonly summary: string;
  close(): Promise<void>;
}

/** Starts what the options ask for, on the running gateway; closes what started when one fails. */
export async function startWebListeners(
  eg: Pick<EmbeddedGateway, 'gateway' | 'identity'>,
  opts: WebCliOptions & { host: string; maxPacket?: number; connectRate?: number },
  tls: { readonly cert: string | Buffer; readonly key: string | Buffer } | undefined,
  logger: Logger,
): Promise<WebListeners> {
  const host = opts.webHost ?? opts.host;
  const limits = {
    ...(opts.maxPacket !== undefined ? { maxMessageBytes: opts.maxPacket + 2048 } : {}),
    ...(opts.connectRate !== undefined ? { upgradesPerSecond: opts.connectRate } : {}),
  };
  let web: WebServer | undefined;
  let ws: WebSocketListener | undefined;
  try {
    if (opts.webPort !== undefined) {
      web = await startWebServer({
        gateway: eg.gateway,
        identity: eg.identity,
        host,
        port: opts.webPort,
        ...(tls ? { tls } : {}),
        origins: opts.webOrigin ?? [],
        ws: limits,
        logger,
      });
    }
    if (opts.wsPort !== undefined) {
      ws = await listenWebSocketMqtt({
        gateway: eg.gateway,
        host,
        port: opts.wsPort,
        ...(tls ? { tls } : {}),
        allowedOrigins: [...(web?.origins ?? []), ...(opts.webOrigin ?? [])],
        ...limits,
        logger,
      });
    }
  } catch (err) {
    await web?.close();
    await ws?.close();
    throw new CliError((err as Error).message, 1, { cause: err });
  }
  return {
    ...(web ? { web } : {}),
    ...(ws ? { ws } : {}),
    summary: `${web ? ` web=${web.url}` : ''}${ws ? ` ws=${ws.url}` : ''}`,
    async close() {
      await web?.close();
      await ws?.close();
    },
  };
}
