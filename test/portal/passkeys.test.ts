/**
 * Passkeys on the account page, end to end: a real Chromium whose DevTools WebAuthn domain
 * provides a virtual platform authenticator (CTAP2, internal, resident keys, user verification),
 * a real postern at https://localhost:<port> (WebAuthn refuses IP addresses; the RP ID is the
 * page's host name), a real Dovecot behind it. Pins, in order:
 *  - a passkey is added (named) only after TOTP, with a recent sign-in; the list shows it;
 *  - without JavaScript the second step offers the code and says a passkey needs JavaScript;
 *  - sign-out, then sign-in with the passkey as the second step; a password can then be created;
 *  - replay: an assertion captured from one sign-in is refused in a later session, and again in
 *    the same session after a new challenge was issued (challenges are single-use, per session);
 *  - a passkey of another account, over this session's own challenge, is refused;
 *  - a signature count that went back (a cloned authenticator) is refused;
 *  - removal (recent sign-in, confirmed) takes the passkey off the challenge page;
 *  - `user show` counts passkeys; `user 2fa reset` removes them.
 * Every refusal is in the account's history with its reason. Screenshots at phone and desktop widths.
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
import { imapConfig } from '../imap/support.js';
import { assertNotInDatabase, enrolTotp, generate, portalConfig, signIn } from './support.js';
import { testSql } from '../helpers/test-database.js';

const ALICE = { name: 'alice', password: 'alice-provider-Secret-7', primary: 'alice-primary-Secret-8' };
const BOB = { name: 'bob', password: 'bob-provider-Secret-5', primary: 'bob-primary-Secret-6' };

let dovecot: DovecotServer;
let postern: PosternHarness;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let cdp: CDPSession;
let authenticatorId: string;
let base: string;
const secrets = new Set<string>([ALICE.password, ALICE.primary, BOB.password, BOB.primary]);
const state = { aliceTotp: '', capturedAssertion: '' };

beforeAll(async () => {
  dovecot = await startDovecot({ users: [{ name: ALICE.name, password: ALICE.password }, { name: BOB.name, password: BOB.password }] });
  const port = await freePort();
  base = `https://localhost:${port}`;
  postern = await startPostern({
    config: { imap: imapConfig(dovecot), portal: portalConfig({ listener: { host: '127.0.0.1', port }, publicUrl: `${base}/` }) },
    secrets: [ALICE.password, BOB.password],
  });
  await postern.addUser('alice', ALICE.primary, { mode: 'password', secret: ALICE.password });
  await postern.addUser('bob', BOB.primary, { mode: 'password', secret: BOB.password });
  browser = await launchBrowser();
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  ({ authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  }));
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  for (const s of secrets) postern?.rememberSecret(s);
  if (postern) await assertNotInDatabase(postern, [...secrets].filter(Boolean));
  await postern?.stop();
  await dovecot?.stop();
});

const pathname = () => new URL(page.url()).pathname;

/** Signs out; a session still at the second step (no sign-out button yet) is simply dropped. */
async function signOut(): Promise<void> {
  await page.goto(`${base}/passwords`);
  if (await page.$('header button')) await Promise.all([page.waitForLoadState('load'), page.click('header button')]);
  else await context.clearCookies();
}

async function addPasskey(name: string): Promise<void> {
  await page.goto(`${base}/passkeys/new`);
  await page.fill('#name', name);
  await Promise.all([page.waitForURL(/\/passkeys\?done=added$/), page.click('#passkey-form button[type=submit]')]);
}

async function usePasskey(): Promise<void> {
  await page.waitForSelector('#passkey-form button[type=submit]', { state: 'visible' });
  // The script runs the ceremony, then submits the form: one navigation, to the next page or the refusal.
  await Promise.all([page.waitForNavigation(), page.click('#passkey-form button[type=submit]')]);
}

async function events(login: string) {
  const account = await postern.accounts.getAccount(login);
  return postern.app.store.events.listForAccount(account.id);
}

/** Posts a form of the current page's session (the page's own CSRF token), as the page would. */
async function postForm(action: string, form: Record<string, string>): Promise<{ status: number; text: string }> {
  const csrf = await page.getAttribute('input[name=_csrf]', 'value');
  const response = await context.request.post(`${base}${action}`, { form: { _csrf: csrf!, ...form }, maxRedirects: 0 });
  return { status: response.status(), text: await response.text() };
}

