/**
 * "Connect your account" on the account page, end to end: Chromium, postern's page, a real
 * authorization server (oidc-provider, with a sign-in-and-consent form the browser fills in) and
 * a real Dovecot that takes only its access tokens. Postern's page has a name of its own
 * (account.postern.test, mapped to 127.0.0.1 inside Chromium), so the provider's redirect back is
 * cross-site as in real life and the SameSite=Strict session cookie is not sent with it. Pins:
 *  - the grant revoked at the provider → the account is flagged by a real IMAP login (temporary
 *    failure) → the page says so with a "Reconnect" button → the user signs in and allows access
 *    at the provider in the same browser → back on the page, connected; the app password that
 *    failed logs in to Dovecot again, unchanged;
 *  - a replayed callback (the same code and state again) is refused, and so is a forged state;
 *  - a callback without a page session is refused;
 *  - a provider without an authorization endpoint (device flow only): the page says to ask the
 *    administrator for `postern user reauth` instead of running the device flow itself;
 *  - no token in the logs or the database files.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { screenshots } from '../helpers/browser.js';
import type { DovecotServer } from '../helpers/dovecot.js';
import { freePort } from '../helpers/free-port.js';
import { connectLineClient } from '../helpers/line-client.js';
import { startAuthorizationServer, type AuthorizationServer } from '../oauth2/authorization-server.js';
import { authoriseByDevice, LOGIN, PRIMARY, startOAuthDovecot, startOAuthPostern, UPSTREAM_USER } from '../oauth2/support.js';
import { assertNotInDatabase, CONNECT_PAGE_HOST as PAGE_HOST, enrolTotp, generate, openConnectBrowser, portalConfig, signIn } from './support.js';

const SHORT_TTL_S = 3;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let as: AuthorizationServer;
let dovecot: DovecotServer;
let postern: Awaited<ReturnType<typeof startOAuthPostern>>;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;
let appPassword = '';
let lastCallback: () => string = () => '';
const secrets = new Set<string>([PRIMARY]);

function imap(pass: string): ImapFlow {
  const client = new ImapFlow({
    host: '127.0.0.1', port: postern.port('imap.implicitTls'), secure: true, servername: 'localhost',
    auth: { user: LOGIN, pass }, tls: { ca: postern.caPem, servername: 'localhost' }, logger: false,
    connectionTimeout: 10_000, greetingTimeout: 10_000,
  });
  client.on('error', () => undefined);
  return client;
}

async function imapLogin(pass: string): Promise<void> {
  const client = imap(pass);
  await client.connect();
  expect((await client.mailboxOpen('INBOX')).path).toBe('INBOX');
  await client.logout();
}

async function rawImapLogin(pass: string): Promise<string> {
  const c = await connectLineClient({ host: '127.0.0.1', port: postern.port('imap.implicitTls'), tls: { ca: postern.caPem, servername: 'localhost' }, timeoutMs: 15_000 });
  try {
    await c.readLine();
    c.write(`a LOGIN "${LOGIN}" "${pass}"\r\n`);
    return (await c.readUntil((l) => l.startsWith('a '))).at(-1)!;
  } finally {
    c.close();
  }
}

const account = () => postern.accounts.getAccount(LOGIN);
const connectRefusals = (reason: string) => postern.logs.lines.filter((l) => l.includes('"event":"portal.connect_refused"') && l.includes(`"reason":"${reason}"`)).length;

/** Clicks the page's connect button and waits for the provider's sign-in form. */
async function startConnecting(): Promise<void> {
  await page.goto(`${base}/passwords`);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(`${as.issuer}/interaction/`)), page.click('#connect')]);
  await page.waitForSelector('#allow');
}

