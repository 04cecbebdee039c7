/**
 * What the admin CLI does with second factors: no key needed, only the store. A reset (after a
 * lost phone) removes the TOTP key, every recovery code and every passkey, and ends the account's
 * page sessions;
 * the next sign-in must enrol again before anything else.
 */
import type { AccountRow, Store, StoreRepos } from '../store/index.js';

/** Which second factors an account has; either alone is two-factor authentication. */
export interface SecondFactors {
  authenticatorApp: boolean;
  passkeys: number;
}

export async function secondFactorsOf(store: StoreRepos, accountId: number): Promise<SecondFactors> {
  return { authenticatorApp: (await store.secondFactors.get(accountId)) !== undefined, passkeys: await store.passkeys.count(accountId) };
}

/**
 * The one answer to "has this account two-factor authentication?": an authenticator app (TOTP)
 * or at least one passkey. Generate, the page's guards, sign-in's second step, self-enrolment's
 * must-enrol redirect and `user show` all ask here.
 */
export async function hasSecondFactor(store: StoreRepos, accountId: number): Promise<boolean> {
  const factors = await secondFactorsOf(store, accountId);
  return factors.authenticatorApp || factors.passkeys > 0;
}

/** True when there was a second factor to remove. Recorded in the account's history. */
export function resetSecondFactor(store: Store, account: Pick<AccountRow, 'id' | 'login'>, now: number): Promise<boolean> {
  return store.transaction(async (tx) => {
    const hadTotp = await tx.secondFactors.reset(account.id);
    const passkeys = await tx.passkeys.removeAll(account.id);
    const had = hadTotp || passkeys > 0;
    await tx.portalSessions.endAll(account.id, now);
    if (had) await tx.events.append({ type: 'second_factor.reset', at: now, accountId: account.id, login: account.login, detail: { passkeys } });
    return had;
  });
}
