// The `plushlink` command line: loads only the command group that runs, then parses.
import { CommanderError } from 'commander';
import { modulesFor } from './commands/index.ts';
import { buildProgram } from './program.ts';

/**
 * A reader that goes away (`plushlink endpoints list | head`) ends our output quietly, as SIGPIPE
 * ends a C program's, instead of an uncaught EPIPE stack trace. Node ignores SIGPIPE, so the write
 * fails with EPIPE and the stream emits 'error'; from then on writes to it are dropped and the
 * command finishes its work (closing its stores) with its own exit code — 0 unless it failed.
 */
function endQuietlyOnClosedPipe(stream: NodeJS.WriteStream, name: string): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    stream.write = () => true;
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
    // Any other failure of the stream itself (a full disk under `> file`): one line, exit 1.
    if (stream !== process.stderr)
      process.stderr.write(`plushlink: cannot write to ${name}: ${err.message}\n`);
    process.exitCode = 1;
  });
}

async function main(): Promise<void> {
  endQuietlyOnClosedPipe(process.stdout, 'stdout');
  endQuietlyOnClosedPipe(process.stderr, 'stderr');
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