beforeAll(async () => {
  const port = await freePort();
  base = `https://${PAGE_HOST}:${port}`;
  // The redirect URI an admin registers at the provider: the page's public address + /connect/callback.
  as = await startAuthorizationServer({ redirectUris: [`${base}/connect/callback`] });
  dovecot = await startOAuthDovecot(as);
  const provider = { preset: 'generic', clientId: as.clientId, scopes: ['openid', 'offline_access', 'mail'], allowInsecureHttp: true };
  postern = await startOAuthPostern(as, dovecot, {
    refreshMarginMs: 1000,
    providers: {
      test: { ...provider, issuer: as.issuer },
      // The same server described by its token and device endpoints only: no authorization endpoint.
      'device-only': { ...provider, tokenEndpoint: `${as.issuer}/token`, deviceAuthorizationEndpoint: `${as.issuer}/device/auth` },
    },
  },
    { portal: portalConfig({ listener: { host: '127.0.0.1', port }, publicUrl: `${base}/` }) });
  ({ browser, context, page, lastCallback } = await openConnectBrowser(base));
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  for (const token of as?.issuedTokens() ?? []) {
    secrets.add(token);
    postern?.rememberSecret(token);
  }
  for (const s of secrets) postern?.rememberSecret(s);
  if (postern) await assertNotInDatabase(postern, [...secrets]);
  expect(as?.issuedTokens().length ?? 0).toBeGreaterThan(0);
  await postern?.stop();
  await dovecot?.stop();
  await as?.stop();
});

