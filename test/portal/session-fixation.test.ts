/**
 * Session fixation (OWASP) on the account page: a session cookie issued at the password step —
 * one that someone learned (over a shoulder, from a shared machine) or planted in the victim's
 * browser while knowing only the password — must not become a signed-in session when the victim
 * passes the second factor. Pins: the cookie changes when the second step is passed (TOTP
 * enrolment, and a TOTP code at a later sign-in), the old value then opens nothing, and the
 * victim's own browser, holding the new value, is signed in.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapConfig } from '../imap/support.js';
import { assertNotInDatabase, baseUrl, enrolTotp, portalConfig, signIn, totpCode } from './support.js';

const PROVIDER = 'fay-provider-Secret-1';
const PRIMARY = 'fay-primary-Secret-2';
const COOKIE = '__Host-postern_session';

let dovecot: DovecotServer;
let postern: PosternHarness;
let browser: Browser;
let victim: BrowserContext;
let page: Page;
let base: string;
const secrets = new Set([PROVIDER, PRIMARY]);

beforeAll(async () => {
  dovecot = await startDovecot({ users: [{ name: 'fay', password: PROVIDER }] });
  postern = await startPostern({ config: { imap: imapConfig(dovecot), portal: portalConfig() }, secrets: [PROVIDER] });
  await postern.addUser('fay', PRIMARY, { mode: 'password', secret: PROVIDER });
  base = baseUrl(postern);
  browser = await launchBrowser();
  victim = await browser.newContext({ ignoreHTTPSErrors: true });
  page = await victim.newPage();
}, 120_000);

afterAll(async () => {
  await victim?.close();
  await browser?.close();
  for (const s of secrets) postern?.rememberSecret(s);
  if (postern) await assertNotInDatabase(postern, [...secrets]);
  await postern?.stop();
  await dovecot?.stop();
});

async function sessionCookie(context: BrowserContext): Promise<string> {
  return (await context.cookies(base)).find((c) => c.name === COOKIE)!.value;
}

/** Where a browser holding only `token` as its session cookie lands when it opens the passwords. */
async function landingWith(token: string): Promise<string> {
  const attacker = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    await attacker.addCookies([{ name: COOKIE, value: token, url: `${base}/`, secure: true, httpOnly: true, sameSite: 'Strict' }]);
    const p = await attacker.newPage();
    await p.goto(`${base}/passwords`);
    return new URL(p.url()).pathname;
  } finally {
    await attacker.close();
  }
}

describe('session fixation', () => {
  it('a session cookie known before the second factor is dead once the victim passes it (enrolment, then a code)', async () => {
    await signIn(page, base, 'fay', PRIMARY);
    const fixed = await sessionCookie(victim);
    // Known before the second step, it opens only the second step.
    expect(await landingWith(fixed)).toBe('/two-factor/setup');
    const { key, recoveryCodes } = await enrolTotp(page);
    for (const c of [...recoveryCodes, key]) secrets.add(c);
    expect(await landingWith(fixed)).toBe('/sign-in');
    const after = await sessionCookie(victim);
    expect(after).not.toBe(fixed);
    expect(await landingWith(after)).toBe('/passwords');

    await page.goto(`${base}/passwords`);
    await page.click('header button');
    await signIn(page, base, 'fay', PRIMARY);
    const fixedAgain = await sessionCookie(victim);
    expect(await landingWith(fixedAgain)).toBe('/two-factor');
    await page.fill('#code', totpCode(key, 1));
    await page.click('button[type=submit].primary');
    expect(new URL(page.url()).pathname).toBe('/passwords');
    expect(await landingWith(fixedAgain)).toBe('/sign-in');
    expect(await landingWith(await sessionCookie(victim))).toBe('/passwords');
  });
});
