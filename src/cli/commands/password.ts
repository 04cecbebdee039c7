/**
 * `postern password new | list | revoke | revoke-all | history`: app-specific passwords, the way
 * Apple's account page handles them. `new` asks for the primary password first (it proves the
 * admin acts for the user and unseals the data key the new password must carry), then prints the
 * password exactly once with where to paste it. Nothing can show it again.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { normalizeLogin } from '../../accounts/validation.js';
import type { CreatedPassword } from '../../accounts/service.js';
import { servers } from '../../accounts/server-settings.js';
import type { ResolvedConfig } from '../../config/load.js';
import { isPosternError, PosternError } from '../../errors.js';
import { isActive, type AppPasswordRow, type EventRow } from '../../store/index.js';
import { globals, withStore, type StoreContext } from '../context.js';
import { fields, isoOrNull, json, safe, table, time } from '../format.js';
import type { CliIo } from '../io.js';
import { secretReader } from '../secrets.js';

interface NewOptions { label: string; scopes?: string; expires?: string; passwordStdin?: boolean; json?: boolean }

export function registerPasswordCommands(program: Command, io: CliIo): void {
  const password = program.command('password').description('manage app-specific passwords');

  password.command('new').description('create an app-specific password (prompts for the primary password)').argument('<login>')
    .requiredOption('--label <label>', 'what it is for, e.g. "Thunderbird on laptop" (1-64 characters)')
    .option('--scopes <list>', 'comma-separated protocols it may be used for: imap,pop3,smtp,caldav,carddav (default: all)')
    .option('--expires <when>', 'expiry as a duration (90d, 12h, 30m, 2w) or an ISO date (default: never)')
    .option('--password-stdin', 'read the primary password from line 1 of stdin instead of a terminal prompt')
    .option('--json', 'machine-readable output (includes the password, once)')
    .action(async (login: string, opts: NewOptions, cmd: Command) => withStore(globals(cmd), io, (ctx) => newPassword(ctx, io, login, opts)));

  password.command('list').description('list the app-specific passwords of an account').argument('<login>')
    .addOption(new Option('--status <status>', 'only these').choices(['active', 'revoked', 'expired']))
    .option('--json', 'machine-readable output')
    .action(async (login: string, opts: { json?: boolean; status?: string }, cmd: Command) => withStore(globals(cmd), io, (ctx) => listPasswords(ctx, io, login, opts)));

  password.command('revoke').description('revoke one app-specific password (apps using it are signed out)').argument('<login>').argument('<id>', 'the id shown by "password list"')
    .action(async (login: string, id: string, _opts: unknown, cmd: Command) => withStore(globals(cmd), io, async ({ accounts }) => {
      const row = (await accounts.listPasswords(login)).find((p) => p.publicId === id.trim().toLowerCase());
      await accounts.revokePassword(login, id);
      io.stdout.write(`revoked ${safe(row?.publicId ?? id)}${row ? ` (${safe(row.label)})` : ''}; apps using it are signed out within a second\n`);
    }));

  password.command('revoke-all').description('revoke every app-specific password of an account').argument('<login>')
    .action(async (login: string, _opts: unknown, cmd: Command) => withStore(globals(cmd), io, async ({ accounts }) => {
      const revoked = await accounts.revokeAll(login);
      io.stdout.write(`revoked ${revoked.length} app-specific passwords${revoked.length ? ': ' + revoked.join(', ') : ''}\n`);
    }));

  password.command('history').description('show the history of an account: passwords created, used (at most once a minute) and revoked (and why), primary password changes, refused and failed logins').argument('<login>')
    .option('--limit <n>', 'at most this many events, newest first', parseLimit, 200)
    .option('--json', 'machine-readable output')
    .action(async (login: string, opts: { json?: boolean; limit: number }, cmd: Command) => withStore(globals(cmd), io, async ({ accounts }) => {
      const events = await accounts.history(login, opts.limit);
      if (opts.json) return void io.stdout.write(json(events.map(eventJson)));
      if (events.length === 0) return void io.stdout.write('no events\n');
      io.stdout.write(table(['TIME', 'EVENT', 'PASSWORD', 'PROTOCOL', 'ADDRESS', 'DETAIL'],
        events.map((e) => [time(e.at), e.type, e.passwordId ?? '', e.protocol ?? '', e.address ?? '', describeDetail(e)])));
    }));
}

function parseLimit(value: string): number {
  const n = Number(value);
  // Commander turns InvalidArgumentError into its usual usage error (exit 2).
  if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new InvalidArgumentError('must be a whole number from 1 to 100000');
  return n;
}

async function newPassword({ config, accounts }: StoreContext, io: CliIo, login: string, opts: NewOptions): Promise<void> {
  const request = { label: opts.label, scopes: opts.scopes, expires: opts.expires };
  // Everything checkable is checked before the prompt, so nobody types a password for nothing.
  const account = await withListHint(login, () => accounts.checkNewPassword(login, request));
  const primary = await secretReader(io, Boolean(opts.passwordStdin)).read({ name: `primary password of ${account.login}` });
  const created = await withListHint(account.login, () => accounts.createPassword(account.login, primary, request));
  if (opts.json) {
    io.stdout.write(json({ login: account.login, password: created.password, id: created.publicId, label: created.label, scopes: created.scopes, expiresAt: isoOrNull(created.expiresAt), servers: servers(config, created.scopes) }));
    return;
  }
  io.stdout.write(announce(config, account.login, created));
}

/** At the limit, the refusal also says which command shows what to revoke. */
async function withListHint<T>(login: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!isPosternError(err, 'PASSWORD_LIMIT_REACHED')) throw err;
    throw new PosternError(err.code, `${err.message} ("postern password list ${normalizeLogin(login)}")`, { cause: err });
  }
}

