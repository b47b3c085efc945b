// Builds the `plushlink` commander program from the command groups it is given.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { describeDurationDefaults } from './cli-util.ts';
import { type CommandModule, commandModules } from './commands/index.ts';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Builds the program with the given command groups (all of them by default). */
export async function buildProgram(modules: readonly CommandModule[] = commandModules): Promise<Command> {
  const program = new Command('plushlink')
    .description('PlushLink: connected plush toy simulator and authenticated voice-clip gateway')
    .version(pkg.version, '-V, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      outputError: (str, write) => write(`plushlink: ${str.replace(/^error: /, '').trim()}\n`),
    })
    .exitOverride();
  for (const register of await Promise.all(modules.map((m) => m.load()))) register(program);
  describeDurationDefaults(program);
  return program;
}
