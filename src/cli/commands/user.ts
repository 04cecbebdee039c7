/**
 * `postern user add | list | show | remove | set-password | set-upstream | reauth | 2fa reset`: accounts and how
 * postern logs in upstream for them. The upstream status flag (`rejected`, set by the proxies
 * when the provider refuses the stored credentials) is shown prominently: it is the one thing an
 * admin must act on.
 */
import { createInterface } from 'node:readline/promises';
import { Option, type Command } from 'commander';
import { MAX_ACTIVE_PASSWORDS, normalizeLogin } from '../../accounts/validation.js';
import type { AccountRow, UpstreamMode } from '../../store/index.js';
import { globals, withStore, type GlobalOptions, type StoreContext } from '../context.js';
import {
  addSecretOptions, checkUpstream, readUpstreamSecret, requireMasterConfigured, wantsDistinctSecret, type SecretOptions,
} from '../credentials.js';
import { refused, usage } from '../errors.js';
import { fields, isoOrNull, json, safe, table, time } from '../format.js';
import type { CliIo } from '../io.js';
import { secretReader } from '../secrets.js';
import { oauthClient, runAuthorization, type OAuthFlowOptions } from '../oauth.js';
import { hasSecondFactor, resetSecondFactor, secondFactorsOf } from '../../second-factor/admin.js';
import { portalUrl } from '../../accounts/server-settings.js';

interface AddOptions extends SecretOptions, OAuthFlowOptions { mode: UpstreamMode; upstreamUser?: string; oauth?: string }
interface SetUpstreamOptions extends SecretOptions { mode?: UpstreamMode; upstreamUser?: string }

const modeOption = () => new Option('--mode <mode>', 'how postern logs in upstream').choices(['password', 'master']);
const REJECTED_HINT = 'the upstream REFUSED the stored credentials: fix them with "postern user set-upstream"';
const rejectedHint = (a: AccountRow) => a.upstreamMode === 'oauth2'
  ? `the provider REFUSED the OAuth2 grant (revoked, expired or password changed): renew it with "postern user reauth ${safe(a.login)}"`
  : REJECTED_HINT;
const addOAuthFlowOptions = (cmd: Command) => cmd
  .option('--paste', 'OAuth2 code flow: paste the URL the browser was redirected to instead of listening on 127.0.0.1 (headless server)')
  .option('--redirect-port <port>', 'OAuth2 code flow: the loopback port to listen on (default: any free port)');

export function registerUserCommands(program: Command, io: CliIo): void {
  const user = program.command('user').description('manage accounts');

  addSecretOptions(
    user.command('add').description('add an account (prompts for its primary password)').argument('<login>', 'login name clients will use')
      .addOption(modeOption().default('password'))
      .option('--upstream-user <name>', 'login name at the upstream (default: the login)')
      .option('--oauth <provider>', 'upstream mode oauth2: authorise with this provider of the config (oauth2.providers)'),
    'primary password',
  );
  addOAuthFlowOptions(user.commands.at(-1)!).action(async (login: string, opts: AddOptions, cmd: Command) => addUser(login, opts, globals(cmd), io));

  addOAuthFlowOptions(user.command('reauth').description('renew the OAuth2 grant of an oauth2 account (prompts for the primary password; app passwords keep working)').argument('<login>')
    .option('--password-stdin', 'read the primary password from line 1 of stdin (and a pasted redirect URL from line 2)'))
    .action(async (login: string, opts: OAuthFlowOptions & { passwordStdin?: boolean }, cmd: Command) => reauth(login, opts, globals(cmd), io));

  user.command('list').description('list accounts').option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => withStore(globals(cmd), io, (ctx) => listUsers(ctx, io, opts.json)));

  user.command('show').description('show one account').argument('<login>').option('--json', 'machine-readable output')
    .action(async (login: string, opts: { json?: boolean }, cmd: Command) => withStore(globals(cmd), io, (ctx) => showUser(ctx, io, login, opts.json)));

  user.command('remove').description('remove an account and all its app-specific passwords').argument('<login>')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(async (login: string, opts: { yes?: boolean }, cmd: Command) => removeUser(login, opts, globals(cmd), io));

  addSecretOptions(
    user.command('set-password').description('set a new primary password (revokes every app-specific password)').argument('<login>'),
    'new primary password',
  ).action(async (login: string, opts: SecretOptions, cmd: Command) => setPassword(login, opts, globals(cmd), io));

  const twoFactor = user.command('2fa').description("the account page's second factor");
  twoFactor.command('reset').description('remove the TOTP key, recovery codes and passkeys (a lost phone) and end the page sessions; the next sign-in enrols again')
    .argument('<login>')
    .action(async (login: string, _opts: unknown, cmd: Command) => withStore(globals(cmd), io, async ({ accounts, store }) => {
      const account = await accounts.getAccount(login);
      const had = await resetSecondFactor(store, account, io.clock());
      io.stdout.write(had
        ? `two-factor authentication of ${safe(account.login)} reset; the next sign-in to the account page sets it up again\n`
        : `${safe(account.login)} had no two-factor authentication; nothing changed\n`);
    }));

  addSecretOptions(
    user.command('set-upstream').description('change how postern logs in upstream (prompts for the primary password; keeps the upstream password unless --upstream-secret)').argument('<login>')
      .addOption(modeOption())
      .option('--upstream-user <name>', 'login name at the upstream'),
    'primary password',
  ).action(async (login: string, opts: SetUpstreamOptions, cmd: Command) => setUpstream(login, opts, globals(cmd), io));
}

