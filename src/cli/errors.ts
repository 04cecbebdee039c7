/**
 * The one place an error becomes an exit status and the line an admin reads.
 * 0 done, 1 refused (with a one-line reason), 2 usage error (commander's own included); a
 * PosternError exits with what its code's catalogue entry says (src/errors.ts).
 * Messages are flattened to one line; they never carry a secret because no code path puts one in.
 */
import { CommanderError } from 'commander';
import { ERROR_CATALOGUE, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, isPosternError } from '../errors.js';

export { EXIT_OK, EXIT_REFUSED, EXIT_USAGE } from '../errors.js';

/** A refusal or usage error raised by the CLI itself (not by the services it calls). */
export class CliError extends Error {
  constructor(readonly exitCode: number, message: string) {
    super(message);
    this.name = 'CliError';
  }
}

export const refused = (message: string) => new CliError(EXIT_REFUSED, message);
export const usage = (message: string) => new CliError(EXIT_USAGE, message);

export function oneLine(text: string): string {
  return text.replace(/:\s*\n\s*/g, ': ').replace(/\s*\n\s*/g, '; ').replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
}

/** Maps anything thrown by a command to an exit status and the text for stderr (null: already printed). */
export function describeFailure(err: unknown): { exitCode: number; message: string | null } {
  if (err instanceof CommanderError) {
    // Commander already wrote its message (or the help) through the configured output.
    const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version';
    return { exitCode: ok ? EXIT_OK : EXIT_USAGE, message: null };
  }
  if (err instanceof CliError) return { exitCode: err.exitCode, message: oneLine(err.message) };
  if (isPosternError(err)) return { exitCode: ERROR_CATALOGUE[err.code].exitStatus, message: oneLine(err.message) };
  const message = err instanceof Error ? err.message : String(err);
  return { exitCode: EXIT_REFUSED, message: oneLine(`unexpected error: ${message}`) };
}
