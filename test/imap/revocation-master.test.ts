// Master-user upstream mode over a STARTTLS upstream, and revocation signing live sessions out.
// Pins: SASL PLAIN with an authorization identity logs the master user in as the account; a
// revoke (here, or by a separate process on the same database) ends a live IDLE session with a
// BYE naming the reason within about a second, and closes it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapClient, imapConfig, message, quoted, rawTls } from './support.js';

const run = promisify(execFile);
const CAROL = { name: 'carol', password: 'carol-real-Secret-3' };
const MASTER = { name: 'postern-master', password: 'master-Secret-77' };
const CAROL_PRIMARY = 'carol-primary-Secret-4';

let dovecot: DovecotServer;
let postern: PosternHarness;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [CAROL], masterUser: MASTER });
  postern = await startPostern({
    config: { imap: imapConfig(dovecot, 'starttls'), master: { user: MASTER.name, password: MASTER.password } },
    secrets: [CAROL.password, MASTER.password],
  });
  await postern.addUser('carol', CAROL_PRIMARY, { mode: 'master' });
});

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

/** Logs in raw, selects INBOX and enters IDLE; resolves when the server says `+ idling`. */
async function idleSession(password: string) {
  const client = await rawTls(postern);
  client.write(`a LOGIN carol ${quoted(password)}\r\n`);
  expect(await client.readLine()).toMatch(/^a OK \[CAPABILITY IMAP4rev1 .*IDLE.*\] Logged in\.$/);
  client.write('b SELECT INBOX\r\n');
  await client.readUntil((l) => l.startsWith('b OK'));
  client.write('c IDLE\r\n');
  expect(await client.readLine()).toMatch(/^\+ /);
  return client;
}

describe('master-user mode through a STARTTLS upstream', () => {
  it('logs the master user in as the account and the session works', async () => {
    const { password } = await postern.newPassword('carol', CAROL_PRIMARY, { label: 'master mode' });
    const client = imapClient(postern, { user: 'carol', pass: password });
    await client.connect();
    await client.append('INBOX', message('via master'));
    const status = await client.status('INBOX', { messages: true });
    expect(status && status.messages).toBeGreaterThanOrEqual(1);
    await client.logout();
  });
});

describe('revocation', () => {
  it('ends a live IDLE session with a BYE naming the reason within a second', async () => {
    const { password, publicId } = await postern.newPassword('carol', CAROL_PRIMARY, { label: 'to revoke live' });
    const client = await idleSession(password);
    const revokedAt = Date.now();
    await postern.accounts.revokePassword('carol', publicId);
    const lines = await client.readUntil((l) => l.startsWith('* BYE'), 3_000);
    expect(lines.at(-1)).toBe('* BYE This app-specific password has been revoked; signing out.');
    await client.closed;
    expect(Date.now() - revokedAt).toBeLessThan(1_000);
    await postern.logs.waitForEvent('session.revoked');
  });

  it('signs out an imapflow client when a separate process revokes all passwords', async () => {
    const { password } = await postern.newPassword('carol', CAROL_PRIMARY, { label: 'imapflow idle' });
    const other = await idleSession((await postern.newPassword('carol', CAROL_PRIMARY, { label: 'raw idle' })).password);
    const client = imapClient(postern, { user: 'carol', pass: password });
    await client.connect();
    const lock = await client.getMailboxLock('INBOX');
    const closed = new Promise<number>((resolve) => client.once('close', () => resolve(Date.now())));
    void client.idle();
    // The other process opens the same database as the postern under test, on its engine, and
    // prints when its revoke had committed (its start-up, seconds on a loaded machine, is not counted).
    const script = `
      import { openConfiguredStore } from './src/store/open.js';
      import { resolveConfig } from './src/config/load.js';
      import { AccountService } from './src/accounts/service.js';
      import { readKeyFile } from './src/crypto/keys.js';
      const store = await openConfiguredStore(resolveConfig({ database: JSON.parse(process.argv[1]), keyFile: process.argv[2] }, null, {}), 'admin');
      await new AccountService(store, readKeyFile(process.argv[2])).revokeAll('carol');
      process.stdout.write(String(Date.now()));
      await store.close();`;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(postern.database), postern.keyFile], { cwd: process.cwd() });
    const lines = await other.readUntil((l) => l.startsWith('* BYE'), 3_000);
    expect(lines.at(-1)).toBe('* BYE All app-specific passwords of this account have been revoked; signing out.');
    const committedAt = Number(stdout);
    expect(committedAt).toBeGreaterThan(0);
    expect((await closed) - committedAt).toBeLessThan(1_000);
    lock.release();
  });
});

describe('expiry and primary-password change (last: they change carol\'s account)', () => {
  it('signs out a session whose password expires, then one revoked by a primary-password change', async () => {
    // `steady` first: making a password costs two scrypt runs (primary check, data-key unwrap),
    // and those of `expiring` already count against its lifetime; both logins must fit in it.
    const steady = await postern.newPassword('carol', CAROL_PRIMARY, { label: 'steady' });
    const expiring = await postern.newPassword('carol', CAROL_PRIMARY, { label: 'expiring', expires: new Date(Date.now() + 3_000).toISOString() });
    const a = await idleSession(expiring.password);
    const b = await idleSession(steady.password);
    const expired = await a.readUntil((l) => l.startsWith('* BYE'), 6_000);
    expect(expired.at(-1)).toBe('* BYE This app-specific password has expired; signing out.');
    await a.closed;
    const newPrimary = 'carol-new-primary-Secret-5';
    postern.rememberSecret(newPrimary);
    await postern.accounts.setPrimaryPassword('carol', newPrimary);
    const changed = await b.readUntil((l) => l.startsWith('* BYE'), 3_000);
    expect(changed.at(-1)).toBe('* BYE The account password changed, which revoked every app-specific password; signing out.');
    await b.closed;
  });
});
