// Registry of plushlink command groups: each module adds its subcommands to the program.
import type { Command } from 'commander';
import { registerAdminCommands } from './admin.ts';
import { registerBleCommands } from './ble.ts';
import { registerClipCommands } from './clip.ts';
import { registerCodecCommands } from './codec.ts';
import { registerDemoCommands } from './demo.ts';
import { registerFleetCommands } from './fleet.ts';
import { registerGatewayCommands } from './gateway.ts';
import { registerKeysCommands } from './keys.ts';

export type RegisterCommands = (program: Command) => void;

export const commandModules: RegisterCommands[] = [
  registerKeysCommands,
  registerClipCommands,
  registerCodecCommands,
  registerBleCommands,
  registerGatewayCommands,
  registerAdminCommands,
  registerFleetCommands,
  registerDemoCommands,
];
