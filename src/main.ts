/**
 * Process entry: hands argv and the process's streams to the CLI and exits with its status.
 * No logic here (see src/cli/program.ts).
 */
import { runCli } from './cli/program.js';
import { processIo } from './cli/io.js';

// `postern password list alice | head -1` closes the pipe early: that is not a crash.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const code = await runCli(process.argv.slice(2), processIo());
process.exitCode = code;
// `serve` returns after a graceful close; anything still holding the loop open must not keep a
// stopped proxy alive. The timer is unref'd, so a clean exit does not wait for it.
setTimeout(() => process.exit(code), 3000).unref();
