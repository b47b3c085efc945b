// Builds the `plushlink` commander program from the command groups it is given.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { describeDurationDefaults } from './cli-util.ts';
import { type CommandModule, commandModules } from './commands/index.ts';

/** The version in PlushLink's package.json: the nearest one named plushlink above this module (scripts/ or dist/scripts/). */
function packageVersion(): string {
  for (let url = new URL('../package.json', import.meta.url); ; ) {
    try {
      const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'plushlink' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no readable package.json here: look one directory up
    }
    const up = new URL('../package.json', url);
    if (up.href === url.href) throw new Error('plushlink: package.json not found above the CLI');
    url = up;
  }
}

const version = packageVersion();

/** Builds the program with the given command groups (all of them by default). */
export async function buildProgram(modules: readonly CommandModule[] = commandModules): Promise<Command> {
  const program = new Command('plushlink')
    .description('PlushLink: connected plush toy simulator and authenticated voice-clip gateway')
    .version(version, '-V, --version', 'print the version')
    // Root options only before the command name: `firmware sign --version N` is the subcommand's [PLK-13.7].
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      outputError: (str, write) => write(`plushlink: ${str.replace(/^error: /, '').trim()}\n`),
    })
    .exitOverride();
  for (const register of await Promise.all(modules.map((m) => m.load()))) register(program);
  describeDurationDefaults(program);
  return program;
}
