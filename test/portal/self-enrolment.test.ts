/**
 * Self-enrolment (`portal.enrol.domains`), end to end: Chromium, postern, a real Dovecot that
 * knows carol and dave (Dovecot drops the domain part: `%Ln`). Pins:
 *  - no enumeration: a wrong password for an unknown login in the domain, a login outside the
 *    domains that the provider would accept, and a wrong password for an existing account all get
 *    the same page, the same status and at least `minRefusalMs` (the provider's refusal of the
 *    first takes about a second, the others none); none creates an account;
 *  - an unknown login in the domain whose password the provider accepts becomes an account in
 *    mode `password` at first sign-in, must enrol TOTP before any other page, and a generated
 *    app-specific password then reaches Dovecot through postern (the typed password was sealed as
 *    the upstream secret); the history starts with account.created;
 *  - the failure the throttle counted for that first sign-in (the login was no account yet) is
 *    cleared once the provider accepted it, as an accepted sign-in's is;
 *  - no password reaches the logs (the harness scans at stop) or the database file.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, screenshots } from '../helpers/browser.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { testSql } from '../helpers/test-database.js';
import { imapClient, imapConfig } from '../imap/support.js';
import { assertNotInDatabase, baseUrl, enrolTotp, generate, portalConfig, signIn } from './support.js';

const CAROL = { name: 'carol', password: 'carol-provider-Secret-4' };
const DAVE = { name: 'dave', password: 'dave-provider-Secret-5' };
const ERIN_PRIMARY = 'erin-primary-Secret-6';
const WRONG = 'wrong-password-for-carol';
/** Above the test Dovecot's failure delay (about a second), as the example config tells admins to set it. */
const MIN_REFUSAL_MS = 2_000;

let dovecot: DovecotServer;
let postern: PosternHarness;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;
const secrets = new Set([CAROL.password, DAVE.password, ERIN_PRIMARY, WRONG]);

beforeAll(async () => {
  dovecot = await startDovecot({ users: [CAROL, DAVE, { name: 'erin', password: 'erin-provider-Secret-7' }] });
  postern = await startPostern({
    config: { imap: imapConfig(dovecot), portal: portalConfig({ enrol: { domains: ['example.org'], minRefusalMs: MIN_REFUSAL_MS } }) },
    secrets: [...secrets],
  });
  await postern.addUser('erin@example.org', ERIN_PRIMARY, { mode: 'password', secret: 'erin-provider-Secret-7' });
  secrets.add('erin-provider-Secret-7');
  base = baseUrl(postern);
  browser = await launchBrowser();
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  for (const s of secrets) postern?.rememberSecret(s);
  if (postern) await assertNotInDatabase(postern, [...secrets]);
  await postern?.stop();
  await dovecot?.stop();
});

async function refusal(login: string, password: string): Promise<{ text: string | null; status: number; ms: number }> {
  await page.goto(`${base}/sign-in`);
  await page.fill('#login', login);
  await page.fill('#password', password);
  const started = Date.now();
  const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/sign-in'), page.click('button[type=submit].primary')]);
  const ms = Date.now() - started;
  await page.waitForLoadState('load');
  return { text: await page.textContent('.error'), status: response.status(), ms };
}

describe('self-enrolment on the account page', () => {
  it('an unknown login, a login outside the domains and a wrong password get the same page and delay; no account is made', async () => {
    const answers = [
      await refusal('carol@example.org', WRONG),
      await refusal('dave@other.example', DAVE.password),
      await refusal('erin@example.org', WRONG),
    ];
    await screenshots(page, '30-self-enrol-refused');
    for (const a of answers) {
      expect(a.status).toBe(401);
      expect(a.text).toBe(answers[0]!.text);
      expect(a.ms).toBeGreaterThanOrEqual(MIN_REFUSAL_MS - 50);
    }
    expect(answers[0]!.text).toMatch(/not right/);
    expect((await postern.accounts.listAccounts()).map((a) => a.login)).toEqual(['erin@example.org']);
  });

  it('a login in the domain that the provider accepts becomes an account, must enrol 2FA first, and its passwords reach the provider', async () => {
    await signIn(page, base, 'Carol@Example.org', CAROL.password);
    expect(new URL(page.url()).pathname).toBe('/two-factor/setup');
    const account = await postern.accounts.getAccount('carol@example.org');
    expect(account).toMatchObject({ upstreamMode: 'password', upstreamUser: 'carol@example.org', upstreamStatus: 'ok' });
    await page.goto(`${base}/passwords`);
    expect(new URL(page.url()).pathname).toBe('/two-factor/setup');
    await screenshots(page, '31-self-enrolled-setup');
    const enrolled = await enrolTotp(page);
    for (const c of [...enrolled.recoveryCodes, enrolled.key]) secrets.add(c);
    const password = await generate(page, base, 'Mail on my phone', ['imap']);
    secrets.add(password);
    const client = imapClient(postern, { user: 'carol@example.org', pass: password });
    await client.connect();
    await client.mailboxOpen('INBOX');
    await client.logout();
    const types = (await postern.app.store.events.listForAccount(account.id)).map((e) => e.type);
    expect(types.at(-1)).toBe('account.created');
    expect(types).toContain('second_factor.enrolled');
    expect(postern.logs.lines.some((l) => l.includes('"event":"portal.self_enrolled"'))).toBe(true);
  });

  it('the throttle failure counted for the first sign-in is cleared once the login has enrolled itself', async () => {
    await context.clearCookies();
    // The shared counts (src/auth/shared-throttle.ts): the address's, and this login's from it
    // (not dave@other.example's, refused in the first test).
    const failures = async () => Object.fromEntries((await testSql<{ key: string; n: number | string }>(
      postern.app.store,
      'SELECT key, SUM(failures) AS n FROM throttle_counts WHERE key IN (?, ?) OR key LIKE ? GROUP BY key',
      'a:127.0.0.1', 'p:127.0.0.1\ndave@example.org', 'w:127.0.0.1\ndave@example.org\n%',
    )).map((r) => [r.key.split('\n')[0], Number(r.n)]));
    await postern.app.writes.flushed();
    const before = (await failures())['a:127.0.0.1'] ?? 0;
    await signIn(page, base, 'dave@example.org', DAVE.password);
    expect(new URL(page.url()).pathname).toBe('/two-factor/setup');
    await postern.app.writes.flushed();
    // Counted as a wrong password first (the login was no account), then taken back.
    expect(await failures()).toEqual({ 'a:127.0.0.1': before });
  });
});
