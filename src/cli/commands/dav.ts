/**
 * `postern dav check <login>`: walks DAV discovery through the configured upstream(s) with the
 * account's real credentials and prints what a client would find (principal, home, collections),
 * so an admin sees a provider set-up work before any client does (issue 11).
 *
 * The credentials: the stored upstream secret is sealed under the primary password, so the command
 * asks for it (as `user set-upstream --check` does) and opens it in memory; a master login cannot
 * be sent as HTTP Basic (src/dav/headers.ts), so such accounts are refused. The walk itself is
 * src/dav/discovery.ts, reaching only the origins the proxy would. URLs printed are the upstream's.
 */
import type { Command } from 'commander';
import { isPosternError } from '../../errors.js';
import { discover, startUrl } from '../../dav/discovery.js';
import { DavRoutes, type DavScope } from '../../dav/routes.js';
import { HttpUpstream } from '../../upstream/http.js';
import { globals, withStore, type GlobalOptions } from '../context.js';
import { refused } from '../errors.js';
import { safe } from '../format.js';
import type { CliIo } from '../io.js';
import { secretReader } from '../secrets.js';

export function registerDavCommands(program: Command, io: CliIo): void {
  const dav = program.command('dav').description('CalDAV/CardDAV set-up');
  dav.command('check').description('walk DAV discovery through the upstream with the account\'s credentials (prompts for its primary password) and print principal, homes and collections')
    .argument('<login>')
    .option('--password-stdin', 'read the primary password from line 1 of stdin instead of a terminal prompt')
    .action(async (login: string, opts: { passwordStdin?: boolean }, cmd: Command) => davCheck(login, opts, globals(cmd), io));
}

async function davCheck(login: string, opts: { passwordStdin?: boolean }, g: GlobalOptions, io: CliIo): Promise<void> {
  await withStore(g, io, async ({ config, accounts }) => {
    const dav = config.dav;
    if (!dav) throw refused('dav check needs a dav section in the config');
    const account = await accounts.getAccount(login);
    if (account.upstreamMode !== 'password') throw refused(`"${account.login}" logs in upstream as the master user, which HTTP Basic cannot carry: DAV needs mode password`);
    const primary = await secretReader(io, Boolean(opts.passwordStdin)).read({ name: `primary password of ${account.login}` });
    await accounts.verifyPrimary(account, primary);
    const credential = { kind: 'password' as const, username: account.upstreamUser, password: accounts.upstreamSecretWithPrimary(account, primary) };
    const routes = DavRoutes.fromConfig(dav);
    const upstream = new HttpUpstream({ caFile: dav.caFile, rejectUnauthorized: dav.rejectUnauthorized, timeoutMs: dav.upstreamTimeoutMs }, routes.origins());
    routes.onLearn = (mount) => upstream.allow(mount.origin);
    let failures = 0;
    try {
      for (const kind of ['caldav', 'carddav'] as const) {
        const url = dav[kind]?.url ?? dav[`${kind}Upstream`];
        if (url) failures += await checkKind(io, { routes, upstream, credential }, kind, startUrl(url, kind));
      }
    } finally {
      upstream.close();
    }
    if (failures > 0) throw refused(`dav check failed for "${account.login}"`);
  });
}

async function checkKind(io: CliIo, deps: Parameters<typeof discover>[0], kind: DavScope, start: string): Promise<number> {
  const out = (line: string) => io.stdout.write(`${line}\n`);
  out(`${kind}: ${safe(start)}`);
  try {
    const found = await discover(deps, kind, start);
    out(`  principal: ${safe(found.principal)}`);
    out(`  ${kind === 'caldav' ? 'calendar' : 'addressbook'} home: ${safe(found.home)}`);
    if (found.collections.length === 0) out(`  no ${kind === 'caldav' ? 'calendars' : 'address books'} yet (clients can create one)`);
    for (const c of found.collections) out(`  ${kind === 'caldav' ? 'calendar' : 'address book'}: ${safe(c.url)}${c.name ? ` (${safe(c.name)})` : ''}`);
    return 0;
  } catch (err) {
    if (!isPosternError(err)) throw err;
    out(`  FAILED: ${safe(err.message)} [${err.code}]`);
    return 1;
  }
}
