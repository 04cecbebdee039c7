// The one-time Apple profile offered right after Generate (src/portal/routes/profile.ts,
// src/onboarding/profile-download.ts), through a real Chromium and real HTTPS requests against a
// real postern whose certificate is issued by a test CA. Invariants pinned here:
// - the generated page offers "Install on this iPhone/iPad/Mac" and a QR code of the same URL
//   (the QR is checked by regenerating it with the same library and options: no QR decoder is
//   installed); on a phone-width page the QR code is hidden and the link is the primary button;
// - the download needs no session, is `application/x-apple-aspen-config`, verifies with
//   `openssl smime -verify` against the test CA, and parses (Python's plistlib) into payloads that
//   match the account, the listeners' ports and the new password;
// - the link's origin is the configured page address (first hostname + the portal's bound port),
//   never the Host header the browser sent;
// - it is taken once: a HEAD does not take it (fastify's automatic HEAD route would); a second request, and any of several racing ones but one, get 410 with a
//   clear page; so does one after its expiry, and one whose password was revoked meanwhile;
// - neither the token nor the password reaches a log line or the database file, even while the
//   download is pending.
import { execFileSync, spawnSync } from 'node:child_process';
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import QRCode from 'qrcode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProfileDownloads } from '../../src/onboarding/profile-download.js';
import { PROFILE_QR_OPTIONS } from '../../src/portal/routes/profile.js';
import { launchBrowser, PHONE, screenshots } from '../helpers/browser.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';
import { assertNotInDatabase, baseUrl, enrolTotp, generate, portalConfig, signIn } from '../portal/support.js';

const PRIMARY = 'alice-primary-Secret-16';
const DAV_UPSTREAM = 'https://127.0.0.1:9';
let dir: string;
let postern: PosternHarness;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let base: string;
const secrets = new Set<string>([PRIMARY]);
const tokens = new Set<string>();

beforeAll(async () => {
  dir = await makeTempDir('postern-profile-');
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Postern Test CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost');
  writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,emailProtection\n');
  openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'ext.cnf');
  writeFileSync(path.join(dir, 'chain.pem'), readFileSync(path.join(dir, 'leaf.pem'), 'utf8') + readFileSync(path.join(dir, 'ca.pem'), 'utf8'));
  postern = await startPostern({
    config: {
      tls: { cert: path.join(dir, 'chain.pem'), key: path.join(dir, 'leaf.key') },
      // The upstreams are never reached: the page and the profile need no provider login.
      imap: { implicitTls: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: 9, connectTimeoutMs: 200 } },
      smtp: { implicitTls: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: 9, connectTimeoutMs: 200 } },
      dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `${DAV_UPSTREAM}/cal/`, carddavUpstream: `${DAV_UPSTREAM}/card/` },
      portal: portalConfig(),
      onboarding: { domains: ['example.org'], displayName: 'Example Mail' },
    },
  });
  await postern.addUser('alice', PRIMARY, { mode: 'password', secret: 'alice-upstream-Secret-16' });
  base = baseUrl(postern);
  browser = await launchBrowser();
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  await signIn(page, base, 'alice', PRIMARY);
  const enrolled = await enrolTotp(page);
  for (const code of [enrolled.key, ...enrolled.recoveryCodes]) secrets.add(code);
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  for (const s of [...secrets, ...tokens]) postern?.rememberSecret(s);
  if (postern) await assertNotInDatabase(postern, [...secrets, ...tokens]);
  await postern?.stop();
  if (dir) await removeTempDir(dir);
});

/** Generates a password on the page and returns it with the offer the page shows. */
async function generateWithProfile(label: string, scopes: string[] = []): Promise<{ password: string; path: string; token: string }> {
  const password = await generate(page, base, label, scopes);
  secrets.add(password);
  const href = (await page.getAttribute('#profile-download', 'href'))!;
  expect(href).toMatch(/^\/profile\/[A-Za-z0-9_-]{43}$/);
  const token = href.slice('/profile/'.length);
  tokens.add(token);
  return { password, path: href, token };
}

