/**
 * The account page on two instances of postern on one database (issue 14), end to end: Chromium,
 * two in-process posterns sharing the database and the key file (either engine), a real
 * authorization server (oidc-provider) and a real Dovecot that takes its access tokens. The
 * browser talks to instance A and instance B in turn, as a TCP load balancer would send it; both
 * have one public address, B's, so the provider's redirect back lands on B. Pins:
 *  - signed in on A, Generate on B within the recent-auth window creates the password without
 *    asking for the primary password again (the password is sealed in the session's row);
 *  - "Connect your account" started on A and returned to B succeeds; the same callback replayed,
 *    to B or to A, is refused (the request is taken once, across instances);
 *  - the database holds neither the primary password nor the PKCE verifier, which are sealed under
 *    the cookie (opened here with the browser's cookie to prove they are what the row holds), and
 *    neither reaches a log of either instance;
 *  - once the window has passed the recent-auth column is NULL (the read that finds it stale
 *    clears it) and B asks again; after sign-out both boxes are NULL.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openForSession } from '../../src/portal/session-boxes.js';
import { tokenDigest } from '../../src/portal/sessions.js';
import type { DovecotServer } from '../helpers/dovecot.js';
import { freePort } from '../helpers/free-port.js';
import { testSql } from '../helpers/test-database.js';
import { startAuthorizationServer, type AuthorizationServer } from '../oauth2/authorization-server.js';
import { authoriseByDevice, LOGIN, PRIMARY, startOAuthDovecot, startOAuthPostern, UPSTREAM_USER } from '../oauth2/support.js';
import { assertNotInDatabase, CONNECT_PAGE_HOST as PAGE_HOST, enrolTotp, openConnectBrowser, portalConfig, signIn } from './support.js';

const COOKIE = '__Host-postern_session';
const RECENT_AUTH_MS = 10 * 60_000;

let as: AuthorizationServer;
let dovecot: DovecotServer;
let a: Awaited<ReturnType<typeof startOAuthPostern>>;
let b: Awaited<ReturnType<typeof startOAuthPostern>>;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let baseA: string;
let baseB: string;
let lastCallback: () => string = () => '';
const secrets = new Set<string>([PRIMARY]);

interface SessionBoxes {
  id: number;
  recent: Buffer | null;
  connect: Buffer | null;
}

async function cookie(): Promise<string> {
  return (await context.cookies(baseA)).find((c) => c.name === COOKIE)!.value;
}

/** The browser's current session row's boxes, found as any instance finds it: by the cookie's digest. */
async function boxes(): Promise<SessionBoxes> {
  const [row] = await testSql<SessionBoxes>(a.app.store, 'SELECT id, recent_auth_box AS recent, connect_box AS connect FROM portal_sessions WHERE token_digest = ?', tokenDigest(await cookie()));
  return { id: Number(row!.id), recent: row!.recent, connect: row!.connect };
}

const connectRefusals = () => [a, b].reduce((n, p) => n + p.logs.lines.filter((l) => l.includes('"event":"portal.connect_refused"') && l.includes('"reason":"state_mismatch"')).length, 0);

beforeAll(async () => {
  const [portA, portB] = [await freePort(), await freePort()];
  baseA = `https://${PAGE_HOST}:${portA}`;
  baseB = `https://${PAGE_HOST}:${portB}`;
  as = await startAuthorizationServer({ redirectUris: [`${baseB}/connect/callback`] });
  dovecot = await startOAuthDovecot(as);
  const publicUrl = `${baseB}/`;
  a = await startOAuthPostern(as, dovecot, {}, { portal: portalConfig({ listener: { host: '127.0.0.1', port: portA }, publicUrl }) });
  // B: the same database and key file, as a second `postern serve` behind the load balancer.
  b = await startOAuthPostern(as, dovecot, {}, { portal: portalConfig({ listener: { host: '127.0.0.1', port: portB }, publicUrl }), database: a.database, keyFile: a.keyFile });
  ({ browser, context, page, lastCallback } = await openConnectBrowser(baseB));
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  for (const token of as?.issuedTokens() ?? []) secrets.add(token);
  for (const s of secrets) {
    a?.rememberSecret(s);
    b?.rememberSecret(s);
  }
  if (a) await assertNotInDatabase(a, [...secrets]);
  // B first: A's harness owns the database and drops it (PostgreSQL) at its stop.
  await b?.stop();
  await a?.stop();
  await dovecot?.stop();
  await as?.stop();
});

