/**
 * Second factors of an account: TOTP enrolment (a key is proposed, sealed into the session, and
 * becomes the account's only once a code from it is confirmed), verification (TOTP step accepted at
 * most once, or a single-use recovery code); the admin's reset is in admin.ts. Passkeys are the
 * other kind (passkeys.ts); either alone is two-factor authentication. The ten recovery codes are
 * issued with the account's first factor, whichever it is, and kept when the other is added. Every
 * outcome the user can see goes into the account's history; no key or code is ever logged.
 */
import { PosternError } from '../errors.js';
import { open, seal } from '../crypto/envelope.js';
import type { AccountRow, Store } from '../store/index.js';
import { hasSecondFactor, secondFactorsOf, type SecondFactors } from './admin.js';
import { secondFactorKeys, TOTP_AAD, type SecondFactorKeys } from './keys.js';
import { newRecoveryCodes, normalizeRecoveryCode } from './recovery-codes.js';
import { matchingStep, newTotpKey, totpUri } from './totp.js';

export interface ProposedTotp {
  base32: string;
  uri: string;
  /** The key sealed for the session that proposed it. */
  box: Buffer;
}

export type CodeCheck = { ok: true; via: 'totp' | 'recovery' } | { ok: false };

export interface Where {
  address: string;
  browser: string;
}

export class SecondFactorService {
  private readonly keys: SecondFactorKeys;

  constructor(private readonly store: Store, serverKey: Buffer, private readonly issuer: string, private readonly clock: () => number = Date.now) {
    this.keys = secondFactorKeys(serverKey);
  }

  isEnrolled(accountId: number): Promise<boolean> {
    return hasSecondFactor(this.store, accountId);
  }

  factorsOf(accountId: number): Promise<SecondFactors> {
    return secondFactorsOf(this.store, accountId);
  }

  /** Ten new recovery codes (shown once) and the digests to store. */
  newRecoveryCodes(): { codes: string[]; digests: Buffer[] } {
    const codes = newRecoveryCodes();
    return { codes, digests: codes.map((c) => this.keys.recoveryDigest(normalizeRecoveryCode(c)!)) };
  }

  recoveryCodesLeft(accountId: number): Promise<number> {
    return this.store.secondFactors.recoveryCodesLeft(accountId);
  }

  propose(account: AccountRow, sessionId: number): ProposedTotp {
    const key = newTotpKey(this.issuer, account.login);
    return { ...key, box: seal(this.keys.totpSeal, Buffer.from(key.base32, 'utf8'), TOTP_AAD.pending(account.id, sessionId)) };
  }

  /** The otpauth:// URI of a key (what the QR code holds). */
  uriFor(account: AccountRow, base32: string): string {
    return totpUri(base32, this.issuer, account.login);
  }

  /** The base32 key inside a proposal sealed for this session (to show it again). */
  openProposal(account: AccountRow, sessionId: number, box: Buffer): string {
    return open(this.keys.totpSeal, box, TOTP_AAD.pending(account.id, sessionId)).toString('utf8');
  }

  /**
   * Makes a proposed key the account's when `code` is current for it; returns the new recovery
   * codes (shown once; none when a passkey was the first factor and its codes stay), or null for
   * a wrong code. Replaces an earlier enrolment.
   */
  async confirm(account: AccountRow, sessionId: number, box: Buffer, code: string, where: Where): Promise<string[] | null> {
    const now = this.clock();
    const base32 = this.openProposal(account, sessionId, box);
    const step = matchingStep(base32, code, now);
    if (step === null) {
      await this.record(account, 'second_factor.failed', where, { method: 'totp', during: 'enrolment' });
      return null;
    }
    const fresh = this.newRecoveryCodes();
    const totpBox = seal(this.keys.totpSeal, Buffer.from(base32, 'utf8'), TOTP_AAD.enrolled(account.id));
    return this.store.transaction(async (tx) => {
      const factors = await secondFactorsOf(tx, account.id);
      const keepCodes = !factors.authenticatorApp && factors.passkeys > 0;
      await tx.secondFactors.enrol(account.id, totpBox, step, keepCodes ? null : fresh.digests, now);
      await tx.events.append({ type: 'second_factor.enrolled', at: now, accountId: account.id, login: account.login, address: where.address, detail: { method: 'totp', browser: where.browser } });
      return keepCodes ? [] : fresh.codes;
    });
  }

  /** A TOTP code (each time step once) or an unused recovery code. */
  async verify(account: AccountRow, code: string, where: Where): Promise<CodeCheck> {
    const now = this.clock();
    const row = await this.store.secondFactors.get(account.id);
    if (!row && !await hasSecondFactor(this.store, account.id)) throw new PosternError('ACCOUNT_NOT_FOUND', 'the account has no second factor');
    // A passkey-only account has no TOTP key: only its recovery codes are codes.
    const step = row ? matchingStep(open(this.keys.totpSeal, row.totpBox, TOTP_AAD.enrolled(account.id)).toString('utf8'), code, now) : null;
    if (step !== null && await this.store.secondFactors.acceptStep(account.id, step)) {
      await this.record(account, 'second_factor.accepted', where, { method: 'totp' });
      return { ok: true, via: 'totp' };
    }
    const recovery = normalizeRecoveryCode(code);
    if (recovery && await this.store.secondFactors.useRecoveryCode(account.id, this.keys.recoveryDigest(recovery), now)) {
      await this.record(account, 'recovery_code.used', where, { left: await this.store.secondFactors.recoveryCodesLeft(account.id) });
      return { ok: true, via: 'recovery' };
    }
    await this.record(account, 'second_factor.failed', where, { method: step !== null ? 'totp-replayed' : recovery || !row ? 'recovery' : 'totp' });
    return { ok: false };
  }

  private async record(account: AccountRow, type: 'second_factor.failed' | 'second_factor.accepted' | 'recovery_code.used', where: Where, detail: Record<string, unknown>): Promise<void> {
    await this.store.events.append({ type, at: this.clock(), accountId: account.id, login: account.login, address: where.address, detail: { ...detail, browser: where.browser } });
  }
}
