/** Row shapes the store hands out. Buffers are sealed boxes or digests, never plaintext. */

export const PROTOCOLS = ['imap', 'pop3', 'smtp', 'caldav', 'carddav'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export type UpstreamMode = 'password' | 'master' | 'oauth2';
export type UpstreamStatus = 'unknown' | 'ok' | 'rejected';

/** `admin`: one password revoked from the CLI; `user`: one revoked by the account holder on the account page. */
export type RevokeReason = 'admin' | 'user' | 'revoke-all' | 'primary-password-change' | 'upstream-mode-change' | 'expiry' | 'account-removed';

export interface AccountRow {
  id: number;
  login: string;
  upstreamMode: UpstreamMode;
  upstreamUser: string;
  primaryHash: string;
  primarySalt: Buffer | null;
  dekPrimary: Buffer | null;
  /** Mode `password`: the upstream password; mode `oauth2`: the token set (src/oauth2/token-set.ts). Sealed under the data key. */
  secretBox: Buffer | null;
  /** Mode `oauth2` only: the configured provider (config oauth2.providers) the grant belongs to. */
  oauth2Provider: string | null;
  upstreamStatus: UpstreamStatus;
  upstreamStatusAt: number | null;
  createdAt: number;
  primaryChangedAt: number;
}

export interface AppPasswordRow {
  id: number;
  publicId: string;
  accountId: number;
  label: string;
  scopes: Protocol[];
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  revokedReason: RevokeReason | null;
  lastUsedAt: number | null;
  lastUsedProtocol: string | null;
  lastUsedAddress: string | null;
  dekSalt: Buffer | null;
  dekBox: Buffer | null;
}

export type EventType =
  | 'account.created'
  | 'account.removed'
  | 'account.upstream_changed'
  | 'account.upstream_rejected'
  | 'password.created'
  | 'password.used'
  | 'password.revoked'
  | 'primary.changed'
  | 'primary.refused'
  | 'login.failed'
  | 'portal.signed_in'
  | 'portal.signed_out'
  | 'second_factor.enrolled'
  | 'second_factor.accepted'
  | 'second_factor.failed'
  | 'second_factor.reset'
  | 'recovery_code.used'
  | 'passkey.enrolled'
  | 'passkey.used'
  | 'passkey.removed';

export interface EventRow {
  id: number;
  at: number;
  type: EventType;
  accountId: number | null;
  login: string | null;
  passwordId: string | null;
  protocol: string | null;
  address: string | null;
  detail: Record<string, unknown> | null;
}

export function isActive(p: Pick<AppPasswordRow, 'revokedAt' | 'expiresAt'>, now: number): boolean {
  return p.revokedAt === null && (p.expiresAt === null || p.expiresAt > now);
}

export type PortalStage = 'password' | 'complete';

export interface PortalSessionRow {
  id: number;
  accountId: number;
  stage: PortalStage;
  createdAt: number;
  seenAt: number;
  passwordAt: number;
  primaryChangedAt: number;
  codeFailures: number;
  pendingTotpBox: Buffer | null;
  /** The primary password typed last, sealed under the cookie (src/portal/session-boxes.ts); NULL outside the recent-auth window. */
  recentAuthBox: Buffer | null;
  address: string | null;
  browser: string | null;
  endedAt: number | null;
}

export interface SecondFactorRow {
  accountId: number;
  totpBox: Buffer;
  lastStep: number | null;
  enrolledAt: number;
}

export interface PasskeyRow {
  id: number;
  accountId: number;
  credentialId: Buffer;
  publicKey: Buffer;
  counter: number;
  transports: string[];
  name: string;
  createdAt: number;
  lastUsedAt: number | null;
}

export type WebAuthnPurpose = 'register' | 'authenticate';
