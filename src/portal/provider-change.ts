/**
 * "I changed my password at my provider" (issue 12). When the provider refuses the stored
 * credentials (the account is flagged REJECTED) and the user signs in with a password postern
 * does not know, postern asks the provider with its own upstream login (the `--check` of the CLI:
 * connect, log in, LOGOUT). If the provider accepts it, it is the new primary password: recorded
 * as a primary-password change, which re-seals the upstream secret under it and revokes every
 * app-specific password, as Apple does.
 *
 * Only after the authentication service has refused (and counted) the attempt, so each try costs
 * the same throttle budget as any wrong password and the provider is never an unthrottled oracle.
 * Only for accounts in mode `password` with a mail upstream configured (checked through IMAP's,
 * else POP3's, else SMTP's, as `--check` does) and currently REJECTED:
 * an account the provider still accepts is never re-keyed by someone who merely knows a password
 * the provider also takes (for instance a provider-side app password).
 */
import type { AccountService } from '../accounts/service.js';
import { checkLogin, type CheckTarget } from '../cli/upstream-check.js';
import type { Logger } from '../log.js';
import type { AccountRow, Store } from '../store/index.js';
import { normalizeLogin } from '../accounts/validation.js';

export interface ProviderChangeDeps {
  store: Store;
  accounts: AccountService;
  /** The upstream the new password is checked against; null: none configured, no check. */
  upstream: CheckTarget | null;
  /** What postern calls itself in SMTP's EHLO, when the check goes through SMTP. */
  serverName: string;
  enabled: boolean;
  log: Logger;
}

export type ProviderCheck = (login: string, password: string) => Promise<AccountRow | null>;

export function providerPasswordChange(deps: ProviderChangeDeps): ProviderCheck {
  return async (loginInput, password) => {
    if (!deps.enabled || !deps.upstream || password.length === 0) return null;
    let login: string;
    try {
      login = normalizeLogin(loginInput);
    } catch {
      return null;
    }
    const account = await deps.store.accounts.findByLogin(login);
    if (!account || account.upstreamMode !== 'password' || account.upstreamStatus !== 'rejected') return null;
    const verdict = await checkLogin(deps.upstream, { username: account.upstreamUser, password }, deps.serverName);
    if (!verdict.ok) return null;
    const revoked = await deps.accounts.setPrimaryPassword(account.login, password, password);
    await deps.store.accounts.setUpstreamStatus(account.id, 'ok', Date.now());
    deps.log.info({ event: 'portal.primary_changed', user: account.login, revoked: revoked.length },
      'the provider accepted a new password on the account page: primary password changed, app-specific passwords revoked');
    return await deps.store.accounts.get(account.id) ?? null;
  };
}