async function addUser(loginInput: string, opts: AddOptions, g: GlobalOptions, io: CliIo): Promise<void> {
  if (opts.oauth !== undefined) return addOAuthUser(loginInput, opts, g, io);
  wantsDistinctSecret(opts, opts.mode);
  const login = normalizeLogin(loginInput);
  await withStore(g, io, async ({ config, accounts }) => {
    if (opts.mode === 'master') requireMasterConfigured(config);
    await accounts.requireNewLogin(login);
    const reader = secretReader(io, Boolean(opts.passwordStdin));
    const primary = await reader.read({ name: 'primary password', confirm: true });
    const secret = await readUpstreamSecret(reader, opts, opts.mode, primary);
    const upstreamUser = opts.upstreamUser?.trim() || login;
    if (opts.check) await checkUpstream(config, io, login, opts.mode, upstreamUser, secret);
    const row = await accounts.addAccount(login, primary, { mode: opts.mode, user: upstreamUser, secret });
    io.stdout.write(`added account ${safe(row.login)} (upstream mode ${row.upstreamMode}, upstream user ${safe(row.upstreamUser)})\n`);
    io.stdout.write(`next: postern password new ${safe(row.login)} --label "Mail on my laptop"\n`);
    const page = portalUrl(config);
    if (page) io.stdout.write(`or the user signs in at ${page} and generates their own (two-factor authentication first)\n`);
  });
}

async function addOAuthUser(loginInput: string, opts: AddOptions, g: GlobalOptions, io: CliIo): Promise<void> {
  if (opts.mode !== 'password' || opts.upstreamSecret || opts.upstreamSecretStdin || opts.check) {
    throw usage('--oauth sets the upstream mode itself: drop --mode, --upstream-secret and --check');
  }
  const login = normalizeLogin(loginInput);
  await withStore(g, io, async ({ config, accounts }) => {
    const client = oauthClient(config, opts.oauth!);
    await accounts.requireNewLogin(login);
    const reader = secretReader(io, Boolean(opts.passwordStdin));
    const primary = await reader.read({ name: 'primary password', confirm: true });
    const tokens = await runAuthorization(client, io, reader, opts);
    const row = await accounts.addOAuth2Account(login, primary, { provider: opts.oauth!, user: opts.upstreamUser, tokens });
    io.stdout.write(`added account ${safe(row.login)} (upstream mode oauth2 with ${safe(opts.oauth)}, upstream user ${safe(row.upstreamUser)})\n`);
    io.stdout.write(`next: postern password new ${safe(row.login)} --label "Mail on my laptop"\n`);
  });
}