/** The page's address from the config: no publicUrl, so the first hostname and the bound port. */
const configuredOrigin = () => `https://localhost:${postern.port('portal')}`;

/** A request with the browser's cookies but a Host header of the client's choosing. */
function withHost(host: string, method: 'GET' | 'POST', urlPath: string, form?: Record<string, string>): Promise<string> {
  return context.cookies(base).then((cookies) => new Promise<string>((resolve, reject) => {
    const body = form ? new URLSearchParams(form).toString() : undefined;
    const headers: Record<string, string> = { host, cookie: cookies.map((c) => `${c.name}=${c.value}`).join('; ') };
    if (body) Object.assign(headers, { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)) });
    const req = https.request({ host: '127.0.0.1', port: postern.port('portal'), method, path: urlPath, headers, ca: readFileSync(path.join(dir, 'ca.pem')), servername: 'localhost' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', reject);
    req.end(body);
  }));
}

/** A request without any cookie, as from the phone that scanned the code. */
function download(urlPath: string, method = 'GET'): Promise<{ status: number; type: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: postern.port('portal'), method, path: urlPath, ca: readFileSync(path.join(dir, 'ca.pem')), servername: 'localhost' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function verifiedContent(der: Buffer): string {
  const file = path.join(dir, `profile-${Math.random().toString(36).slice(2)}.der`);
  writeFileSync(file, der);
  const result = spawnSync('openssl', ['smime', '-verify', '-inform', 'DER', '-in', file, '-CAfile', path.join(dir, 'ca.pem'), '-purpose', 'any'], { encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
  return result.stdout;
}

interface Payload { PayloadType: string; [key: string]: unknown }

function plist(xml: string): { PayloadContent: Payload[]; [key: string]: unknown } {
  const result = spawnSync('python3', ['-c', 'import sys, json, plistlib; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))'], { input: xml, encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { PayloadContent: Payload[] };
}

describe('the one-time Apple profile', () => {
  it('downloaded with no session, verifies against the test CA and carries the account, the listeners and the new password', async () => {
    const offer = await generateWithProfile('iPhone');
    expect(await page.textContent('#profile-download')).toBe('Install on this iPhone/iPad/Mac');
    expect(await page.textContent('.profile')).toMatch(/works once, within 5 minutes/);
    await screenshots(page, '20-generated-with-profile');
    const res = await download(offer.path);
    expect(res.status).toBe(200);
    expect(res.type).toBe('application/x-apple-aspen-config');
    const profile = plist(verifiedContent(res.body));
    const byType = Object.fromEntries(profile.PayloadContent.map((p) => [p.PayloadType, p]));
    expect(Object.keys(byType).sort()).toEqual(['com.apple.caldav.account', 'com.apple.carddav.account', 'com.apple.mail.managed']);
    expect(byType['com.apple.mail.managed']).toMatchObject({
      EmailAddress: 'alice@example.org', EmailAccountType: 'EmailTypeIMAP',
      IncomingMailServerHostName: 'localhost', IncomingMailServerPortNumber: postern.port('imap.implicitTls'), IncomingMailServerUseSSL: true,
      IncomingMailServerUsername: 'alice', IncomingPassword: offer.password,
      OutgoingMailServerHostName: 'localhost', OutgoingMailServerPortNumber: postern.port('smtp.implicitTls'), OutgoingMailServerUseSSL: true,
      OutgoingMailServerUsername: 'alice', OutgoingPassword: offer.password,
    });
    for (const kind of ['CalDAV', 'CardDAV']) {
      expect(byType[`com.apple.${kind.toLowerCase()}.account`]).toMatchObject({
        [`${kind}HostName`]: 'localhost', [`${kind}Port`]: postern.port('dav'), [`${kind}UseSSL`]: true,
        [`${kind}Username`]: 'alice', [`${kind}Password`]: offer.password,
      });
    }
    expect(postern.logs.lines.some((l) => l.includes('"event":"portal.profile_downloaded"') && l.includes('"signed":true'))).toBe(true);
  });

  it('carries only what the password may be used for: a mail-only password gets no CalDAV or CardDAV payload', async () => {
    const offer = await generateWithProfile('Mail only', ['imap', 'smtp']);
    const res = await download(offer.path);
    const types = plist(verifiedContent(res.body)).PayloadContent.map((p) => p.PayloadType);
    expect(types).toEqual(['com.apple.mail.managed']);
  });

  it('the QR code on the page encodes the download URL; on a phone-width page it is hidden and the link leads', async () => {
    const offer = await generateWithProfile('Scanned');
    const svg = await page.$eval('#profile-qr svg', (el) => el.outerHTML);
    // No QR decoder is installed: regenerate with the same library and options and compare.
    const expected = await QRCode.toString(new URL(offer.path, configuredOrigin()).href, PROFILE_QR_OPTIONS);
    const normalise = (s: string) => s.replace(/\s+/g, ' ').replace(/ ?\/>/g, '>').replace(/<\/path>/g, '').trim();
    expect(normalise(svg)).toBe(normalise(expected));
    expect(await page.isVisible('#profile-qr')).toBe(true);
    await page.setViewportSize(PHONE);
    expect(await page.isVisible('#profile-qr')).toBe(false);
    expect(await page.isVisible('#profile-download')).toBe(true);
    const background = await page.$eval('#profile-download', (el) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor);
    expect(background).toBe('rgb(10, 91, 211)'); // --accent: the primary button
    await page.setViewportSize({ width: 1280, height: 800 });
    // Without JavaScript the link is a plain link: following it in the browser downloads the file.
    const [file] = await Promise.all([page.waitForEvent('download'), page.click('#profile-download').catch(() => undefined)]);
    expect(file.suggestedFilename()).toBe('postern.mobileconfig');
  });

  it('attack: forged Host header — the QR code and link carry the configured origin, not the Host the client sent', async () => {
    const evil = 'attacker.example:8443';
    const form = await withHost(evil, 'GET', '/passwords/new');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(form)?.[1];
    expect(csrf).toBeTruthy();
    const generated = await withHost(evil, 'POST', '/passwords/new', { _csrf: csrf!, label: 'Forged host' });
    const href = /id="profile-download" href="(\/profile\/[A-Za-z0-9_-]{43})"/.exec(generated)?.[1];
    expect(href).toBeTruthy();
    tokens.add(href!.slice('/profile/'.length));
    const shown = /id="new-password">(.*?)<\/p>/.exec(generated)?.[1] ?? '';
    secrets.add([...shown.matchAll(/<span>([^<]+)<\/span>/g)].map((m) => m[1]).join('-'));
    expect(generated).not.toContain('attacker.example');
    const svg = /<div class="qr" id="profile-qr"[^>]*>([\s\S]*?<\/svg>)/.exec(generated)?.[1] ?? '';
    const normalise = (x: string) => x.replace(/\s+/g, ' ').replace(/ ?\/>/g, '>').replace(/<\/path>/g, '').trim();
    expect(normalise(svg)).toBe(normalise(await QRCode.toString(new URL(href!, configuredOrigin()).href, PROFILE_QR_OPTIONS)));
    expect(normalise(svg)).not.toBe(normalise(await QRCode.toString(`https://${evil}${href!}`, PROFILE_QR_OPTIONS)));
  });

  it('attack: replayed download link — the second download is refused with 410 and a clear page', async () => {
    const offer = await generateWithProfile('Twice');
    expect((await download(offer.path)).status).toBe(200);
    const again = await download(offer.path);
    expect(again.status).toBe(410);
    expect(again.type).toMatch(/^text\/html/);
    expect(again.body.toString('utf8')).toContain('can be downloaded once');
    expect(again.body.toString('utf8')).not.toContain(offer.password);
    await page.goto(new URL(offer.path, base).href);
    expect(await page.textContent('.error')).toContain('This link has been used, has expired, or its password was revoked');
    await screenshots(page, '21-profile-gone');
    // A well-formed token nobody was given gets the same page.
    expect((await download(`/profile/${'A'.repeat(43)}`)).status).toBe(410);
  });

  it('attack: link checker spends the download — a HEAD request does not take it', async () => {
    const offer = await generateWithProfile('Checked');
    expect((await download(offer.path, 'HEAD')).status).toBe(404);
    expect((await download(offer.path)).status).toBe(200);
  });

  it('attack: racing downloads — of eight simultaneous requests with one link, exactly one gets the profile', async () => {
    const offer = await generateWithProfile('Race');
    const answers = await Promise.all(Array.from({ length: 8 }, () => download(offer.path)));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 410, 410, 410, 410, 410, 410, 410]);
  });

  it('attack: late download — a link used after its expiry is refused', async () => {
    // The page's downloads last five minutes; this offer is written by the same code with a clock
    // six minutes behind, so it is five minutes in the past, and taken through the real route.
    // The maintenance worker's prune (once a minute) may delete it first, which answers 410 too but
    // says "gone": then the check is made again with a fresh offer (two prunes are a minute apart).
    const account = await postern.accounts.getAccount('alice');
    const past = new ProfileDownloads(postern.app.store, 300_000, () => Date.now() - 360_000);
    const reasons: string[] = [];
    for (let attempt = 0; attempt < 2 && !reasons.includes('expired'); attempt++) {
      const created = await postern.newPassword('alice', PRIMARY, { label: `Late ${attempt}` });
      const passwordId = (await postern.app.store.passwords.findByPublicId(created.publicId))!.id;
      const token = await past.offer({ accountId: account.id, passwordId, publicId: created.publicId, profile: { login: 'alice', address: 'alice@example.org', password: created.password, label: 'Late', scopes: ['imap'] } });
      tokens.add(token);
      const before = postern.logs.lines.length;
      const res = await download(`/profile/${token}`);
      expect(res.status).toBe(410);
      const line = postern.logs.lines.slice(before).find((l) => l.includes('"event":"portal.profile_refused"'));
      reasons.push((JSON.parse(line!) as { reason: string }).reason);
    }
    expect(reasons.at(-1)).toBe('expired');
  });

  it('attack: download after revocation — revoking the password kills its pending download', async () => {
    const offer = await generateWithProfile('Revoked before use');
    const row = (await postern.accounts.listPasswords('alice')).find((p) => p.label === 'Revoked before use')!;
    await postern.accounts.revokePassword('alice', row.publicId);
    const res = await download(offer.path);
    expect(res.status).toBe(410);
    expect(res.body.toString('utf8')).not.toContain(offer.password);
    expect(postern.logs.lines.some((l) => l.includes('"event":"portal.profile_refused"') && l.includes('"reason":"revoked"'))).toBe(true);
  });

  it('attack: token in the logs or the database — a pending download leaves neither password nor token in either', async () => {
    const offer = await generateWithProfile('Pending');
    // Pending: the row exists, sealed; the file holds neither.
    await assertNotInDatabase(postern, [offer.password, offer.token]);
    // A form posted to the download URL is refused (no token); its log line must not carry the path's token.
    await download(offer.path, 'POST');
    await download(`/elsewhere/..${offer.path}?again=${offer.token}`, 'POST');
    for (const token of tokens) expect(postern.logs.lines.some((l) => l.includes(token))).toBe(false);
    expect((await download(offer.path)).status).toBe(200);
    await assertNotInDatabase(postern, [offer.password, offer.token]);
  });
});
