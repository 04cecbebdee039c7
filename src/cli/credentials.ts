/**
 * How commands that set credentials gather them, in one place so `user add`, `set-password` and
 * `set-upstream` agree. Order on stdin (--password-stdin): line 1 the primary password, line 2 the
 * upstream secret when --upstream-secret-stdin asks for a distinct one. By default the upstream
 * secret is the primary password (the usual hosted-provider case); mode `master` has none.
 */
import type { Command } from 'commander';
import type { ResolvedConfig } from '../config/load.js';
import type { UpstreamMode } from '../store/index.js';
import { refused, usage } from './errors.js';
import type { CliIo } from './io.js';
import type { SecretReader } from './secrets.js';
import type { CheckCredential } from './upstream-check.js';

export interface SecretOptions {
  passwordStdin?: boolean;
  upstreamSecret?: boolean;
  upstreamSecretStdin?: boolean;
  check?: boolean;
}

export function addSecretOptions(cmd: Command, primaryName: string): Command {
  return cmd
    .option('--password-stdin', `read the ${primaryName} from line 1 of stdin instead of a terminal prompt`)
    .option('--upstream-secret', 'prompt for an upstream password that differs from the primary password')
    .option('--upstream-secret-stdin', 'read that distinct upstream password from line 2 of stdin (implies --upstream-secret)')
    .option('--check', 'log in to the configured upstream (IMAP, else POP3, else SMTP) with the credentials before saving them');
}

export function wantsDistinctSecret(opts: SecretOptions, mode: UpstreamMode): boolean {
  const distinct = Boolean(opts.upstreamSecret || opts.upstreamSecretStdin);
  if (distinct && mode === 'master') throw usage('mode "master" has no upstream secret: drop --upstream-secret');
  if (opts.upstreamSecretStdin && !opts.passwordStdin) throw usage('--upstream-secret-stdin needs --password-stdin (both secrets come from stdin)');
  return distinct;
}

export async function readUpstreamSecret(reader: SecretReader, opts: SecretOptions, mode: UpstreamMode, primary: string): Promise<string | undefined> {
  if (mode === 'master') return undefined;
  if (!wantsDistinctSecret(opts, mode)) return primary;
  return reader.read({ name: 'upstream password', confirm: true });
}

export function requireMasterConfigured(config: ResolvedConfig): void {
  if (!config.master || !config.masterPassword) throw refused('mode "master" needs a master user in the config (master.user and its password)');
}

/** `--check`: refuses (exit 1) unless the upstream accepts the credentials. Saves nothing itself. */
export async function checkUpstream(config: ResolvedConfig, io: CliIo, login: string, mode: UpstreamMode, upstreamUser: string, secret: string | undefined): Promise<void> {
  const { checkTarget, checkLogin } = await import('./upstream-check.js'); // the upstream clients are loaded only when --check is used
  const target = checkTarget(config);
  if (!target) throw refused('--check needs an upstream in the config (imap, pop3 or smtp)');
  const { upstream } = target;
  const credential: CheckCredential = mode === 'master'
    ? { username: config.master!.user, password: config.masterPassword!, authzid: upstreamUser }
    : { username: upstreamUser, password: secret! };
  io.stderr.write(`checking the login for ${JSON.stringify(login)} at ${upstream.host}:${upstream.port}...\n`);
  const result = await checkLogin(target, credential, config.hostnames[0]!);
  if (!result.ok) throw refused(`upstream check failed for "${login}": ${result.detail}; nothing saved`);
  io.stderr.write('upstream accepted the login\n');
}
