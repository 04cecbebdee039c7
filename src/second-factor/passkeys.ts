/**
 * Passkeys (WebAuthn Level 3) as a second factor, through @simplewebauthn/server: enrolment
 * (registration ceremony), sign-in (authentication ceremony) and removal, each recorded in the
 * account's history.
 *
 * What is checked, and where: the challenge is the page session's own (bound to it, single-use,
 * short-lived: taken by one conditional UPDATE before anything else is looked at, so a captured
 * response cannot be replayed into this or another session); the origin and the RP ID (the page's
 * host name) are the configured ones — a phishing site's origin or an RP ID hash for another name
 * is refused; the credential belongs to the account signing in (a passkey of another account
 * proves nothing about this one); the signature count only moves forward (the library refuses a
 * regression, and the UPDATE that stores the new count refuses one raced by a second instance).
 * User verification is preferred, not required: the password was the first factor, the passkey is
 * the possession factor (a security key without a PIN still counts, as with TOTP).
 * No challenge, public key or response is logged.
 */
import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse,
  type AuthenticationResponseJSON, type PublicKeyCredentialCreationOptionsJSON, type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { decodeClientDataJSON } from '@simplewebauthn/server/helpers';
import type { AccountRow, PasskeyRow, Store, StoreRepos, WebAuthnPurpose } from '../store/index.js';
import { hasSecondFactor } from './admin.js';
import type { Where } from './service.js';

/** Who the browser and authenticator bind a passkey to: the page's origin and host name. */
export interface RelyingParty {
  /** The RP ID: the page's host name (WebAuthn refuses IP addresses). */
  id: string;
  /** The page's origin, e.g. https://account.example.org:8444 */
  origin: string;
  /** What the browser shows when asking to create a passkey. */
  name: string;
}

/** How long a ceremony may take in the browser (the user touches a key, finds a phone). */
export const CHALLENGE_MS = 2 * 60_000;
export const MAX_PASSKEYS = 10;

/** `firstFactor`: the account had no second factor before; the recovery codes given were stored. */
export type Enrolment = { ok: true; passkey: PasskeyRow; firstFactor: boolean } | { ok: false; reason: 'refused' | 'limit' | 'duplicate' };
export type Removal = 'removed' | 'absent' | 'last';

/** Why an assertion was refused, as the history records it. */
type Refusal = 'passkey' | 'passkey-challenge' | 'passkey-unknown' | 'passkey-other-account' | 'passkey-counter';

const BASE64URL = /^[A-Za-z0-9_-]{1,1400}$/;

/**
 * The RP of a page address (portal.publicUrl or its default), or null when WebAuthn cannot work
 * there: not HTTPS, or an IP address rather than a name (WebAuthn §5.1.4.1 needs a valid domain).
 */
export function relyingPartyOf(pageUrl: string | null, name: string): RelyingParty | null {
  if (!pageUrl) return null;
  const url = new URL(pageUrl);
  const host = url.hostname;
  if (url.protocol !== 'https:' || /^[\d.]+$/.test(host) || host.startsWith('[')) return null;
  return { id: host, origin: url.origin, name };
}

export class PasskeyService {
  constructor(private readonly store: Store, readonly rp: RelyingParty | null, private readonly clock: () => number = Date.now) {}

  list(accountId: number): Promise<PasskeyRow[]> {
    return this.store.passkeys.listForAccount(accountId);
  }

  count(accountId: number): Promise<number> {
    return this.store.passkeys.count(accountId);
  }

