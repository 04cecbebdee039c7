/**
 * Optional self-enrolment (issue 12; off unless `portal.enrol.domains` lists domains): a login
 * postern does not know, in one of those domains, whose password the provider accepts (postern's
 * own upstream login, the CLI's `--check`, as the provider-password change does) becomes an
 * account on first sign-in: upstream mode `password`, the typed password both the primary and
 * the sealed upstream secret, created by the same AccountService as `user add`. The page then
 * requires a second factor before anything else (the session starts at stage `password`).
 *
 * Called only after the authentication service refused (and counted, and delayed) the attempt,
 * so every try costs the same throttle budget as a wrong password and the provider is never an
 * unthrottled oracle. A login outside the domains, an existing account, or a refusal by the
 * provider all come back as null: the route answers them exactly as a wrong password.
 */
import type { AccountService } from '../accounts/service.js';
import { normalizeLogin } from '../accounts/validation.js';
import { checkLogin, type CheckTarget } from '../cli/upstream-check.js';
import { isPosternError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AccountRow, Store } from '../store/index.js';

export interface SelfEnrolDeps {
  store: Store;
  accounts: AccountService;
  upstream: CheckTarget | null;
  serverName: string;
  /** Lower-cased domains whose logins may enrol themselves; empty: off. */
  domains: readonly string[];
  /** The least time any refused sign-in takes while enrolment is on (see the route). */
  minRefusalMs: number;
  log: Logger;
  clock: () => number;
}

export interface SelfEnrol {
  enrol(login: string, password: string): Promise<AccountRow | null>;
  minRefusalMs: number;
}

export function selfEnrolment(deps: SelfEnrolDeps): SelfEnrol | null {
  if (deps.domains.length === 0 || !deps.upstream) return null;
  const domains = new Set(deps.domains.map((d) => d.toLowerCase()));
  const upstream = deps.upstream;
  const enrol = async (loginInput: string, password: string): Promise<AccountRow | null> => {
    if (password.length === 0) return null;
    let login: string;
    try {
      login = normalizeLogin(loginInput);
    } catch {
      return null;
    }
    const at = login.lastIndexOf('@');
    if (at <= 0 || !domains.has(login.slice(at + 1)) || await deps.store.accounts.findByLogin(login)) return null;
    const verdict = await checkLogin(upstream, { username: login, password }, deps.serverName);
    if (!verdict.ok) return null;
    let account: AccountRow;
    try {
      account = await deps.accounts.addAccount(login, password, { mode: 'password', secret: password });
    } catch (err) {
      // Another sign-in (or `user add`) made it meanwhile: this one is answered as any refusal.
      if (isPosternError(err, 'ACCOUNT_EXISTS')) return null;
      throw err;
    }
    await deps.store.accounts.setUpstreamStatus(account.id, 'ok', deps.clock());
    deps.log.info({ event: 'portal.self_enrolled', user: account.login }, 'a login the provider accepted enrolled itself on the account page; it must set up two-factor authentication next');
    return (await deps.store.accounts.get(account.id)) ?? null;
  };
  return { enrol, minRefusalMs: deps.minRefusalMs };
}
