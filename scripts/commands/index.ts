// Registry of plushlink command groups: the command names each module defines, and how to load it.
import type { Command } from 'commander';

export type RegisterCommands = (program: Command) => void;

/**
 * A command group is loaded only when one of its commands runs (or for the full `--help`):
 * importing every group pulls in Aedes, MQTT.js, SQLite, Opus and more, ~1 s of start-up that
 * `plushlink clip inspect` should not pay. A test checks that `names` match what `load` defines.
 */
export interface CommandModule {
  readonly names: readonly string[];
  readonly load: () => Promise<RegisterCommands>;
}

export const commandModules: readonly CommandModule[] = [
  { names: ['keys'], load: async () => (await import('./keys.ts')).registerKeysCommands },
  { names: ['clip'], load: async () => (await import('./clip.ts')).registerClipCommands },
  { names: ['encode', 'decode'], load: async () => (await import('./codec.ts')).registerCodecCommands },
  { names: ['ble'], load: async () => (await import('./ble.ts')).registerBleCommands },
  { names: ['gateway'], load: async () => (await import('./gateway.ts')).registerGatewayCommands },
  {
    names: ['provision', 'family', 'revoke', 'endpoints', 'audit', 'backup', 'restore'],
    load: async () => (await import('./admin.ts')).registerAdminCommands,
  },
  { names: ['fleet'], load: async () => (await import('./fleet.ts')).registerFleetCommands },
  { names: ['demo'], load: async () => (await import('./demo.ts')).registerDemoCommands },
  { names: ['loadtest'], load: async () => (await import('./loadtest.ts')).registerLoadtestCommands },
  { names: ['firmware'], load: async () => (await import('./firmware.ts')).registerFirmwareCommands },
  { names: ['token'], load: async () => (await import('./token.ts')).registerTokenCommands },
  { names: ['lab'], load: async () => (await import('./lab.ts')).registerLabCommands },
];

/** The modules needed for `argv` (process.argv without node and script): one, or all for help. */
export function modulesFor(argv: readonly string[]): readonly CommandModule[] {
  const name = argv.find((a) => !a.startsWith('-'));
  const one = name === undefined ? undefined : commandModules.find((m) => m.names.includes(name));
  if (one) return [one];
  const version = name === undefined && argv.some((a) => a === '-V' || a === '--version');
  return version ? [] : commandModules; // `plushlink --version` needs no command group
}