  /** Options for navigator.credentials.create(); the challenge is stored on the session. */
  async registrationOptions(account: AccountRow, sessionId: number): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const rp = this.required();
    const options = await generateRegistrationOptions({
      rpName: rp.name, rpID: rp.id, userName: account.login, userID: userHandle(account.id), attestationType: 'none',
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' }, timeout: CHALLENGE_MS,
      excludeCredentials: (await this.list(account.id)).map((p) => ({ id: p.credentialId.toString('base64url'), transports: p.transports })),
    });
    await this.store.portalSessions.setChallenge(sessionId, options.challenge, 'register', this.clock() + CHALLENGE_MS);
    return options;
  }

  /**
   * Verifies a registration response (already a recent sign-in, checked by the route) and stores
   * the passkey. When it is the account's first second factor, `recoveryDigests` are stored with
   * it, in its transaction (set-up with a passkey gets the ten recovery codes, as with an app).
   */
  async register(account: AccountRow, sessionId: number, responseJson: string, name: string, where: Where, recoveryDigests: readonly Buffer[] = []): Promise<Enrolment> {
    const rp = this.required();
    const response = parse<RegistrationResponseJSON>(responseJson);
    if (!response || !await this.takeChallenge(sessionId, response.response?.clientDataJSON, 'register')) return { ok: false, reason: 'refused' };
    if (await this.count(account.id) >= MAX_PASSKEYS) return { ok: false, reason: 'limit' };
    let info;
    try {
      const verdict = await verifyRegistrationResponse({
        response, expectedChallenge: () => true /* taken above */, expectedOrigin: rp.origin, expectedRPID: rp.id, requireUserVerification: false,
      });
      if (!verdict.verified) return { ok: false, reason: 'refused' };
      info = verdict.registrationInfo;
    } catch {
      return { ok: false, reason: 'refused' };
    }
    const credentialId = Buffer.from(info.credential.id, 'base64url');
    if (await this.store.passkeys.findByCredentialId(credentialId)) return { ok: false, reason: 'duplicate' };
    const now = this.clock();
    const { id, firstFactor } = await this.store.transaction(async (tx) => {
      const firstFactor = !await hasSecondFactor(tx, account.id);
      if (firstFactor) await tx.secondFactors.setRecoveryCodes(account.id, recoveryDigests);
      const inserted = await tx.passkeys.insert({
        accountId: account.id, credentialId, publicKey: Buffer.from(info.credential.publicKey), counter: info.credential.counter,
        transports: info.credential.transports ?? [], name, at: now,
      });
      await this.record(tx, account, 'passkey.enrolled', where, { name });
      return { id: inserted, firstFactor };
    });
    return { ok: true, passkey: (await this.list(account.id)).find((p) => p.id === id)!, firstFactor };
  }

  /** Options for navigator.credentials.get(), naming the account's passkeys only. */
  async authenticationOptions(account: AccountRow, sessionId: number): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const rp = this.required();
    const options = await generateAuthenticationOptions({
      rpID: rp.id, userVerification: 'preferred', timeout: CHALLENGE_MS,
      allowCredentials: (await this.list(account.id)).map((p) => ({ id: p.credentialId.toString('base64url'), transports: p.transports })),
    });
    await this.store.portalSessions.setChallenge(sessionId, options.challenge, 'authenticate', this.clock() + CHALLENGE_MS);
    return options;
  }

  /** True when the response is a valid assertion of one of the account's passkeys over this session's challenge. */
  async authenticate(account: AccountRow, sessionId: number, responseJson: string, where: Where): Promise<boolean> {
    const refuse = async (method: Refusal): Promise<false> => {
      await this.record(this.store, account, 'second_factor.failed', where, { method });
      return false;
    };
    const rp = this.required();
    const response = parse<AuthenticationResponseJSON>(responseJson);
    if (!response || !await this.takeChallenge(sessionId, response.response?.clientDataJSON, 'authenticate')) return refuse('passkey-challenge');
    if (typeof response.id !== 'string' || !BASE64URL.test(response.id)) return refuse('passkey');
    const passkey = await this.store.passkeys.findByCredentialId(Buffer.from(response.id, 'base64url'));
    if (!passkey) return refuse('passkey-unknown');
    if (passkey.accountId !== account.id) return refuse('passkey-other-account');
    let newCounter: number;
    try {
      const verdict = await verifyAuthenticationResponse({
        response, expectedChallenge: () => true /* taken above */, expectedOrigin: rp.origin, expectedRPID: rp.id, requireUserVerification: false,
        credential: { id: passkey.credentialId.toString('base64url'), publicKey: new Uint8Array(passkey.publicKey), counter: passkey.counter, transports: passkey.transports },
      });
      if (!verdict.verified) return refuse('passkey');
      newCounter = verdict.authenticationInfo.newCounter;
    } catch (err) {
      return refuse(/counter/i.test((err as Error).message) ? 'passkey-counter' : 'passkey');
    }
    if (!await this.store.passkeys.recordUse(passkey.id, newCounter, this.clock())) return refuse('passkey-counter');
    await this.record(this.store, account, 'passkey.used', where, { name: passkey.name });
    return true;
  }

  /**
   * Removes one of the account's passkeys and records it; refused ('last') when it is the
   * account's last second factor. Removing it would turn two-factor authentication off from a
   * session that may not be the holder's (as Apple: removing the last key does not turn 2FA off):
   * the holder adds another passkey or an app first, and a lost device is the recovery codes'
   * and the admin's `user 2fa reset` business.
   */
  async remove(account: AccountRow, id: number, where: Where): Promise<Removal> {
    const passkey = (await this.list(account.id)).find((p) => p.id === id);
    if (!passkey) return 'absent';
    return this.store.transaction(async (tx) => {
      if (!await tx.passkeys.remove(account.id, id)) return (await tx.passkeys.listForAccount(account.id)).some((p) => p.id === id) ? 'last' : 'absent';
      await this.record(tx, account, 'passkey.removed', where, { name: passkey.name });
      return 'removed';
    });
  }

  private required(): RelyingParty {
    if (!this.rp) throw new Error('passkeys need the page at a host name over HTTPS (portal.publicUrl)');
    return this.rp;
  }

  /** Takes the session's challenge if the response's clientDataJSON names it (single-use, unexpired). */
  private async takeChallenge(sessionId: number, clientDataJSON: unknown, purpose: WebAuthnPurpose): Promise<boolean> {
    if (typeof clientDataJSON !== 'string' || !BASE64URL.test(clientDataJSON)) return false;
    let challenge: string;
    try {
      challenge = decodeClientDataJSON(clientDataJSON).challenge;
    } catch {
      return false;
    }
    if (typeof challenge !== 'string' || !BASE64URL.test(challenge)) return false;
    return this.store.portalSessions.takeChallenge(sessionId, challenge, purpose, this.clock());
  }

  /** Appends to the history through `repos`: the store, or the transaction the change is made in. */
  private async record(repos: StoreRepos, account: AccountRow, type: 'passkey.enrolled' | 'passkey.used' | 'passkey.removed' | 'second_factor.failed', where: Where, detail: Record<string, unknown>): Promise<void> {
    await repos.events.append({ type, at: this.clock(), accountId: account.id, login: account.login, address: where.address, detail: { ...detail, browser: where.browser } });
  }
}

/** WebAuthn's user handle: the account id (never the login: it is stored on the authenticator). */
function userHandle(accountId: number): Uint8Array<ArrayBuffer> {
  const handle = new Uint8Array(8);
  new DataView(handle.buffer).setBigUint64(0, BigInt(accountId));
  return handle;
}

function parse<T>(json: string): T | null {
  try {
    const value: unknown = JSON.parse(json);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as T) : null;
  } catch {
    return null;
  }
}
