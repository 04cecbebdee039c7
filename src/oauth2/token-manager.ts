/**
 * Hands a login an access token for its account, refreshing it first when it is about to expire.
 *
 * Single flight: concurrent logins of one account share one refresh — within a process through a
 * map of running refreshes, across processes (workers, instances) through a lease in the database
 * (migration 10): the process that takes it refreshes, the others wait for the set it seals. That
 * matters beyond load: with refresh-token rotation (RFC 9700 §4.14.2), a second refresh with the
 * same, now spent, refresh token looks like token theft to the provider, which may then revoke the
 * whole grant.
 *
 * Re-sealing: the token set is sealed under the account's data key, which every app password's
 * envelope wraps (src/oauth2/token-set.ts). The login that refreshes holds that key (unsealed with
 * its own app password), so it re-seals the new set once and every other password opens it. The
 * write is a compare-and-swap against the box it read, so a set written meanwhile by another
 * process or `postern user reauth` is never overwritten by an older grant's tokens. It is written
 * at once (a rotated refresh token that is not stored is a lost grant), on the proxy's writer
 * connection, retried off the event loop while another process holds the lock.
 *
 * Nothing here logs or throws a token; the box is read fresh from the database at each login,
 * so a reauth by the CLI is in force at the next login without a restart.
 */
