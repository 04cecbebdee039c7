/**
 * Upstream mode `oauth2` against a real authorization server (oidc-provider: device flow, refresh
 * rotation, introspection) and a real Dovecot that accepts only its access tokens. Pins:
 *  - `postern user add --oauth` authorises by the device flow (the test approves the code);
 *  - an app password then logs in through postern over IMAP (imapflow) and SMTP (nodemailer),
 *    postern sending the token with XOAUTH2/OAUTHBEARER;
 *  - an expired access token is refreshed at login, transparently, and the rotated refresh token is
 *    re-sealed so that every app password (not only the one that logged in) uses the new grant;
 *  - 20 concurrent logins of one account cause one refresh (a second refresh with the spent
 *    refresh token would make the server revoke the whole grant);
 *  - grant revoked at the server → account flagged, `NO [UNAVAILABLE]` / `454 4.7.0`, never a
 *    wrong-password answer; `postern user reauth` → works again, app passwords unchanged;
 *  - no token in the logs or the database files.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import type { DovecotServer } from '../helpers/dovecot.js';
import type { PosternHarness } from '../helpers/postern.js';
import { databaseBytes } from '../helpers/test-database.js';
import { connectLineClient } from '../helpers/line-client.js';
import { runInProcess, startInProcess } from '../helpers/cli.js';
import { startAuthorizationServer, type AuthorizationServer } from './authorization-server.js';
import { authoriseByDevice, LOGIN, PRIMARY, startOAuthDovecot, startOAuthPostern, UPSTREAM_USER } from './support.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Access tokens live this long; postern refreshes with less than REFRESH_MARGIN_MS left. */
const SHORT_TTL_S = 3;
const REFRESH_MARGIN_MS = 1000;
const MEDIUM_TTL_S = 12;

let as: AuthorizationServer;
let dovecot: DovecotServer;
let postern: PosternHarness & { configPath: string };
let passwords: { password: string }[] = [];

function imap(pass: string, login = LOGIN): ImapFlow {
  const client = new ImapFlow({
    host: '127.0.0.1', port: postern.port('imap.implicitTls'), secure: true, servername: 'localhost',
    auth: { user: login, pass }, tls: { ca: postern.caPem, servername: 'localhost' }, logger: false,
    connectionTimeout: 10_000, greetingTimeout: 10_000,
  });
  client.on('error', () => undefined);
  return client;
}

async function imapLogin(pass: string, login = LOGIN): Promise<void> {
  const client = imap(pass, login);
  await client.connect();
  const box = await client.mailboxOpen('INBOX');
  expect(box.path).toBe('INBOX');
  await client.logout();
}

/** The tagged answer to a raw LOGIN through postern. */
async function rawImapLogin(pass: string): Promise<string> {
  const c = await connectLineClient({ host: '127.0.0.1', port: postern.port('imap.implicitTls'), tls: { ca: postern.caPem, servername: 'localhost' }, timeoutMs: 15_000 });
  try {
    await c.readLine();
    c.write(`a LOGIN "${LOGIN}" "${pass}"\r\n`);
    const lines = await c.readUntil((l) => l.startsWith('a '));
    return lines.at(-1)!;
  } finally {
    c.close();
  }
}

function smtp(pass: string) {
  return nodemailer.createTransport({
    host: '127.0.0.1', port: postern.port('smtp.implicitTls'), secure: true,
    auth: { user: LOGIN, pass }, tls: { ca: postern.caPem, servername: 'localhost' },
  });
}

const account = () => postern.accounts.getAccount(LOGIN);

beforeAll(async () => {
  as = await startAuthorizationServer();
  dovecot = await startOAuthDovecot(as);
  postern = await startOAuthPostern(as, dovecot, { refreshMarginMs: REFRESH_MARGIN_MS });
}, 60_000);

afterAll(async () => {
  // Every token the server ever issued is a secret: none may be in postern's logs…
  for (const token of as?.issuedTokens() ?? []) postern?.rememberSecret(token);
  const files = postern ? await databaseBytes(postern) : [];
  await postern?.stop();
  await dovecot?.stop();
  await as?.stop();
  // …nor in the database files (each token also as base64, as SASL would carry it).
  for (const token of as?.issuedTokens() ?? []) {
    for (const file of files) {
      expect(file.includes(Buffer.from(token))).toBe(false);
      expect(file.includes(Buffer.from(Buffer.from(token).toString('base64')))).toBe(false);
    }
  }
  expect(as?.issuedTokens().length ?? 0).toBeGreaterThan(0);
});

