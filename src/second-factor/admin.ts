/**
 * What the admin CLI does with second factors: no key needed, only the store. A reset (after a
 * lost phone) removes the TOTP key, every recovery code and every passkey, and ends the account's
 * page sessions;
 * the next sign-in must enrol again before anything else.
 */
import type { AccountRow, Store } from '../store/index.js';

export function hasSecondFactor(store: Store, accountId: number): boolean {
  return store.secondFactors.get(accountId) !== undefined;
}

/** True when there was a second factor to remove. Recorded in the account's history. */
export function resetSecondFactor(store: Store, account: Pick<AccountRow, 'id' | 'login'>, now: number): boolean {
  return store.transaction(() => {
    const hadTotp = store.secondFactors.reset(account.id);
    const passkeys = store.passkeys.removeAll(account.id);
    const had = hadTotp || passkeys > 0;
    store.portalSessions.endAll(account.id, now);
    if (had) store.events.append({ type: 'second_factor.reset', at: now, accountId: account.id, login: account.login, detail: { passkeys } });
    return had;
  });
}
