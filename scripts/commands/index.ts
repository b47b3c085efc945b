// Registry of plushlink command groups: each module adds its subcommands to the program.
import type { Command } from 'commander';

export type RegisterCommands = (program: Command) => void;

export const commandModules: RegisterCommands[] = [];
