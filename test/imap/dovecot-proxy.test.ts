// The IMAP proxy end to end: imapflow → postern → real Dovecot (implicit TLS upstream), with real
// SQLite accounts. Pins: an app password gets a full working session (list, select, append,
// fetch, IDLE push, logout; COMPRESS=DEFLATE in use) on both listeners; every refusal reads the same except the primary
// password's sentence; the upstream's refusal of stored credentials flags the account.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRIMARY_PASSWORD_REFUSED_TEXT } from '../../src/auth/types.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapClient, imapConfig, message, quoted, rawTls } from './support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-1' };
const BOB = { name: 'bob', password: 'bob-real-Secret-2' };
const AUTH_FAILED = 'NO [AUTHENTICATIONFAILED] Authentication failed.';

let dovecot: DovecotServer;
let postern: PosternHarness;

beforeAll(async () => {
  // imap_zlib: Dovecot offers COMPRESS=DEFLATE after login, and imapflow uses it by itself.
  dovecot = await startDovecot({ users: [ALICE, BOB], extraConfig: 'protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n' });
  postern = await startPostern({ config: { imap: imapConfig(dovecot, 'tls') }, secrets: [ALICE.password, BOB.password] });
  await postern.addUser('alice', ALICE.password);
  // Bob's stored upstream secret is wrong: Dovecot will refuse it.
  await postern.addUser('bob', 'bob-primary-Secret-9', { mode: 'password', secret: 'not-bobs-real-password' });
});

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

describe('a mail client with an app-specific password', () => {
  it('lists, selects, appends, fetches and logs out through the implicit-TLS listener', async () => {
    const { password } = await postern.newPassword('alice', ALICE.password, { label: 'imapflow tls' });
    const client = imapClient(postern, { user: 'alice', pass: password });
    await client.connect();
    expect(client.capabilities.has('IDLE')).toBe(true); // Dovecot's post-login capabilities
    // The session is compressed end to end (RFC 4978); postern relays the deflated bytes untouched.
    expect(client.capabilities.has('COMPRESS=DEFLATE')).toBe(true);
    expect((client as unknown as { _deflate?: unknown })._deflate).toBeTruthy();
    const boxes = await client.list();
    expect(boxes.map((b) => b.path)).toContain('INBOX');
    const appended = await client.append('INBOX', message('first message'), ['\\Seen']);
    expect(appended).toBeTruthy();
    const lock = await client.getMailboxLock('INBOX');
    try {
      const fetched = await client.fetchOne('*', { envelope: true, source: true });
      expect(fetched && fetched.envelope?.subject).toBe('first message');
      expect(fetched && fetched.source?.toString()).toContain('Hello from the postern tests.');
    } finally {
      lock.release();
    }
    await client.logout();
    const started = await postern.logs.waitForEvent('session.started');
    expect(started.user).toBe('alice');
  });

  it('works through the STARTTLS listener too, and large messages pass intact', async () => {
    const { password } = await postern.newPassword('alice', ALICE.password, { label: 'imapflow starttls' });
    const client = imapClient(postern, { user: 'alice', pass: password, starttls: true });
    await client.connect();
    const body = `${'0123456789abcdef'.repeat(64)}\r\n`.repeat(400); // ~400 KiB literal both ways
    await client.append('INBOX', message('big one', body));
    const lock = await client.getMailboxLock('INBOX');
    try {
      const fetched = await client.fetchOne('*', { source: true });
      expect(fetched && fetched.source?.toString()).toBe(message('big one', body));
    } finally {
      lock.release();
    }
    await client.logout();
  });

  it('gets IDLE notifications of a message appended by another connection', async () => {
    const { password } = await postern.newPassword('alice', ALICE.password, { label: 'idle' });
    const watcher = imapClient(postern, { user: 'alice', pass: password });
    const writer = imapClient(postern, { user: 'alice', pass: password });
    await Promise.all([watcher.connect(), writer.connect()]);
    const lock = await watcher.getMailboxLock('INBOX');
    try {
      const before = (watcher.mailbox && watcher.mailbox.exists) || 0;
      const notified = new Promise<number>((resolve) => watcher.on('exists', (data: { count: number }) => resolve(data.count)));
      const idling = watcher.idle(); // resolves when IDLE ends
      await writer.append('INBOX', message('pushed'));
      await expect(notified).resolves.toBe(before + 1);
      expect(watcher.idling).toBe(true);
      void idling;
    } finally {
      lock.release();
    }
    await Promise.all([watcher.logout(), writer.logout()]);
  });
});

describe('refusals', () => {
  it('refuses the primary password with the sentence and records it', async () => {
    const client = await rawTls(postern);
    client.write(`a1 LOGIN alice ${quoted(ALICE.password)}\r\n`);
    expect(await client.readLine()).toBe(`a1 NO [AUTHENTICATIONFAILED] ${PRIMARY_PASSWORD_REFUSED_TEXT}`);
    client.close();
    await postern.app.writes.idle();
    const history = (await postern.accounts.history('alice')).map((e) => e.type);
    expect(history).toContain('primary.refused');
  });

  it('answers wrong, unknown, revoked, expired and out-of-scope passwords identically', async () => {
    const revoked = await postern.newPassword('alice', ALICE.password, { label: 'to revoke' });
    await postern.accounts.revokePassword('alice', revoked.publicId);
    const smtpOnly = await postern.newPassword('alice', ALICE.password, { label: 'smtp only', scopes: ['smtp'] });
    const expiring = await postern.newPassword('alice', ALICE.password, { label: 'expiring', expires: new Date(Date.now() + 1_000).toISOString() });
    const valid = await postern.newPassword('alice', ALICE.password, { label: 'valid' });
    await new Promise((r) => setTimeout(r, 1_100));
    const attempts: Array<[string, string]> = [
      ['alice', 'abcd-efgh-ijkl-mnop'],
      ['nobody', valid.password],
      ['alice', revoked.password],
      ['alice', smtpOnly.password],
      ['alice', expiring.password],
      ['bob', valid.password],
    ];
    for (const [user, pass] of attempts) {
      const client = await rawTls(postern);
      client.write(`t LOGIN ${user} ${quoted(pass)}\r\n`);
      expect(await client.readLine(), `${user} with a bad password`).toBe(`t ${AUTH_FAILED}`);
      client.close();
    }
  });

  it('tells the client and flags the account when the upstream refuses the stored credentials', async () => {
    const { password } = await postern.newPassword('bob', 'bob-primary-Secret-9', { label: 'bob phone' });
    const client = await rawTls(postern);
    client.write(`b1 LOGIN bob ${quoted(password)}\r\n`);
    const line = await client.readLine();
    expect(line).toMatch(/^b1 NO \[UNAVAILABLE\] The mail server refused the credentials postern holds/);
    // The session stays usable: postern keeps running and answers.
    client.write('b2 NOOP\r\n');
    expect(await client.readLine()).toBe('b2 OK NOOP completed.');
    client.close();
    // The flag goes through the write queue after the answer: waited for, not read at once.
    await expect.poll(async () => (await postern.app.store.accounts.findByLogin('bob'))?.upstreamStatus, { timeout: 5_000 }).toBe('rejected');
    await postern.logs.waitForEvent('upstream.credentials_rejected');
  });
});
