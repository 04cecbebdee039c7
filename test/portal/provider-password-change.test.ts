/**
 * "I changed my password at my provider", end to end: Chromium, postern, a real Dovecot whose
 * password for the user is changed. Pins:
 *  - once the provider refuses the stored password (the account is flagged REJECTED by a real
 *    IMAP login through postern), signing in with the new password works: postern checks it with
 *    Dovecot, records a primary-password change, revokes every app-specific password and
 *    re-seals, so a newly generated password reaches Dovecot with the new password;
 *  - a password the provider does not accept is refused as any wrong password;
 *  - while the account is not REJECTED, a password the provider would accept but postern does not
 *    know changes nothing (the provider is asked only for flagged accounts).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, screenshots } from '../helpers/browser.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapClient, imapConfig, sleep } from '../imap/support.js';
import { assertNotInDatabase, baseUrl, enrolTotp, generate, portalConfig, signIn, totpCode } from './support.js';

const OLD = 'bob-provider-Old-Secret-1';
const NEW = 'bob-provider-New-Secret-2';
const OTHER = 'bob-provider-Other-Secret-3';

let dovecot: DovecotServer;
let postern: PosternHarness;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;
let key = '';
const secrets = new Set([OLD, NEW, OTHER]);

/** The provider-side change: Dovecot re-reads its passwd file when it changes. */
async function changeProviderPassword(password: string): Promise<void> {
  writeFileSync(path.join(dovecot.dir, 'passwd'), `bob:{PLAIN}${password}::::::\n`);
  await sleep(1_100);
}

async function imapWorks(password: string): Promise<boolean> {
  const client = imapClient(postern, { user: 'bob', pass: password });
  try {
    await client.connect();
    await client.logout();
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dovecot = await startDovecot({ users: [{ name: 'bob', password: OLD }] });
  postern = await startPostern({ config: { imap: imapConfig(dovecot), portal: portalConfig() }, secrets: [...secrets] });
  // The common hosted case: the primary password is the provider password.
  await postern.addUser('bob', OLD, { mode: 'password', secret: OLD });
  base = baseUrl(postern);
  browser = await launchBrowser();
  context = await browser.newContext({ ignoreHTTPSErrors: true });
  page = await context.newPage();
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  for (const s of secrets) postern?.rememberSecret(s);
  if (postern) await assertNotInDatabase(postern, [...secrets, key].filter(Boolean));
  await postern?.stop();
  await dovecot?.stop();
});

describe('a password changed at the provider', () => {
  it('while the account is not REJECTED, a password only the provider knows does not sign in', async () => {
    await signIn(page, base, 'bob', OLD);
    const enrolled = await enrolTotp(page);
    key = enrolled.key;
    for (const c of enrolled.recoveryCodes) secrets.add(c);
    const password = await generate(page, base, 'Phone');
    secrets.add(password);
    expect(await imapWorks(password)).toBe(true);
    await page.click('header button');
    // The password changes at the provider; no app has logged in since, so nothing is flagged yet.
    await changeProviderPassword(NEW);
    await signIn(page, base, 'bob', NEW);
    expect(new URL(page.url()).pathname).toBe('/sign-in');
    expect((await postern.accounts.getAccount('bob')).upstreamStatus).not.toBe('rejected');
    expect(await postern.accounts.activePasswordCount(await postern.accounts.getAccount('bob'))).toBe(1);
  });

  it('once the provider refused the stored password, the new one signs in, revokes every app password and re-seals', async () => {
    const [phone] = await postern.accounts.listPasswords('bob');
    // An app's login through postern meets the provider's refusal: the account is flagged.
    const stale = [...secrets].find((s) => /^[a-z]{4}(-[a-z]{4}){3}$/.test(s))!;
    expect(await imapWorks(stale)).toBe(false);
    await expect.poll(async () => (await postern.accounts.getAccount('bob')).upstreamStatus, { timeout: 5_000 }).toBe('rejected');

    await signIn(page, base, 'bob', OTHER);
    expect(new URL(page.url()).pathname).toBe('/sign-in');
    expect((await postern.accounts.listPasswords('bob')).find((p) => p.publicId === phone!.publicId)!.revokedAt).toBeNull();

    await signIn(page, base, 'bob', NEW);
    expect(new URL(page.url()).pathname).toBe('/two-factor');
    await page.fill('#code', totpCode(key, 1));
    await page.click('button[type=submit].primary');
    expect(new URL(page.url()).pathname).toBe('/passwords');
    expect(await page.textContent('.password .status')).toBe('revoked');
    const account = await postern.accounts.getAccount('bob');
    expect(account.upstreamStatus).toBe('ok');
    expect((await postern.accounts.listPasswords('bob'))[0]!.revokedReason).toBe('primary-password-change');
    expect(postern.logs.events('portal.primary_changed')).toEqual([expect.objectContaining({ user: 'bob', revoked: 1 })]);

    // Re-sealed under the new password: a new app password reaches Dovecot with NEW.
    const fresh = await generate(page, base, 'Phone again');
    secrets.add(fresh);
    expect(await imapWorks(fresh)).toBe(true);
    await page.goto(`${base}/history`);
    expect(await page.$$eval('.event', (els) => els.map((e) => e.getAttribute('data-type')))).toContain('primary.changed');
    await screenshots(page, '15-history-after-provider-change');
  });
});