async function reauth(login: string, opts: OAuthFlowOptions & { passwordStdin?: boolean }, g: GlobalOptions, io: CliIo): Promise<void> {
  await withStore(g, io, async ({ config, accounts }) => {
    const account = await accounts.getAccount(login);
    if (account.upstreamMode !== 'oauth2' || !account.oauth2Provider) throw refused(`"${safe(account.login)}" is not in upstream mode oauth2 (it is ${account.upstreamMode})`);
    const client = oauthClient(config, account.oauth2Provider);
    const reader = secretReader(io, Boolean(opts.passwordStdin));
    const primary = await reader.read({ name: 'primary password' });
    // Checked before the flow: nobody should approve a grant that cannot be saved.
    await accounts.verifyPrimary(account, primary);
    const tokens = await runAuthorization(client, io, reader, opts);
    await accounts.replaceOAuth2Grant(account.login, primary, tokens);
    io.stdout.write(`renewed the OAuth2 grant of ${safe(account.login)} with ${safe(account.oauth2Provider)}; its app-specific passwords keep working; status reset to unknown\n`);
  });
}

function accountJson(a: AccountRow, activePasswords: number, twoFactor?: boolean) {
  return {
    ...(twoFactor === undefined ? {} : { twoFactor }),
    login: a.login, upstreamMode: a.upstreamMode, upstreamUser: a.upstreamUser, oauth2Provider: a.oauth2Provider, upstreamStatus: a.upstreamStatus,
    upstreamStatusAt: isoOrNull(a.upstreamStatusAt), activePasswords, createdAt: isoOrNull(a.createdAt), primaryChangedAt: isoOrNull(a.primaryChangedAt),
  };
}

async function listUsers({ accounts }: StoreContext, io: CliIo, asJson?: boolean): Promise<void> {
  await accounts.expireDue();
  const listed = await accounts.listAccounts();
  const rows: Array<ReturnType<typeof accountJson>> = [];
  for (const a of listed) rows.push(accountJson(a, await accounts.activePasswordCount(a)));
  if (asJson) return void io.stdout.write(json(rows));
  if (rows.length === 0) return void io.stdout.write('no accounts yet: add one with "postern user add <login>"\n');
  io.stdout.write(table(
    ['LOGIN', 'MODE', 'UPSTREAM USER', 'UPSTREAM', 'ACTIVE PASSWORDS', 'CREATED'],
    rows.map((r) => [r.login, r.upstreamMode, r.upstreamUser, r.upstreamStatus === 'rejected' ? 'REJECTED' : r.upstreamStatus, String(r.activePasswords), time(Date.parse(r.createdAt!))]),
  ));
  const rejected = listed.filter((r) => r.upstreamStatus === 'rejected');
  if (rejected.some((a) => a.upstreamMode !== 'oauth2')) io.stdout.write(`\nwarning: REJECTED means ${REJECTED_HINT}\n`);
  for (const a of rejected.filter((r) => r.upstreamMode === 'oauth2')) io.stdout.write(`\nwarning: ${safe(a.login)} is REJECTED: ${rejectedHint(a)}\n`);
}

async function showUser({ accounts, store }: StoreContext, io: CliIo, login: string, asJson?: boolean): Promise<void> {
  const account = await accounts.getAccount(login);
  await accounts.expireDue(account.id);
  const active = await accounts.activePasswordCount(account);
  const twoFactor = await hasSecondFactor(store, account.id);
  const { authenticatorApp, passkeys } = await secondFactorsOf(store, account.id);
  if (asJson) return void io.stdout.write(json({ ...accountJson(account, active, twoFactor), authenticatorApp, passkeys }));
  const methods = [authenticatorApp ? 'authenticator app' : '', passkeys > 0 ? `${passkeys} passkey${passkeys === 1 ? '' : 's'}` : ''].filter(Boolean).join(' and ');
  const status = account.upstreamStatus === 'rejected' ? `REJECTED since ${time(account.upstreamStatusAt)}`
    : account.upstreamStatus === 'ok' ? `ok (last confirmed ${time(account.upstreamStatusAt)})` : 'unknown (no login upstream yet)';
  io.stdout.write(fields([
    ['login', account.login],
    ['upstream mode', account.oauth2Provider ? `${account.upstreamMode} (${account.oauth2Provider})` : account.upstreamMode],
    ['upstream user', account.upstreamUser],
    ['upstream status', status],
    ['active passwords', `${active} of ${MAX_ACTIVE_PASSWORDS}`],
    ['two-factor', twoFactor ? `on: ${methods} (${await store.secondFactors.recoveryCodesLeft(account.id)} recovery codes left)` : 'off'],
    ['passkeys', String(passkeys)],
    ['created', time(account.createdAt)],
    ['primary changed', time(account.primaryChangedAt)],
  ]));
  if (account.upstreamStatus === 'rejected') io.stdout.write(`\nwarning: ${rejectedHint(account)}\n`);
}