function announce(config: ResolvedConfig, login: string, created: CreatedPassword): string {
  const where = servers(config, created.scopes).map((s) => `  ${s.service.padEnd(15)} ${s.address}`).join('\n');
  return [
    `New app-specific password for ${safe(login)}. It is shown once and cannot be displayed again:`,
    '',
    `    ${created.password}`,
    '',
    fields([
      ['label', created.label],
      ['id', created.publicId],
      ['scopes', created.scopes.join(', ')],
      ['expires', created.expiresAt === null ? 'never' : time(created.expiresAt)],
    ]).replace(/^/gm, '  ').trimEnd(),
    '',
    `Paste it into the app's password field (user name "${safe(login)}") instead of the primary password.`,
    where ? `Point the app at postern:\n${where}` : 'No listener for these scopes is configured on this postern.',
    '',
  ].join('\n');
}

function status(p: AppPasswordRow, now: number): string {
  if (p.revokedAt !== null) return p.revokedReason === 'expiry' ? 'expired' : `revoked (${p.revokedReason ?? 'admin'})`;
  return isActive(p, now) ? 'active' : 'expired';
}

function passwordJson(p: AppPasswordRow, now: number) {
  return {
    id: p.publicId, label: p.label, scopes: p.scopes, status: status(p, now).replace(/ .*/, ''), revokedReason: p.revokedReason,
    createdAt: isoOrNull(p.createdAt), expiresAt: isoOrNull(p.expiresAt), revokedAt: isoOrNull(p.revokedAt),
    lastUsed: p.lastUsedAt === null ? null : { at: isoOrNull(p.lastUsedAt), protocol: p.lastUsedProtocol, address: p.lastUsedAddress },
  };
}

async function listPasswords({ accounts }: StoreContext, io: CliIo, login: string, opts: { json?: boolean; status?: string }): Promise<void> {
  const now = io.clock();
  const rows = (await accounts.listPasswords(login)).filter((p) => !opts.status || status(p, now).startsWith(opts.status));
  if (opts.json) return void io.stdout.write(json(rows.map((p) => passwordJson(p, now))));
  if (rows.length === 0) return void io.stdout.write(`no app-specific passwords${opts.status ? ` with status ${opts.status}` : ''}\n`);
  io.stdout.write(table(['ID', 'LABEL', 'SCOPES', 'CREATED', 'LAST USED', 'EXPIRES', 'STATUS'], rows.map((p) => [
    p.publicId, p.label, p.scopes.join(','), time(p.createdAt),
    p.lastUsedAt === null ? 'never' : `${time(p.lastUsedAt)} ${p.lastUsedProtocol ?? ''} ${p.lastUsedAddress ?? ''}`.trim(),
    p.expiresAt === null ? 'never' : time(p.expiresAt), status(p, now),
  ])));
}

function eventJson(e: EventRow) {
  return { at: isoOrNull(e.at), type: e.type, passwordId: e.passwordId, protocol: e.protocol, address: e.address, detail: e.detail };
}

function describeDetail(e: EventRow): string {
  const d = e.detail ?? {};
  const parts: string[] = [];
  if (typeof d.label === 'string') parts.push(`label=${JSON.stringify(d.label)}`);
  if (Array.isArray(d.scopes)) parts.push(`scopes=${d.scopes.join(',')}`);
  if (typeof d.expiresAt === 'number') parts.push(`expires=${time(d.expiresAt)}`);
  for (const key of ['reason', 'mode', 'upstreamMode'] as const) if (typeof d[key] === 'string') parts.push(`${key}=${d[key]}`);
  return parts.join(' ');
}
