/**
 * The `postern` command line: builds the commander program on injected I/O and runs it, returning
 * the exit status instead of exiting, so tests drive it in-process and main.ts stays trivial.
 */
import { Command } from 'commander';
import { registerCertCommands } from './commands/cert.js';
import { registerDavCommands } from './commands/dav.js';
import { registerDbCommands } from './commands/db.js';
import { registerDnsRecordsCommand } from './commands/dns-records.js';
import { registerInitCommand } from './commands/init.js';
import { registerPasswordCommands } from './commands/password.js';
import { registerServeCommand, type LoggerFactory } from './commands/serve.js';
import { registerUserCommands } from './commands/user.js';
import { describeFailure, EXIT_OK, oneLine } from './errors.js';
import type { CliIo } from './io.js';
import { packageVersion } from './paths.js';

export interface CliOptions {
  /** Logger for `serve` (tests capture it; production writes JSON lines to stdout). */
  makeLogger?: LoggerFactory;
}

export function buildProgram(io: CliIo, options: CliOptions = {}): Command {
  const program = new Command('postern')
    .description('Authentication proxy for IMAP, SMTP, CalDAV and CardDAV with app-specific passwords')
    .version(packageVersion(), '-V, --version')
    .option('-c, --config <file>', 'config file (default: $POSTERN_CONFIG or config/postern.yaml)')
    // Settings below are inherited by every subcommand added after them.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) => write(`postern: ${oneLine(text.replace(/^error: /, ''))}\n`),
    })
    .showSuggestionAfterError(true)
    .allowExcessArguments(false);
  registerInitCommand(program, io);
  registerUserCommands(program, io);
  registerPasswordCommands(program, io);
  registerCertCommands(program, io);
  registerDbCommands(program, io);
  registerDnsRecordsCommand(program, io);
  registerDavCommands(program, io);
  registerServeCommand(program, io, options.makeLogger);
  return program;
}

/** Runs one command line (without `node` and the script name) and returns its exit status. */
export async function runCli(argv: readonly string[], io: CliIo, options: CliOptions = {}): Promise<number> {
  try {
    await buildProgram(io, options).parseAsync([...argv], { from: 'user' });
    return EXIT_OK;
  } catch (err) {
    const { exitCode, message } = describeFailure(err);
    if (message !== null) io.stderr.write(`postern: ${message}\n`);
    return exitCode;
  }
}
