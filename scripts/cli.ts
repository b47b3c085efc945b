// The `plushlink` command line: loads only the command group that runs, then parses.
import { CommanderError } from 'commander';
import { modulesFor } from './commands/index.ts';
import { buildProgram } from './program.ts';

async function main(): Promise<void> {
  const program = await buildProgram(modulesFor(process.argv.slice(2)));
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