async function removeUser(login: string, opts: { yes?: boolean }, g: GlobalOptions, io: CliIo): Promise<void> {
  await withStore(g, io, async ({ accounts }) => {
    const account = await accounts.getAccount(login);
    const active = await accounts.activePasswordCount(account);
    if (!opts.yes) {
      if (!io.isTTY) throw usage('stdin is not a terminal: confirm with --yes');
      if (!(await confirm(io, `Remove account ${safe(account.login)} and its ${active} active app-specific passwords? [y/N] `))) {
        throw refused('not confirmed; nothing removed');
      }
    }
    await accounts.removeAccount(account.login);
    io.stdout.write(`removed account ${safe(account.login)}; ${active} app-specific passwords stopped working (open sessions are signed out)\n`);
  });
}

async function confirm(io: CliIo, question: string): Promise<boolean> {
  const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: false });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

async function setPassword(login: string, opts: SecretOptions, g: GlobalOptions, io: CliIo): Promise<void> {
  await withStore(g, io, async ({ config, accounts }) => {
    const account = await accounts.getAccount(login);
    wantsDistinctSecret(opts, account.upstreamMode);
    const reader = secretReader(io, Boolean(opts.passwordStdin));
    const primary = await reader.read({ name: 'new primary password', confirm: true });
    const secret = await readUpstreamSecret(reader, opts, account.upstreamMode, primary);
    if (opts.check) await checkUpstream(config, io, account.login, account.upstreamMode, account.upstreamUser, secret);
    const revoked = await accounts.setPrimaryPassword(account.login, primary, secret);
    io.stdout.write(`primary password of ${safe(account.login)} changed; ${revoked.length} app-specific passwords revoked${revoked.length ? ': ' + revoked.join(', ') : ''}\n`);
    if (account.upstreamMode === 'oauth2') io.stdout.write(`the OAuth2 grant was sealed under the old primary password and is gone: run "postern user reauth ${safe(account.login)}"\n`);
    // A reset cannot keep the old upstream secret (it is sealed under the old primary password).
    if (account.upstreamMode === 'password' && secret === primary) {
      io.stdout.write('the upstream password is now the new primary password; if the provider uses a different one, run set-password again with --upstream-secret\n');
    }
  });
}

async function setUpstream(login: string, opts: SetUpstreamOptions, g: GlobalOptions, io: CliIo): Promise<void> {
  await withStore(g, io, async ({ config, accounts }) => {
    const account = await accounts.getAccount(login);
    const mode = opts.mode ?? account.upstreamMode;
    wantsDistinctSecret(opts, mode);
    if (mode === 'master') requireMasterConfigured(config);
    const reader = secretReader(io, Boolean(opts.passwordStdin));
    const primary = await reader.read({ name: 'primary password' });
    await accounts.verifyPrimary(account, primary);
    // Staying in mode password without --upstream-secret keeps the stored secret, which may be a
    // provider's own app password: defaulting to the primary password here would silently lose it.
    const keepSecret = mode === 'password' && account.upstreamMode === 'password' && !wantsDistinctSecret(opts, mode);
    const secret = keepSecret ? undefined : await readUpstreamSecret(reader, opts, mode, primary);
    const upstreamUser = opts.upstreamUser?.trim() || account.upstreamUser;
    if (opts.check) await checkUpstream(config, io, account.login, mode, upstreamUser, keepSecret ? accounts.upstreamSecretWithPrimary(account, primary) : secret);
    const revoked = await accounts.setUpstream(account.login, primary, { mode, user: upstreamUser, secret });
    const secretNote = mode === 'master' ? '' : keepSecret ? ', upstream password kept' : secret === primary ? ', upstream password = the primary password' : ', new upstream password';
    io.stdout.write(`upstream of ${safe(account.login)} set: mode ${mode}, user ${safe(upstreamUser)}${secretNote}; status reset to unknown\n`);
    if (revoked.length) io.stdout.write(`the mode changed, so ${revoked.length} app-specific passwords were revoked: ${revoked.join(', ')}\n`);
  });
}