describe.sequential('upstream OAuth2', () => {
  it('authorises an account by the device flow at the CLI', async () => {
    const result = await authoriseByDevice(postern, as,
      ['user', 'add', LOGIN, '--oauth', 'test', '--upstream-user', UPSTREAM_USER, '--password-stdin'], `${PRIMARY}\n`);
    expect(result.stderr).toMatch(/open http:\/\/127\.0\.0\.1:\d+\/device and enter the code/);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/added account alice@example\.test \(upstream mode oauth2 with test, upstream user alice\)/);
    expect(await account()).toMatchObject({ upstreamMode: 'oauth2', oauth2Provider: 'test', upstreamUser: UPSTREAM_USER });
    passwords = [await postern.newPassword(LOGIN, PRIMARY, { label: 'laptop' }), await postern.newPassword(LOGIN, PRIMARY, { label: 'phone' })];
  }, 60_000);

  it('logs in over IMAP and sends over SMTP with an app-specific password', async () => {
    await imapLogin(passwords[0]!.password);
    const info = await smtp(passwords[1]!.password).sendMail({ from: `${UPSTREAM_USER}@example.test`, to: `${UPSTREAM_USER}@example.test`, subject: 'via oauth2', text: 'hello\r\n' });
    expect(info.accepted).toEqual([`${UPSTREAM_USER}@example.test`]);
    // The flag goes through the write queue after the answer: waited for, not read at once.
    await expect.poll(async () => (await account()).upstreamStatus, { timeout: 5_000 }).toBe('ok');
    expect(postern.logs.lines.some((l) => l.includes('"event":"session.started"'))).toBe(true);
    // Dovecot took a token, not a password: RFC 7628's mechanism on both legs.
    const dovecotLog = readFileSync(dovecot.logFile, 'utf8');
    expect(dovecotLog).toMatch(/imap-login: Info: Login: user=<alice>, method=OAUTHBEARER/);
    expect(dovecotLog).toMatch(/submission-login: Info: Login: user=<alice>, method=OAUTHBEARER/);
  }, 30_000);

  it('refreshes an expired access token at login, transparently, and re-seals the rotated refresh token for every app password', async () => {
    // The device flow's token lives an hour: authorise again while the server issues 3-second
    // tokens, then let that one expire for real (Dovecot's introspection then says inactive).
    as.accessTtlSeconds = SHORT_TTL_S;
    await reauthorise();
    const boxBefore = (await account()).secretBox!;
    await sleep(SHORT_TTL_S * 1000 + 300);
    const refreshesBefore = as.refreshGrants();
    await imapLogin(passwords[0]!.password);
    expect(as.refreshGrants()).toBe(refreshesBefore + 1);
    expect((await account()).secretBox!.equals(boxBefore)).toBe(false);
    // The other app password opens the re-sealed set (the same data key) and, after expiry, refreshes with the rotated token.
    await sleep(SHORT_TTL_S * 1000 + 300);
    await imapLogin(passwords[1]!.password);
    expect(as.refreshGrants()).toBe(refreshesBefore + 2);
    expect(postern.logs.lines.filter((l) => l.includes('"event":"oauth2.refreshed"') && l.includes('"rotated":true') && l.includes('"stored":true')).length).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('refresh-token replay by concurrent logins: 20 logins of one account cause one refresh, so rotation never sees a spent token reused', async () => {
    // The token the 20 share lives long enough for all of them, however slowly they arrive.
    as.accessTtlSeconds = MEDIUM_TTL_S;
    await sleep(SHORT_TTL_S * 1000 + 300);
    const refreshesBefore = as.refreshGrants();
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => imapLogin(passwords[i % 2]!.password)));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(as.refreshGrants()).toBe(refreshesBefore + 1);
  }, 60_000);

  it('a grant revoked at the server flags the account and answers a temporary failure; user reauth makes it work again', async () => {
    as.accessTtlSeconds = SHORT_TTL_S;
    await as.revokeGrants();
    await sleep(MEDIUM_TTL_S * 1000 - REFRESH_MARGIN_MS + 300); // the current token is now due for a refresh
    expect(await rawImapLogin(passwords[0]!.password)).toMatch(/^a NO \[UNAVAILABLE\] /);
    await expect(smtp(passwords[1]!.password).sendMail({ from: 'alice@example.test', to: 'alice@example.test', text: 'x' }))
      .rejects.toMatchObject({ responseCode: 454, response: expect.stringMatching(/^454 4\.7\.0 /) });
    await expect.poll(async () => (await account()).upstreamStatus, { timeout: 5_000 }).toBe('rejected');
    const flagged = postern.logs.lines.find((l) => l.includes('"event":"upstream.grant_rejected"'));
    expect(flagged).toContain('postern user reauth alice@example.test');

    const show = await runInProcess(['-c', postern.configPath, 'user', 'show', LOGIN]);
    expect(show.stdout).toContain('renew it with "postern user reauth alice@example.test"');

    const reauth = await authoriseByDevice(postern, as, ['user', 'reauth', LOGIN, '--password-stdin'], `${PRIMARY}\n`);
    expect(reauth.code, reauth.stderr).toBe(0);
    expect(reauth.stdout).toMatch(/renewed the OAuth2 grant of alice@example\.test/);
    expect((await account()).upstreamStatus).toBe('unknown');
    await imapLogin(passwords[0]!.password);
    await imapLogin(passwords[1]!.password);
    await expect.poll(async () => (await account()).upstreamStatus, { timeout: 5_000 }).toBe('ok');
  }, 120_000);

  it('authorises by code + PKCE: the browser comes back to the CLI on a loopback redirect', async () => {
    as.accessTtlSeconds = 3600;
    const run = startInProcess(['-c', postern.configPath, 'user', 'add', 'carol@example.test', '--oauth', 'test-pkce', '--upstream-user', UPSTREAM_USER, '--password-stdin'], { input: `${PRIMARY}\n` });
    let url: string | undefined;
    for (let i = 0; i < 200 && !url; i++) {
      url = /^(http:\/\/127\.0\.0\.1:\d+\/auth\?\S+)$/m.exec(run.stderr())?.[1];
      if (!url) await sleep(50);
    }
    expect(url, run.stderr()).toBeDefined();
    const params = new URL(url!).searchParams;
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const landed = await as.browse(url!, UPSTREAM_USER);
    expect(landed).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?code=/);
    const result = await run.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/added account carol@example\.test \(upstream mode oauth2 with test-pkce/);
    const { password } = await postern.newPassword('carol@example.test', PRIMARY, { label: 'pkce' });
    await imapLogin(password, 'carol@example.test');
  }, 60_000);
});

/** `postern user reauth` by the device flow, approved by the test. */
async function reauthorise(): Promise<void> {
  const reauth = await authoriseByDevice(postern, as, ['user', 'reauth', LOGIN, '--password-stdin'], `${PRIMARY}\n`);
  expect(reauth.code, reauth.stderr).toBe(0);
}