describe.sequential('the account page on two instances', () => {
  it('signed in on A, Generate on B within the window creates the password without asking for the primary password again', async () => {
    const added = await authoriseByDevice(a, as, ['user', 'add', LOGIN, '--oauth', 'test', '--upstream-user', UPSTREAM_USER, '--password-stdin'], `${PRIMARY}\n`);
    expect(added.code, added.stderr).toBe(0);
    await signIn(page, baseA, LOGIN, PRIMARY);
    const { key, recoveryCodes } = await enrolTotp(page);
    for (const s of [key, ...recoveryCodes]) secrets.add(s);

    // What the row holds is the password sealed under the cookie (after its rotation at the second factor).
    const row = await boxes();
    expect(openForSession(await cookie(), row.id, 'recent-auth', row.recent!)).toMatchObject({ password: PRIMARY });

    await page.goto(`${baseB}/passwords/new`);
    expect(await page.$('form[action="/confirm-password"]'), 'B asked for the primary password again').toBeNull();
    await page.fill('#label', 'Made on B');
    await page.click('button[type=submit].primary');
    await page.waitForSelector('#new-password');
    const created = (await page.$$eval('#new-password span', (els) => els.map((e) => e.textContent ?? ''))).join('-');
    secrets.add(created);
    expect((await b.accounts.listPasswords(LOGIN)).map((p) => p.label)).toContain('Made on B');
  }, 90_000);

  it('Connect started on A and returned to B succeeds; the replayed callback is refused by B and by A', async () => {
    const boxBefore = (await a.accounts.getAccount(LOGIN)).secretBox!;
    await page.goto(`${baseA}/passwords`);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(`${as.issuer}/interaction/`)), page.click('#connect')]);
    await page.waitForSelector('#allow');

    // While the request is pending, the row holds it sealed: the verifier is in it, and not in the database in clear.
    const row = await boxes();
    const pending = openForSession(await cookie(), row.id, 'connect', row.connect!) as { provider: string; start: { verifier: string; state: string } };
    expect(pending.provider).toBe('test');
    secrets.add(pending.start.verifier);
    await assertNotInDatabase(a, [pending.start.verifier, PRIMARY]);

    await page.fill('#login', UPSTREAM_USER);
    await Promise.all([page.waitForURL(`${baseB}/passwords?done=connected`), page.click('#allow')]);
    expect(lastCallback()).toMatch(new RegExp(`^${baseB.replace(/\./g, '\\.')}/connect/callback\\?code=`));
    expect(b.logs.lines.some((l) => l.includes('"event":"portal.connected"'))).toBe(true);
    const boxAfter = (await a.accounts.getAccount(LOGIN)).secretBox!;
    expect(boxAfter.equals(boxBefore)).toBe(false);
    expect((await boxes()).connect).toBeNull();

    const refusedBefore = connectRefusals();
    const replayed = new URL(lastCallback());
    for (const base of [baseB, baseA]) {
      const response = await page.goto(`${base}${replayed.pathname}${replayed.search}`);
      expect(response?.status()).toBe(400);
      expect(await page.textContent('main')).toMatch(/does not belong to a connection started from this page/);
    }
    expect(connectRefusals()).toBe(refusedBefore + 2);
    expect((await a.accounts.getAccount(LOGIN)).secretBox!.equals(boxAfter)).toBe(true);
  }, 90_000);

  it('past the window the recent-auth column is NULL and B asks again; after sign-out both boxes are NULL', async () => {
    expect((await boxes()).recent).not.toBeNull();
    await testSql(a.app.store, 'UPDATE portal_sessions SET password_at = password_at - ? WHERE ended_at IS NULL', RECENT_AUTH_MS + 60_000);
    await page.goto(`${baseB}/passwords/new`);
    expect(await page.$('form[action="/confirm-password"]')).not.toBeNull();
    expect((await boxes()).recent).toBeNull();

    // Typed again on B: A has it.
    await page.fill('#password', PRIMARY);
    await Promise.all([page.waitForURL(`${baseB}/passwords/new`), page.click('button[type=submit].primary')]);
    expect((await boxes()).recent).not.toBeNull();
    await page.goto(`${baseA}/passwords/new`);
    expect(await page.$('form[action="/confirm-password"]')).toBeNull();
    expect(await page.$('#label')).not.toBeNull();

    const id = (await boxes()).id;
    await page.goto(`${baseA}/passwords`);
    await Promise.all([page.waitForResponse((r) => r.url() === `${baseA}/sign-out`), page.click('header button')]);
    const [row] = await testSql<{ recent: Buffer | null; connect: Buffer | null; ended: unknown }>(a.app.store,
      'SELECT recent_auth_box AS recent, connect_box AS connect, ended_at AS ended FROM portal_sessions WHERE id = ?', id);
    expect(row!.ended).not.toBeNull();
    expect(row!.recent).toBeNull();
    expect(row!.connect).toBeNull();
    expect(await testSql(a.app.store, 'SELECT id FROM portal_sessions WHERE recent_auth_box IS NOT NULL OR connect_box IS NOT NULL')).toEqual([]);
  }, 60_000);
});
