/**
 * What the admin CLI does with second factors: no key needed, only the store. A reset (after a
 * lost phone) removes the TOTP key, every recovery code and every passkey, and ends the account's
 * page sessions;
 * the next sign-in must enrol again before anything else.
 */
import type { AccountRow, Store } from '../store/index.js';

export async function hasSecondFactor(store: Store, accountId: number): Promise<boolean> {
  return (await store.secondFactors.get(accountId)) !== undefined;
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
