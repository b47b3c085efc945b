// Registry of plushlink command groups: each module adds its subcommands to the program.
import type { Command } from 'commander';
import { registerBleCommands } from './ble.ts';
import { registerCodecCommands } from './codec.ts';

export type RegisterCommands = (program: Command) => void;

export const commandModules: RegisterCommands[] = [
  registerCodecCommands,
  registerBleCommands,
];
