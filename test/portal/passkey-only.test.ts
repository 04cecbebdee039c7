/**
 * A passkey as the account's only second factor, end to end: Chromium with the DevTools virtual
 * authenticator, postern at https://localhost:<port> (the RP ID is the page's host name), Dovecot
 * behind it. Pins, in order:
 *  - set-up offers the app or a passkey; without JavaScript the page says a passkey needs it and
 *    the app form is there;
 *  - set-up with a passkey alone turns 2FA on and shows the ten recovery codes; `user show` says so;
 *  - after sign-out the passkey is the second step (the code field asks for a recovery code);
 *    a password can then be generated and logs in over IMAP through postern;
 *  - the last passkey cannot be removed (409, still listed, nothing in the history);
 *  - a recovery code signs in a passkey-only account, once;
 *  - an authenticator app added later keeps the recovery codes; the passkey can then go;
 *  - `user 2fa reset` turns both off.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, screenshots } from '../helpers/browser.js';
import { runInProcess } from '../helpers/cli.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { freePort } from '../helpers/free-port.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapClient, imapConfig } from '../imap/support.js';
import { assertNotInDatabase, generate, portalConfig, signIn, totpCode } from './support.js';

const CAROL = { name: 'carol', password: 'carol-provider-Secret-17', primary: 'carol-primary-Secret-18' };

let dovecot: DovecotServer;
let postern: PosternHarness;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let cdp: CDPSession;
let base: string;
const secrets = new Set<string>([CAROL.password, CAROL.primary]);
const state = { recoveryCodes: [] as string[] };

beforeAll(async () => {
  dovecot = await startDovecot({ users: [{ name: CAROL.name, password: CAROL.password }] });
  const port = await freePort();
  base = `https://localhost:${port}`;
  postern = await startPostern({
    config: { imap: imapConfig(dovecot), portal: portalConfig({ listener: { host: '127.0.0.1', port }, publicUrl: `${base}/` }) },
    secrets: [CAROL.password],
  });
  await postern.addUser('carol', CAROL.primary, { mode: 'password', secret: CAROL.password });
  browser = await launchBrowser();
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  for (const s of secrets) postern?.rememberSecret(s);
  if (postern) await assertNotInDatabase(postern, [...secrets]);
  await postern?.stop();
  await dovecot?.stop();
});

const pathname = () => new URL(page.url()).pathname;

async function signOut(): Promise<void> {
  await page.goto(`${base}/passwords`);
  if (await page.$('header button')) await Promise.all([page.waitForLoadState('load'), page.click('header button')]);
  else await context.clearCookies();
}

async function usePasskey(): Promise<void> {
  await page.waitForSelector('#passkey-form button[type=submit]', { state: 'visible' });
  await Promise.all([page.waitForNavigation(), page.click('#passkey-form button[type=submit]')]);
}

async function account() {
  return postern.accounts.getAccount('carol');
}

async function history(): Promise<string[]> {
  return (await postern.app.store.events.listForAccount((await account()).id)).map((e) => e.type);
}

async function cli(...args: string[]): Promise<string> {
  const configPath = path.join(postern.dir, 'cli.yaml');
  writeFileSync(configPath, JSON.stringify({ database: postern.database, keyFile: postern.keyFile, tls: postern.config.tls }));
  return (await runInProcess(['-c', configPath, ...args])).stdout;
}

describe('a passkey as the only second factor', () => {
  it('without JavaScript, set-up offers the app and says a passkey needs JavaScript', async () => {
    const plain = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
    const p = await plain.newPage();
    await signIn(p, base, 'carol', CAROL.primary);
    expect(new URL(p.url()).pathname).toBe('/two-factor/setup');
    expect(await p.isVisible('#totp-form')).toBe(true);
    expect(await p.isVisible('#passkey-form')).toBe(false);
    expect(await p.textContent('#passkey-needs-js')).toMatch(/passkey needs JavaScript.*authenticator app/);
    await screenshots(p, '40-setup-no-javascript');
    await plain.close();
  });

  it('set-up with a passkey alone turns two-factor on and shows the ten recovery codes', async () => {
    await signIn(page, base, 'carol', CAROL.primary);
    expect(pathname()).toBe('/two-factor/setup');
    await page.waitForSelector('#passkey-form', { state: 'visible' });
    expect(await page.isVisible('#passkey-needs-js')).toBe(false);
    await screenshots(page, '41-setup-choice');
    await page.fill('#name', 'My phone');
    await usePasskey();
    await page.waitForSelector('#recovery-codes');
    state.recoveryCodes = await page.$$eval('#recovery-codes code', (els) => els.map((e) => e.textContent ?? ''));
    for (const c of state.recoveryCodes) secrets.add(c);
    expect(state.recoveryCodes).toHaveLength(10);
    const carol = await account();
    expect(await postern.app.store.secondFactors.get(carol.id)).toBeUndefined();
    expect(await postern.app.store.passkeys.count(carol.id)).toBe(1);
    expect(await history()).toEqual(expect.arrayContaining(['passkey.enrolled', 'portal.signed_in']));
    expect(await cli('user', 'show', 'carol')).toMatch(/two-factor:\s+on: 1 passkey \(10 recovery codes left\)$/m);
    // Signed in: Generate is open.
    secrets.add(await generate(page, base, 'Right after set-up'));
  });

  it('after sign-out the passkey is the second step; a new password logs in over IMAP', async () => {
    await signOut();
    await signIn(page, base, 'carol', CAROL.primary);
    expect(pathname()).toBe('/two-factor');
    expect(await page.textContent('label[for=code]')).toBe('Recovery code');
    await screenshots(page, '42-challenge-passkey-only');
    await usePasskey();
    expect(pathname()).toBe('/passwords');
    const password = await generate(page, base, 'Mail on my phone', ['imap']);
    secrets.add(password);
    const client = imapClient(postern, { user: 'carol', pass: password });
    await client.connect();
    expect((await client.mailboxOpen('INBOX')).path).toBe('INBOX');
    await client.logout();
  });

  it('the last passkey cannot be removed: two-factor authentication stays on', async () => {
    await page.goto(`${base}/passkeys`);
    expect(await page.textContent('#app-status')).toMatch(/no authenticator app/);
    await page.click('.passkey a.button.danger');
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && /\/passkeys\/\d+\/remove$/.test(new URL(r.url()).pathname)),
      page.click('button[type=submit].danger'),
    ]);
    expect(response.status()).toBe(409);
    expect(await page.textContent('.error')).toMatch(/only second factor/);
    expect(await page.$$eval('.passkey h2', (els) => els.map((e) => e.textContent))).toEqual(['My phone']);
    await screenshots(page, '43-last-passkey-refused');
    expect(await postern.app.store.passkeys.count((await account()).id)).toBe(1);
    expect(await history()).not.toContain('passkey.removed');
  });

  it('a recovery code signs in a passkey-only account, once', async () => {
    const code = state.recoveryCodes[0]!;
    for (const attempt of ['accepted', 'used already'] as const) {
      await signOut();
      await signIn(page, base, 'carol', CAROL.primary);
      expect(pathname()).toBe('/two-factor');
      await page.fill('#code', code);
      await Promise.all([page.waitForLoadState('load'), page.click('form[action="/two-factor"] button[type=submit]')]);
      if (attempt === 'accepted') expect(pathname()).toBe('/passwords');
      else expect(await page.textContent('.error')).toMatch(/not right/);
    }
    expect(await history()).toContain('recovery_code.used');
    expect(await postern.app.store.secondFactors.recoveryCodesLeft((await account()).id)).toBe(9);
    await usePasskey();
    expect(pathname()).toBe('/passwords');
  });

  it('an authenticator app added later keeps the recovery codes; the passkey can then be removed', async () => {
    await page.goto(`${base}/passkeys`);
    await page.click('#app-status + a');
    expect(pathname()).toBe('/two-factor/app');
    expect(await page.$('#passkey-form')).toBeNull();
    await screenshots(page, '44-add-app-later');
    const key = (await page.textContent('#totp-key'))!.replace(/\s+/g, '');
    secrets.add(key);
    await page.fill('#code', totpCode(key));
    await Promise.all([page.waitForURL(/\/passkeys\?done=app$/), page.click('#totp-form button[type=submit]')]);
    expect(await page.textContent('#app-status')).toMatch(/on/);
    expect(await postern.app.store.secondFactors.recoveryCodesLeft((await account()).id)).toBe(9);
    await page.click('.passkey a.button.danger');
    await page.click('button[type=submit].danger');
    expect(await page.textContent('.notice')).toContain('passkey was removed');
    expect(await cli('user', 'show', 'carol')).toMatch(/two-factor:\s+on: authenticator app \(9 recovery codes left\)$/m);
    await signOut();
    await signIn(page, base, 'carol', CAROL.primary);
    await page.fill('#code', totpCode(key, 1));
    await Promise.all([page.waitForLoadState('load'), page.click('form[action="/two-factor"] button[type=submit]')]);
    expect(pathname()).toBe('/passwords');
  });

  it('`user 2fa reset` turns it off; the next sign-in sets it up again', async () => {
    expect(await cli('user', '2fa', 'reset', 'carol')).toMatch(/reset/);
    expect(await cli('user', 'show', 'carol')).toMatch(/two-factor:\s+off$/m);
    await signIn(page, base, 'carol', CAROL.primary);
    expect(pathname()).toBe('/two-factor/setup');
  });
});
