/**
 * The account page end to end, in a real headless Chromium against a real postern in front of a
 * real Dovecot. The user's whole path, in order (each step builds on the one before):
 *  - sign-in refuses a wrong password and an app-specific password with one sentence;
 *  - the first sign-in must enrol TOTP (key read off the page, code computed from it), and sees
 *    ten recovery codes once;
 *  - Generate shows the password once; imapflow uses it at once through postern to Dovecot;
 *    "last used" shows IMAP and the address; Revoke ends a live IMAP session with `* BYE` within
 *    a second; Revoke all revokes the rest; the history shows it all, newest first;
 *  - a wrong code, a replayed code (the step already accepted) and a used recovery code are refused;
 *  - a change older than the recent-auth window asks for the password again;
 *  - the admin's `user 2fa reset` ends the session and the next sign-in enrols again;
 *  - a primary-password change ends the page session;
 *  - no secret reaches the logs (the harness scans at stop) or the database file.
 * Screenshots of every page at phone and desktop widths go to test-artifacts/portal/.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, PHONE, screenshots } from '../helpers/browser.js';
import { runInProcess } from '../helpers/cli.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapClient, imapConfig, quoted, rawTls } from '../imap/support.js';
import { assertNotInDatabase, baseUrl, enrolTotp, generate, portalConfig, signIn, totpCode } from './support.js';
import { testSql } from '../helpers/test-database.js';

const ALICE = { name: 'alice', password: 'alice-provider-Secret-7' };
const PRIMARY = 'alice-primary-Secret-8';

let dovecot: DovecotServer;
let postern: PosternHarness;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;
const secrets = new Set<string>([PRIMARY, ALICE.password]);
const state = { key: '', enrolCode: '', recovery: [] as string[], phonePassword: '' };

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE] });
  postern = await startPostern({ config: { imap: imapConfig(dovecot), portal: portalConfig() }, secrets: [ALICE.password] });
  await postern.addUser('alice', PRIMARY, { mode: 'password', secret: ALICE.password });
  base = baseUrl(postern);
  browser = await launchBrowser();
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  for (const s of secrets) postern?.rememberSecret(s);
  if (postern) await assertNotInDatabase(postern, [...secrets, state.key].filter(Boolean));
  await postern?.stop();
  await dovecot?.stop();
});

describe('the account page, in a real browser', () => {
  it('sign-in answers a wrong password and an unknown login with the same sentence', async () => {
    await page.goto(base);
    expect(new URL(page.url()).pathname).toBe('/sign-in');
    await screenshots(page, '01-sign-in');
    await signIn(page, base, 'alice', 'wrong-password-for-alice');
    secrets.add('wrong-password-for-alice');
    const wrong = await page.textContent('.error');
    await screenshots(page, '02-sign-in-refused');
    await signIn(page, base, 'nobody-here', 'wrong-password-for-alice');
    expect(await page.textContent('.error')).toBe(wrong);
    expect(new URL(page.url()).pathname).toBe('/sign-in');
  });

  it('the first sign-in must enrol TOTP, confirmed with a code from the key the page shows', async () => {
    await signIn(page, base, 'alice', PRIMARY);
    expect(new URL(page.url()).pathname).toBe('/two-factor/setup');
    // Until enrolled, no page of the account opens.
    await page.goto(`${base}/passwords`);
    expect(new URL(page.url()).pathname).toBe('/two-factor/setup');
    await page.waitForSelector('.qr svg');
    await screenshots(page, '03-enrol');
    await page.fill('#code', '000000');
    await page.click('button[type=submit].primary');
    expect(await page.textContent('.error')).toMatch(/not right/);
    const enrolled = await enrolTotp(page);
    Object.assign(state, { key: enrolled.key, enrolCode: enrolled.code, recovery: enrolled.recoveryCodes });
    for (const c of enrolled.recoveryCodes) secrets.add(c);
    expect(enrolled.recoveryCodes).toHaveLength(10);
    expect(new Set(enrolled.recoveryCodes).size).toBe(10);
    await screenshots(page, '04-recovery-codes');
    await page.click('a.button.primary');
    expect(new URL(page.url()).pathname).toBe('/passwords');
    expect(await page.textContent('main')).toContain('no app-specific passwords yet');
    await screenshots(page, '05-passwords-empty');
  });

  it('on a 390 px phone every tab is in view: the tab bar does not scroll sideways', async () => {
    await page.setViewportSize(PHONE);
    try {
      const bar = await page.$eval('nav.tabs', (el) => ({ scroll: el.scrollWidth, client: el.clientWidth }));
      expect(bar.scroll).toBeLessThanOrEqual(bar.client);
      const rights = await page.$$eval('nav.tabs a', (els) => els.map((e) => e.getBoundingClientRect().right));
      expect(rights.length).toBeGreaterThanOrEqual(3);
      for (const right of rights) expect(right).toBeLessThanOrEqual(PHONE.width);
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it('the session cookie is Secure, HttpOnly, SameSite=Strict; pages carry a strict CSP, HSTS and no-store', async () => {
    const cookies = await context.cookies(base);
    const session = cookies.find((c) => c.name === '__Host-postern_session');
    expect(session).toMatchObject({ secure: true, httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(session!.domain).toBe('127.0.0.1');
    const response = await page.goto(`${base}/passwords`);
    const headers = response!.headers();
    const csp = headers['content-security-policy']!;
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(headers['strict-transport-security']).toMatch(/max-age=31536000/);
    expect(headers['x-frame-options']).toBe('DENY');
    expect(headers['cache-control']).toBe('no-store');
    expect(await page.$$eval('script:not([src])', (els) => els.length)).toBe(0);
  });

  it('a form posted without its CSRF token is refused (403) and changes nothing', async () => {
    const before = (await postern.accounts.listPasswords('alice')).length;
    const response = await context.request.post(`${base}/passwords/new`, { form: { label: 'forged' }, maxRedirects: 0 });
    expect(response.status()).toBe(403);
    const signOut = await context.request.post(`${base}/sign-out`, { form: { _csrf: 'not-the-token' }, maxRedirects: 0 });
    expect(signOut.status()).toBe(403);
    expect((await postern.accounts.listPasswords('alice')).length).toBe(before);
    await page.goto(`${base}/passwords`);
    expect(new URL(page.url()).pathname).toBe('/passwords');
  });

  it('Generate shows the password once; imapflow uses it at once through postern; "last used" updates', async () => {
    await page.goto(`${base}/passwords/new`);
    await screenshots(page, '06-generate');
    const password = await generate(page, base, 'Mail on my phone', ['imap', 'smtp']);
    secrets.add(password);
    state.phonePassword = password;
    expect(password).toMatch(/^[a-z]{4}(-[a-z]{4}){3}$/);
    const shown = await page.textContent('main');
    expect(shown).toContain('cannot be shown again');
    expect(shown).toContain(`localhost:${postern.port('imap.implicitTls')} (SSL/TLS)`);
    await screenshots(page, '07-generated');
    // Shown once: the list never shows it again.
    await page.goto(`${base}/passwords`);
    expect(await page.content()).not.toContain(password);

    const client = imapClient(postern, { user: 'alice', pass: password });
    await client.connect();
    await client.mailboxOpen('INBOX');
    await client.logout();
    await expect.poll(async () => {
      await page.reload();
      return page.textContent('.password .last-used');
    }, { timeout: 5_000 }).toMatch(/IMAP · 127\.0\.0\.1/);
    await screenshots(page, '08-passwords-list');
  });

  it('an app-specific password can never sign in to the page', async () => {
    const other = await browser.newContext({ ignoreHTTPSErrors: true });
    const p = await other.newPage();
    await signIn(p, base, 'alice', state.phonePassword);
    expect(new URL(p.url()).pathname).toBe('/sign-in');
    expect(await p.textContent('.error')).toMatch(/not right/);
    await other.close();
  });

  it('Revoke (confirmed) signs a live IMAP session out with * BYE within a second', async () => {
    const imap = await rawTls(postern);
    imap.write(`a LOGIN alice ${quoted(state.phonePassword)}\r\n`);
    expect(await imap.readLine()).toMatch(/^a OK/);
    imap.write('b SELECT INBOX\r\n');
    await imap.readUntil((l) => l.startsWith('b OK'));
    imap.write('c IDLE\r\n');
    expect(await imap.readLine()).toMatch(/^\+ /);

    await page.goto(`${base}/passwords`);
    await page.click('.password a.button.danger');
    expect(new URL(page.url()).pathname).toMatch(/^\/passwords\/[0-9a-f]{8}\/revoke$/);
    expect(await page.textContent('main')).toContain('Mail on my phone');
    await screenshots(page, '09-revoke-confirm');
    const bye = imap.readUntil((l) => l.startsWith('* BYE'), 5_000);
    await page.click('button[type=submit].danger');
    const revokedAt = Date.now();
    const lines = await bye;
    expect(Date.now() - revokedAt).toBeLessThan(1_000);
    expect(lines.at(-1)).toMatch(/^\* BYE .*revoked/);
    expect(await page.textContent('.notice')).toContain('revoked');
    expect(await page.textContent('.password .status')).toBe('revoked');
    // Revoked by the account holder, not by an administrator: its own reason, in the store and the history.
    expect((await postern.accounts.listPasswords('alice')).find((p) => p.label === 'Mail on my phone')?.revokedReason).toBe('user');
    await page.goto(`${base}/history`);
    expect(await page.textContent('.event[data-type="password.revoked"] .details')).toContain('revoked by you');
  });

  it('Revoke all (confirmed) revokes every active password', async () => {
    for (const label of ['Laptop', 'Tablet']) secrets.add(await generate(page, base, label));
    await page.goto(`${base}/passwords`);
    await page.click('a.button.danger[href="/passwords/revoke-all"]');
    await screenshots(page, '10-revoke-all-confirm');
    await page.click('button[type=submit].danger');
    expect(await page.textContent('.notice')).toContain('2 passwords were revoked');
    expect(await postern.accounts.activePasswordCount(await postern.accounts.getAccount('alice'))).toBe(0);
    // The holder revoked them, as with a single revoke: reason `user`, "revoked by you" in the history.
    const revoked = (await postern.accounts.listPasswords('alice')).filter((p) => p.label === 'Laptop' || p.label === 'Tablet');
    expect(revoked.map((p) => p.revokedReason)).toEqual(['user', 'user']);
    await page.goto(`${base}/history`);
    const latest = await page.$$eval('.event[data-type="password.revoked"] .details', (els) => els.slice(0, 2).map((e) => e.textContent ?? ''));
    expect(latest.every((d) => d.includes('revoked by you'))).toBe(true);
  });

  it('the history shows sign-ins, failures, second-factor events and passwords, newest first, with address and browser', async () => {
    await page.goto(`${base}/history`);
    await screenshots(page, '11-history');
    const seen: Array<{ type: string | null; from: string }> = [];
    const perPage: number[] = [];
    for (let pages = 0; ; pages++) {
      perPage.push(await page.$$eval('.event', (els) => els.length));
      seen.push(...await page.$$eval('.event', (els) => els.map((e) => ({ type: e.getAttribute('data-type'), from: e.querySelector('.from')?.textContent ?? '' }))));
      const older = await page.$('a[rel=next]');
      if (!older) break;
      expect(pages).toBeLessThan(10);
      await older.click();
      await page.waitForLoadState('load');
    }
    const types = seen.map((e) => e.type);
    expect(types[0]).toBe('password.revoked');
    expect(types.at(-1)).toBe('account.created');
    for (const type of ['login.failed', 'second_factor.failed', 'second_factor.enrolled', 'portal.signed_in', 'password.created', 'password.used', 'password.revoked']) {
      expect(types).toContain(type);
    }
    expect(perPage.reduce((a, b) => a + b, 0)).toBe(seen.length);
    expect(perPage.every((n) => n <= 20)).toBe(true);
    for (const type of ['login.failed', 'portal.signed_in', 'second_factor.enrolled']) {
      expect(seen.find((e) => e.type === type)!.from).toMatch(/^127\.0\.0\.1 · Mozilla\/5\.0 /);
    }
    expect(seen.find((e) => e.type === 'password.used')!.from).toBe('127.0.0.1');
  });

  it('at the next sign-in: a wrong code, a replayed code and a reused recovery code are refused', async () => {
    await page.goto(`${base}/passwords`);
    await page.click('header button');
    expect(await page.textContent('.notice')).toContain('signed out');
    await page.goto(`${base}/passwords`);
    expect(new URL(page.url()).pathname).toBe('/sign-in');

    await signIn(page, base, 'alice', PRIMARY);
    expect(new URL(page.url()).pathname).toBe('/two-factor');
    await screenshots(page, '12-challenge');
    const submit = async (code: string) => {
      await page.fill('#code', code);
      await page.click('button[type=submit].primary');
      await page.waitForLoadState('load');
      return new URL(page.url()).pathname;
    };
    expect(await submit('123456')).toBe('/two-factor');
    expect(await page.textContent('.error')).toMatch(/used already/);
    // The enrolment code's time step has been accepted once: the same code (still current) is refused.
    expect(await submit(state.enrolCode)).toBe('/two-factor');
    // The next step's code (allowed for clock drift) is accepted once, and refused the second time.
    const next = totpCode(state.key, 1);
    expect(await submit(next)).toBe('/passwords');
    await page.click('header button');
    await signIn(page, base, 'alice', PRIMARY);
    expect(await submit(next)).toBe('/two-factor');
    // A recovery code works once.
    expect(await submit(state.recovery[0]!)).toBe('/passwords');
    await page.click('header button');
    await signIn(page, base, 'alice', PRIMARY);
    expect(await submit(state.recovery[0]!)).toBe('/two-factor');
    expect(await submit(state.recovery[1]!.toUpperCase().replace('-', ' '))).toBe('/passwords');
  });

  it('five wrong codes end the session: further guesses need the password again', async () => {
    await page.click('header button');
    await signIn(page, base, 'alice', PRIMARY);
    for (let i = 0; i < 5; i++) {
      await page.fill('#code', '000000');
      await page.click('button[type=submit].primary');
      await page.waitForLoadState('load');
    }
    expect(new URL(page.url()).pathname).toBe('/two-factor');
    expect(await page.textContent('.error')).toMatch(/sign in again/);
    await page.goto(`${base}/two-factor`);
    expect(new URL(page.url()).pathname).toBe('/sign-in');
    await signIn(page, base, 'alice', PRIMARY);
    await page.fill('#code', state.recovery[2]!);
    await page.click('button[type=submit].primary');
    expect(new URL(page.url()).pathname).toBe('/passwords');
  });

  it('the history is paged, twenty to a page, newer and older', async () => {
    await page.goto(`${base}/history`);
    expect(await page.$$eval('.event', (els) => els.length)).toBe(20);
    expect(await page.$('a[href="/history?page=0"]')).toBeNull();
    await page.click('a[rel=next]');
    expect(new URL(page.url()).search).toBe('?page=1');
    expect(await page.$$eval('.event', (els) => els.length)).toBeGreaterThan(0);
    expect(await page.$('a[href="/history?page=0"]')).not.toBeNull();
    // A page number that is not one is page 0.
    await page.goto(`${base}/history?page=-3`);
    expect(await page.$$eval('.event', (els) => els.length)).toBe(20);
  });

  it('after the recent-auth window, Generate asks for the password again, then goes on', async () => {
    // Time travel for the window: the session's password was typed 11 minutes ago.
    await testSql(postern.app.store, 'UPDATE portal_sessions SET password_at = password_at - 660000 WHERE ended_at IS NULL');
    await page.goto(`${base}/passwords/new`);
    expect(await page.textContent('h1')).toBe('Confirm it is you');
    await screenshots(page, '13-confirm-password');
    await page.fill('#password', 'wrong-password-for-alice');
    await page.click('button[type=submit].primary');
    expect(await page.textContent('.error')).toMatch(/not right/);
    await page.fill('#password', PRIMARY);
    await page.click('button[type=submit].primary');
    expect(new URL(page.url()).pathname).toBe('/passwords/new');
    secrets.add(await generate(page, base, 'After confirming'));
  });

  it('an unknown page is a 404 page', async () => {
    const response = await page.goto(`${base}/no-such-page`);
    expect(response!.status()).toBe(404);
    await screenshots(page, '14-not-found');
  });

  it("the admin's `user 2fa reset` ends the page session; `user show` says whether 2FA is on; the next sign-in enrols again", async () => {
    const configPath = path.join(postern.dir, 'cli.yaml');
    writeFileSync(configPath, JSON.stringify({ database: postern.database, keyFile: postern.keyFile, tls: postern.config.tls }));
    const show = async () => (await runInProcess(['-c', configPath, 'user', 'show', 'alice'])).stdout;
    expect(await show()).toMatch(/two-factor:\s+on: authenticator app \(7 recovery codes left\)/);
    const reset = await runInProcess(['-c', configPath, 'user', '2fa', 'reset', 'alice']);
    expect(reset).toMatchObject({ code: 0 });
    expect(reset.stdout).toContain('two-factor authentication of alice reset');
    expect(await show()).toMatch(/two-factor:\s+off/);
    const json = JSON.parse((await runInProcess(['-c', configPath, 'user', 'show', 'alice', '--json'])).stdout);
    expect(json.twoFactor).toBe(false);
    await page.goto(`${base}/passwords`);
    expect(new URL(page.url()).pathname).toBe('/sign-in');
    await signIn(page, base, 'alice', PRIMARY);
    expect(new URL(page.url()).pathname).toBe('/two-factor/setup');
    const again = await enrolTotp(page);
    for (const c of again.recoveryCodes) secrets.add(c);
    secrets.add(again.key);
  });

  it('a primary-password change ends the page session', async () => {
    await postern.accounts.setPrimaryPassword('alice', 'alice-primary-Secret-9', ALICE.password);
    secrets.add('alice-primary-Secret-9');
    await page.goto(`${base}/passwords`);
    expect(new URL(page.url()).pathname).toBe('/sign-in');
  });
});