describe('passkeys on the account page, with a virtual authenticator', () => {
  it('a passkey is added, named, after TOTP and with a recent sign-in', async () => {
    await signIn(page, base, 'alice', ALICE.primary);
    const totp = await enrolTotp(page);
    state.aliceTotp = totp.key;
    for (const c of [...totp.recoveryCodes, totp.key]) secrets.add(c);
    await page.goto(`${base}/passkeys`);
    expect(await page.textContent('main')).toContain('no passkeys yet');
    await screenshots(page, '20-passkeys-empty');
    await page.goto(`${base}/passkeys/new`);
    await page.waitForSelector('#passkey-form', { state: 'visible' });
    expect(await page.isVisible('.needs-js')).toBe(false);
    await screenshots(page, '21-passkey-add');
    await page.fill('#name', 'My laptop');
    await Promise.all([page.waitForURL(/\/passkeys\?done=added$/), page.click('#passkey-form button[type=submit]')]);
    expect(await page.textContent('.notice')).toContain('passkey was added');
    expect(await page.$$eval('.passkey h2', (els) => els.map((e) => e.textContent))).toEqual(['My laptop']);
    await screenshots(page, '22-passkeys-list');
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    expect(credentials).toHaveLength(1);
    expect(credentials[0]!.rpId).toBe('localhost');
    const stored = await postern.app.store.passkeys.listForAccount((await postern.accounts.getAccount('alice')).id);
    // The domain gives the credential id in base64.
    expect(stored.map((p) => [p.name, p.credentialId.toString('base64')])).toEqual([['My laptop', credentials[0]!.credentialId]]);
    expect((await events('alice')).map((e) => e.type)).toContain('passkey.enrolled');
  });

  it('without JavaScript, the second step offers the code and says a passkey needs JavaScript', async () => {
    const plain = await browser.newContext({ ignoreHTTPSErrors: true, javaScriptEnabled: false });
    const p = await plain.newPage();
    await signIn(p, base, 'alice', ALICE.primary);
    expect(new URL(p.url()).pathname).toBe('/two-factor');
    expect(await p.isVisible('#code')).toBe(true);
    expect(await p.isVisible('#passkey-form')).toBe(false);
    expect(await p.textContent('.needs-js')).toMatch(/passkey needs JavaScript/);
    await screenshots(p, '23-challenge-no-javascript');
    await plain.close();
  });

  it('after sign-out, the passkey is the second step; a password can then be created', async () => {
    await signOut();
    await signIn(page, base, 'alice', ALICE.primary);
    expect(pathname()).toBe('/two-factor');
    await page.waitForSelector('#passkey-form', { state: 'visible' });
    await screenshots(page, '24-challenge-with-passkey');
    const posted = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/two-factor/passkey');
    await usePasskey();
    state.capturedAssertion = new URLSearchParams((await posted).postData() ?? '').get('response') ?? '';
    expect(state.capturedAssertion).toContain('authenticatorData');
    expect(pathname()).toBe('/passwords');
    secrets.add(await generate(page, base, 'Signed in with a passkey'));
    const history = await events('alice');
    expect(history.find((e) => e.type === 'portal.signed_in')?.detail?.via).toBe('passkey');
    expect(history.find((e) => e.type === 'passkey.used')?.detail?.name).toBe('My laptop');
    await page.goto(`${base}/history`);
    expect(await page.textContent('main')).toContain('Passkey used to sign in');
  });

  it('replay: an assertion captured earlier is refused in a new session, and after a new challenge in the same one', async () => {
    await signOut();
    await signIn(page, base, 'alice', ALICE.primary);
    expect(pathname()).toBe('/two-factor');
    const fresh = await postForm('/two-factor/passkey', { response: state.capturedAssertion });
    expect(fresh.status).toBe(401);
    expect(fresh.text).toContain('could not be verified');
    // A challenge issued to this session now: the old assertion does not answer it either.
    const options = await context.request.post(`${base}/two-factor/passkey/options`, { headers: { 'x-csrf-token': (await page.getAttribute('input[name=_csrf]', 'value'))! } });
    expect(options.status()).toBe(200);
    expect((await postForm('/two-factor/passkey', { response: state.capturedAssertion })).status).toBe(401);
    const refusals = (await events('alice')).filter((e) => e.type === 'second_factor.failed').map((e) => e.detail?.method);
    expect(refusals.slice(0, 2)).toEqual(['passkey-challenge', 'passkey-challenge']);
    await page.goto(`${base}/passwords`);
    expect(pathname()).toBe('/two-factor');
  });

  it("a passkey of another account, over this session's own challenge, is refused", async () => {
    await signOut();
    await signIn(page, base, 'bob', BOB.primary);
    const totp = await enrolTotp(page);
    for (const c of [...totp.recoveryCodes, totp.key]) secrets.add(c);
    await addPasskey("Bob's key");
    const bobCredential = (await postern.app.store.passkeys.listForAccount((await postern.accounts.getAccount('bob')).id))[0]!.credentialId.toString('base64url');
    await signOut();
    await signIn(page, base, 'alice', ALICE.primary);
    await page.waitForSelector('#passkey-form', { state: 'visible' });
    // What a holder of Bob's passkey (and Alice's password) would do: answer Alice's challenge with Bob's credential.
    // (A string: the test is compiled without the DOM library.)
    const answerWithBobsKey = `(async () => {
      const form = document.getElementById('passkey-form');
      const options = await (await fetch('/two-factor/passkey/options', { method: 'POST', headers: { 'x-csrf-token': form.elements._csrf.value } })).json();
      const response = await SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: { ...options, allowCredentials: [{ id: ${JSON.stringify(bobCredential)}, type: 'public-key' }] } });
      form.elements.response.value = JSON.stringify(response);
      form.submit();
    })()`;
    await Promise.all([page.waitForNavigation(), page.evaluate(answerWithBobsKey)]);
    expect(pathname()).toBe('/two-factor/passkey');
    expect(await page.textContent('.error')).toContain('could not be verified');
    expect((await events('alice')).find((e) => e.type === 'second_factor.failed')?.detail?.method).toBe('passkey-other-account');
  });

  it('a signature count that went back (a cloned authenticator) is refused', async () => {
    const alice = await postern.accounts.getAccount('alice');
    const [passkey] = await postern.app.store.passkeys.listForAccount(alice.id);
    await testSql(postern.app.store, 'UPDATE passkeys SET counter = 1000000 WHERE id = ?', passkey!.id);
    await page.goto(`${base}/two-factor`);
    await usePasskey();
    expect(pathname()).toBe('/two-factor/passkey');
    expect(await page.textContent('.error')).toContain('could not be verified');
    expect((await events('alice')).find((e) => e.type === 'second_factor.failed')?.detail?.method).toBe('passkey-counter');
    await testSql(postern.app.store, 'UPDATE passkeys SET counter = 0 WHERE id = ?', passkey!.id);
  });

  it('removing a passkey (confirmed, recent sign-in) takes it off the second step', async () => {
    await page.goto(`${base}/two-factor`);
    await usePasskey();
    expect(pathname()).toBe('/passwords');
    // An old sign-in: the password is asked again first.
    await testSql(postern.app.store, 'UPDATE portal_sessions SET password_at = password_at - 660000 WHERE ended_at IS NULL');
    await page.goto(`${base}/passkeys`);
    await page.click('.passkey a.button.danger');
    expect(await page.textContent('h1')).toBe('Confirm it is you');
    await page.fill('#password', ALICE.primary);
    await page.click('button[type=submit].primary');
    expect(pathname()).toMatch(/^\/passkeys\/\d+\/remove$/);
    expect(await page.textContent('main')).toContain('My laptop');
    await screenshots(page, '25-passkey-remove-confirm');
    await page.click('button[type=submit].danger');
    expect(await page.textContent('.notice')).toContain('passkey was removed');
    expect(await page.$('.passkey')).toBeNull();
    expect((await events('alice')).find((e) => e.type.startsWith('passkey.'))?.type).toBe('passkey.removed');
    await signOut();
    await signIn(page, base, 'alice', ALICE.primary);
    expect(pathname()).toBe('/two-factor');
    expect(await page.$('#passkey-form')).toBeNull();
  });

  it('`user show` counts passkeys; `user 2fa reset` removes them', async () => {
    const configPath = path.join(postern.dir, 'cli.yaml');
    writeFileSync(configPath, JSON.stringify({ database: postern.database, keyFile: postern.keyFile, tls: postern.config.tls }));
    const show = async () => (await runInProcess(['-c', configPath, 'user', 'show', 'bob'])).stdout;
    expect(await show()).toMatch(/passkeys:\s+1$/m);
    expect(await runInProcess(['-c', configPath, 'user', '2fa', 'reset', 'bob'])).toMatchObject({ code: 0 });
    expect(await show()).toMatch(/passkeys:\s+0$/m);
    expect(await postern.app.store.passkeys.count((await postern.accounts.getAccount('bob')).id)).toBe(0);
  });
});

