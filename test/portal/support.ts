/**
 * The account page under test: a postern in front of a real Dovecot with the portal listener on,
 * a real Chromium context that trusts nothing but ignores postern's self-signed certificate, and
 * the steps every e2e test takes (sign in, enrol TOTP from the key the page shows, read the new
 * app-specific password off the page).
 */
import { Secret, TOTP } from 'otpauth';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { expect } from 'vitest';
import { launchBrowser } from '../helpers/browser.js';
import type { PosternHarness } from '../helpers/postern.js';
import { databaseBytes } from '../helpers/test-database.js';

export function portalConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { listener: { host: '127.0.0.1', port: 0 }, ...extra };
}

export function baseUrl(postern: PosternHarness): string {
  return `https://127.0.0.1:${postern.port('portal')}`;
}

/** The code an authenticator app would show for this key, `offsetSteps` periods from now. */
export function totpCode(base32: string, offsetSteps = 0): string {
  const totp = new TOTP({ secret: Secret.fromBase32(base32), algorithm: 'SHA1', digits: 6, period: 30 });
  return totp.generate({ timestamp: Date.now() + offsetSteps * 30_000 });
}

export async function signIn(page: Page, base: string, login: string, password: string): Promise<void> {
  await page.goto(`${base}/sign-in`);
  await page.fill('#login', login);
  await page.fill('#password', password);
  await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit].primary')]);
}

/** Reads the key off the enrolment page (as a user would type it) and confirms it with a code. */
export async function enrolTotp(page: Page): Promise<{ key: string; code: string; recoveryCodes: string[] }> {
  expect(new URL(page.url()).pathname).toBe('/two-factor/setup');
  const key = (await page.textContent('#totp-key'))!.replace(/\s+/g, '');
  const code = totpCode(key);
  await page.fill('#code', code);
  await page.click('button[type=submit].primary');
  await page.waitForSelector('#recovery-codes');
  const recoveryCodes = await page.$$eval('#recovery-codes code', (els) => els.map((e) => e.textContent ?? ''));
  return { key, code, recoveryCodes };
}

/** Fills Generate and returns the password the page shows once. */
export async function generate(page: Page, base: string, label: string, scopes: string[] = []): Promise<string> {
  await page.goto(`${base}/passwords/new`);
  await page.fill('#label', label);
  for (const scope of scopes) await page.check(`input[name=scopes][value=${scope}]`);
  await page.click('button[type=submit].primary');
  await page.waitForSelector('#new-password');
  const groups = await page.$$eval('#new-password span', (els) => els.map((e) => e.textContent ?? ''));
  return groups.join('-');
}

/** No secret, in any of its usual spellings, in what the database holds (either engine: databaseBytes). */
export async function assertNotInDatabase(postern: PosternHarness, secrets: Iterable<string>): Promise<void> {
  const files = await databaseBytes(postern);
  for (const secret of secrets) {
    for (const form of new Set([secret, secret.replace(/[-\s]/g, ''), secret.toUpperCase()])) {
      for (const bytes of files) {
        expect(bytes.includes(Buffer.from(form, 'utf8')), `the database holds a secret (${form.length} chars)`).toBe(false);
      }
    }
  }
}

/** The host name the "Connect your account" tests give the page (resolved to loopback by the browser). */
export const CONNECT_PAGE_HOST = 'account.postern.test';

export interface ConnectBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** The last callback URL the provider sent the browser to (not the page's own same-origin hop); '' before one. */
  lastCallback: () => string;
  close: () => Promise<void>;
}

/**
 * A browser for the Connect flow: CONNECT_PAGE_HOST resolves to 127.0.0.1, and the test provider
 * speaks plain http, so Chromium's "not secure" interstitial for an https form redirected to http
 * (which real, https providers never meet) is turned off. Records the callbacks at `callbackBase`
 * so that a test can replay one.
 */
export async function openConnectBrowser(callbackBase: string): Promise<ConnectBrowser> {
  const browser = await launchBrowser([`--host-resolver-rules=MAP ${CONNECT_PAGE_HOST} 127.0.0.1`, '--disable-features=InsecureFormSubmissionInterstitial,MixedFormsInterstitial']);
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  let last = '';
  page.on('request', (r) => {
    if (r.url().startsWith(`${callbackBase}/connect/callback?`) && !r.url().includes('hop=')) last = r.url();
  });
  return {
    browser, context, page,
    lastCallback: () => last,
    close: async () => {
      await context.close();
      await browser.close();
    },
  };
}