import type { BearerCredential } from '../auth/types.js';
import { PosternError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/index.js';
import type { OAuth2Client } from './client.js';
import { isFresh, openTokenSet, sealTokenSet, type TokenSet } from './token-set.js';

export interface GrantAccount {
  id: number;
  login: string;
  upstreamUser: string;
  oauth2Provider: string | null;
}

export interface TokenManagerDeps {
  /** Reads (the login path's connection). */
  store: Store;
  /** Writes: the proxy's writer connection (near-zero busy timeout; this module retries). */
  writer: Store;
  clients: ReadonlyMap<string, OAuth2Client>;
  /** Refresh when less than this is left of the access token. */
  refreshMarginMs: number;
  log: Logger;
  clock?: () => number;
  /** How long a re-seal keeps retrying a locked database. */
  writeDeadlineMs?: number;
}

export interface TokenManagerStats {
  refreshes: number;
}

const DEFAULT_WRITE_DEADLINE_MS = 10_000;
/** How long a refresh may hold the lease: longer than a token request may take; a dead holder's lapses. */
export const REFRESH_LEASE_MS = 30_000;
/** How often a process that found the lease taken looks for the holder's new token set. */
const LEASE_POLL_MS = 100;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class TokenManager {
  private readonly inFlight = new Map<number, Promise<TokenSet>>();
  private readonly clock: () => number;
  private refreshCount = 0;

  constructor(private readonly deps: TokenManagerDeps) {
    this.clock = deps.clock ?? Date.now;
  }

  /**
   * The account's access token, refreshed if it is within the margin of its expiry. Throws
   * OAUTH2_GRANT_REJECTED when the provider refused the grant, OAUTH2_FAILED when it could not
   * be asked, ENVELOPE_UNWRAP_FAILED when the stored set does not open with this key.
   */
  async bearer(account: GrantAccount, dek: Buffer): Promise<BearerCredential> {
    const tokens = await this.current(account, dek);
    return { kind: 'bearer', username: account.upstreamUser, token: tokens.accessToken!, expiresAt: tokens.expiresAt };
  }

  stats(): TokenManagerStats {
    return { refreshes: this.refreshCount };
  }

  private async current(account: GrantAccount, dek: Buffer): Promise<TokenSet> {
    const running = this.inFlight.get(account.id);
    if (running) return running;
    const box = await this.deps.store.accounts.secretBox(account.id);
    if (!box) throw new PosternError('ENVELOPE_UNWRAP_FAILED', 'account has no sealed OAuth2 tokens');
    const tokens = openTokenSet(dek, account.id, box);
    if (isFresh(tokens, this.clock(), this.deps.refreshMarginMs)) return tokens;
    const refresh = this.refresh(account, dek, box, tokens).finally(() => this.inFlight.delete(account.id));
    this.inFlight.set(account.id, refresh);
    return refresh;
  }

  private async refresh(account: GrantAccount, dek: Buffer, box: Buffer, tokens: TokenSet): Promise<TokenSet> {
    const client = account.oauth2Provider === null ? undefined : this.deps.clients.get(account.oauth2Provider);
    if (!client) {
      throw new PosternError('OAUTH2_FAILED', `the account's OAuth2 provider "${account.oauth2Provider ?? ''}" is not configured (config oauth2.providers)`);
    }
    const leased = await this.leaseOrWait(account, dek, box);
    if ('tokens' in leased) return leased.tokens;
    try {
      // Read again under the lease: another process may have refreshed between our read and our lease.
      const current = (await this.deps.store.accounts.secretBox(account.id)) ?? box;
      if (!current.equals(box)) {
        const theirs = openTokenSet(dek, account.id, current);
        if (isFresh(theirs, this.clock(), this.deps.refreshMarginMs)) return theirs;
        [box, tokens] = [current, theirs];
      }
      this.refreshCount++;
      const fresh = await client.refresh(tokens.refreshToken);
      const rotated = fresh.refreshToken !== tokens.refreshToken;
      const stored = await this.reseal(account, box, sealTokenSet(dek, account.id, fresh));
      this.deps.log.info({ event: 'oauth2.refreshed', user: account.login, provider: account.oauth2Provider, rotated, stored },
        stored ? 'refreshed the OAuth2 access token and sealed it' : 'refreshed the OAuth2 access token; the stored grant changed meanwhile and was kept');
      return fresh;
    } finally {
      await this.deps.writer.accounts.releaseRefreshLease(account.id, leased.until).catch(() => undefined);
    }
  }

  /**
   * Takes the account's refresh lease, or — while another process holds it — waits for the token
   * set that process seals (the box changes) and returns it. A holder that died leaves a lease that
   * lapses after REFRESH_LEASE_MS; then this process takes it.
   */
  private async leaseOrWait(account: GrantAccount, dek: Buffer, box: Buffer): Promise<{ until: number } | { tokens: TokenSet }> {
    const giveUpAt = this.clock() + REFRESH_LEASE_MS + 5_000;
    for (;;) {
      const now = this.clock();
      const until = now + REFRESH_LEASE_MS;
      if (await this.deps.writer.accounts.takeRefreshLease(account.id, now, until)) return { until };
      if (now > giveUpAt) throw new PosternError('OAUTH2_FAILED', "another process has been refreshing this account's OAuth2 token for too long");
      await sleep(LEASE_POLL_MS);
      const current = await this.deps.store.accounts.secretBox(account.id);
      if (current && !current.equals(box)) {
        const tokens = openTokenSet(dek, account.id, current);
        if (isFresh(tokens, this.clock(), this.deps.refreshMarginMs)) return { tokens };
      }
    }
  }

  /** Compare-and-swap with retries while the database is locked; false when another write won. */
  private async reseal(account: GrantAccount, expected: Buffer, replacement: Buffer): Promise<boolean> {
    const deadline = this.clock() + (this.deps.writeDeadlineMs ?? DEFAULT_WRITE_DEADLINE_MS);
    for (let delay = 5; ; delay = Math.min(delay * 2, 500)) {
      try {
        return await this.deps.writer.accounts.swapSecretBox(account.id, expected, replacement);
      } catch (err) {
        // A locked SQLite file or a PostgreSQL hiccup is STORE_UNAVAILABLE (src/store/): worth a retry.
        if ((err as { code?: string }).code !== 'STORE_UNAVAILABLE' || this.clock() + delay > deadline) {
          this.deps.log.error({ event: 'oauth2.reseal_failed', user: account.login, code: (err as { code?: string }).code },
            'could not store the refreshed OAuth2 tokens; if the provider rotated the refresh token, the account must be authorised again');
          return false;
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }
}
