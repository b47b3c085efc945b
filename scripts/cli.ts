// The `plushlink` command line: one commander program, one module per command group.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { commandModules } from './commands/index.ts';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export function buildProgram(): Command {
  const program = new Command('plushlink')
    .description('PlushLink: connected plush toy simulator and authenticated voice-clip gateway')
    .version(pkg.version, '-V, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      outputError: (str, write) => write(`plushlink: ${str.replace(/^error: /, '').trim()}\n`),
    })
    .exitOverride();
  for (const register of commandModules) register(program);
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    throw err;
  }
}

await main();