describe.sequential('Connect your account', () => {
  it('an oauth2 account signed in on the page shows its connection as connected', async () => {
    as.accessTtlSeconds = SHORT_TTL_S;
    const added = await authoriseByDevice(postern, as, ['user', 'add', LOGIN, '--oauth', 'test', '--upstream-user', UPSTREAM_USER, '--password-stdin'], `${PRIMARY}\n`);
    expect(added.code, added.stderr).toBe(0);
    await signIn(page, base, LOGIN, PRIMARY);
    const { key, recoveryCodes } = await enrolTotp(page);
    for (const s of [key, ...recoveryCodes]) secrets.add(s);
    appPassword = await generate(page, base, 'Mail');
    secrets.add(appPassword);
    await imapLogin(appPassword);
    await page.goto(`${base}/passwords`);
    expect(await page.getAttribute('#connection', 'class')).toContain('connection-connected');
    expect(await page.textContent('#connection-status')).toContain('Connected');
  }, 90_000);

  it('a grant revoked at the provider: flagged, the page says reconnect, the user reconnects in the same browser, and the app password works again', async () => {
    await as.revokeGrants();
    await sleep(SHORT_TTL_S * 1000 + 300); // the token Dovecot knew is gone; the refresh meets invalid_grant
    expect(await rawImapLogin(appPassword)).toMatch(/^a NO \[UNAVAILABLE\] /);
    // The flag goes through the write queue after the answer: waited for, not read at once.
    await expect.poll(async () => (await account()).upstreamStatus, { timeout: 5_000 }).toBe('rejected');
    const boxBefore = (await account()).secretBox!;

    await page.goto(`${base}/passwords`);
    expect(await page.getAttribute('#connection', 'class')).toContain('connection-rejected');
    expect(await page.textContent('#connection-status')).toMatch(/no longer accepts/);
    expect(await page.textContent('#connect')).toBe('Reconnect your account');
    await screenshots(page, 'connect-rejected');

    as.accessTtlSeconds = 3600;
    await startConnecting();
    const authorization = new URL(page.url());
    expect(authorization.origin).toBe(as.issuer);
    await page.fill('#login', UPSTREAM_USER);
    await Promise.all([page.waitForURL(`${base}/passwords?done=connected`), page.click('#allow')]);
    // The provider sent the browser to the page's own callback, with PKCE.
    expect(lastCallback()).toMatch(new RegExp(`^${base.replace(/\./g, '\\.')}/connect/callback\\?code=`));
    expect(await page.textContent('.notice')).toContain('connected again');
    expect(await page.getAttribute('#connection', 'class')).toContain('connection-connected');
    await screenshots(page, 'connect-done');
    expect((await account()).secretBox!.equals(boxBefore)).toBe(false);
    expect((await account()).upstreamStatus).toBe('unknown');
    expect(postern.logs.lines.some((l) => l.includes('"event":"portal.connected"') && l.includes('"provider":"test"'))).toBe(true);

    await imapLogin(appPassword);
    await expect.poll(async () => (await account()).upstreamStatus, { timeout: 5_000 }).toBe('ok');
    await page.goto(`${base}/history`);
    expect(await page.textContent('main')).toContain('Provider settings changed');
  }, 90_000);

  it('replayed callback: the same code and state a second time are refused and change nothing', async () => {
    expect(lastCallback()).not.toBe('');
    const boxBefore = (await account()).secretBox!;
    const refusedBefore = connectRefusals('state_mismatch');
    const response = await page.goto(lastCallback());
    expect(response?.status()).toBe(400);
    expect(await page.textContent('main')).toMatch(/does not belong to a connection started from this page/);
    expect((await account()).secretBox!.equals(boxBefore)).toBe(true);
    expect(connectRefusals('state_mismatch')).toBe(refusedBefore + 1);
  }, 30_000);

  it('forged state: a callback with a state this session did not start is refused, and the request it forged against is void', async () => {
    await startConnecting();
    const atProvider = page.url();
    const boxBefore = (await account()).secretBox!;
    const forged = await page.goto(`${base}/connect/callback?code=attacker-code&state=attacker-state`);
    expect(forged?.status()).toBe(400);
    expect(await page.textContent('main')).toMatch(/does not belong to a connection started from this page/);
    // …and the genuine answer that comes after a forged one finds its request gone (single use).
    await page.goto(atProvider);
    await page.waitForSelector('#allow');
    await page.fill('#login', UPSTREAM_USER);
    // The provider's redirect lands without the Strict cookie; the same-site hop (hop=1) carries it.
    const [genuine] = await Promise.all([page.waitForResponse((r) => r.url().startsWith(`${base}/connect/callback?code=`) && r.url().includes('hop=1')), page.click('#allow')]);
    expect(genuine.status()).toBe(400);
    expect((await account()).secretBox!.equals(boxBefore)).toBe(true);
    await imapLogin(appPassword);
  }, 60_000);

  it('a callback without a page session is refused, after the one same-site hop that would have carried the cookie', async () => {
    const stranger = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const other = await stranger.newPage();
      const refusedBefore = connectRefusals('no_session');
      const [refused] = await Promise.all([
        other.waitForResponse((r) => r.url().includes('/connect/callback?') && r.url().includes('hop=1')),
        other.goto(`${base}/connect/callback?code=some-code&state=some-state`),
      ]);
      expect(refused.status()).toBe(401);
      await other.waitForLoadState('load');
      expect(await other.textContent('main')).toMatch(/opened without your sign-in/);
      expect(connectRefusals('no_session')).toBe(refusedBefore + 1);
    } finally {
      await stranger.close();
    }
  }, 30_000);

  it('a device-flow-only provider: the button tells the user to ask the administrator, and nothing changes', async () => {
    const other = 'dora@example.test';
    const added = await authoriseByDevice(postern, as, ['user', 'add', other, '--oauth', 'device-only', '--upstream-user', UPSTREAM_USER, '--password-stdin'], `${PRIMARY}\n`);
    expect(added.code, added.stderr).toBe(0);
    const own = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const dora = await own.newPage();
      await signIn(dora, base, other, PRIMARY);
      const { key, recoveryCodes } = await enrolTotp(dora);
      for (const s of [key, ...recoveryCodes]) secrets.add(s);
      await dora.goto(`${base}/passwords`);
      const boxBefore = (await postern.accounts.getAccount(other)).secretBox!;
      const [answer] = await Promise.all([dora.waitForResponse((r) => r.url() === `${base}/connect`), dora.click('#connect')]);
      expect(answer.status()).toBe(409);
      expect(await dora.textContent('main')).toContain(`Ask your administrator to run "postern user reauth ${other}"`);
      expect((await postern.accounts.getAccount(other)).secretBox!.equals(boxBefore)).toBe(true);
    } finally {
      await own.close();
    }
  }, 60_000);
});
