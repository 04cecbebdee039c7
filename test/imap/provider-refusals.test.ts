// The provider refuses a login for a reason that is not the stored credentials (issue 18, item 2),
// against a real Dovecot. Invariants pinned here:
// - Dovecot's `NO [LIMIT] …` (mail_max_userip_connections) and `NO [CONTACTADMIN] …` (a passdb
//   nologin with a reason) reach the client with the provider's code and text, not postern's
//   `NO [UNAVAILABLE] The mail server cannot be reached…`;
// - each is logged once as `upstream.login_refused` with the code (info for LIMIT, which passes by
//   itself; warn for CONTACTADMIN, which needs someone), never as `upstream.fault`, and the account
//   is not flagged as having rejected credentials;
// - a provider text that carries the upstream password (Dovecot echoes a passdb reason as it is) is
//   never relayed nor logged: the client gets a fixed sentence for the code;
// - the stored credentials really refused (a bare NO / AUTHENTICATIONFAILED) still flag the account.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import type { LineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapConfig, quoted, rawTls } from './support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-1' };
const CAROL = { name: 'carol', password: 'carol-real-Secret-2', extraFields: 'nologin=y reason=Account-suspended-by-the-provider.' };
// A provider whose refusal text quotes what it was sent: here, the passdb reason holds the password.
const MALLORY = { name: 'mallory', password: 'mallory-real-Secret-3', extraFields: 'nologin=y reason=Locked:mallory-real-Secret-3' };
const WRONG = { name: 'wendy', password: 'wendy-real-Secret-4' };
const PRIMARY = 'Primary-passw0rd-for-all';
const INFO = 30;
const WARN = 40;

let dovecot: DovecotServer;
let postern: PosternHarness;
const passwords: Record<string, string> = {};

beforeAll(async () => {
  dovecot = await startDovecot({
    users: [ALICE, CAROL, MALLORY, WRONG],
    extraConfig: 'protocol imap {\n  mail_max_userip_connections = 1\n}\n',
  });
  postern = await startPostern({ config: { imap: imapConfig(dovecot, 'tls') }, secrets: [ALICE.password, CAROL.password, MALLORY.password, WRONG.password] });
  for (const user of [ALICE, CAROL, MALLORY]) await postern.addUser(user.name, PRIMARY, { mode: 'password', user: user.name, secret: user.password });
  // Postern holds a stale password for wendy: Dovecot refuses it with AUTHENTICATIONFAILED.
  await postern.addUser(WRONG.name, PRIMARY, { mode: 'password', user: WRONG.name, secret: 'wendy-stale-Secret-0' });
  for (const user of [ALICE, CAROL, MALLORY, WRONG]) passwords[user.name] = (await postern.newPassword(user.name, PRIMARY)).password;
});

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

async function login(user: string, tag = 'a'): Promise<{ client: LineClient; answer: string }> {
  const client = await rawTls(postern);
  client.write(`${tag} LOGIN ${user} ${quoted(passwords[user]!)}\r\n`);
  const lines = await client.readUntil((l) => l.startsWith(`${tag} `), 10_000);
  return { client, answer: lines[lines.length - 1]! };
}

const statusOf = async (login: string) => (await postern.app.store.accounts.findByLogin(login))?.upstreamStatus;
const refusalsOf = (user: string) => postern.logs.events('upstream.login_refused').filter((e) => e.user === user);
const faultsOf = (user: string) => postern.logs.events('upstream.fault').filter((e) => e.user === user);

describe('the provider refuses for a reason of its own', () => {
  it('Dovecot\'s NO [LIMIT] reaches the client as Dovecot said it, logged at info, the account not flagged', async () => {
    const first = await login('alice');
    expect(first.answer).toMatch(/^a OK \[CAPABILITY /);
    try {
      const second = await login('alice', 'b');
      expect(second.answer).toBe('b NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)');
      second.client.close();
    } finally {
      first.client.close();
    }
    const [refusal, ...more] = refusalsOf('alice');
    expect(more).toEqual([]);
    expect(refusal).toMatchObject({ level: INFO, protocol: 'imap', code: 'LIMIT', temporary: true, stage: 'connect' });
    expect(faultsOf('alice')).toEqual([]);
    await expect.poll(() => statusOf('alice'), { timeout: 5_000 }).toBe('ok');
  });

  it('a passdb nologin with a reason gives NO [CONTACTADMIN] and its text, logged at warn, the account not flagged', async () => {
    const { client, answer } = await login('carol');
    expect(answer).toBe('a NO [CONTACTADMIN] Account-suspended-by-the-provider.');
    // The session goes on: the client may try again (postern opened a fresh upstream connection).
    client.write(`b LOGIN carol ${quoted(passwords.carol!)}\r\n`);
    expect(await client.readLine(10_000)).toBe('b NO [CONTACTADMIN] Account-suspended-by-the-provider.');
    client.close();
    expect(refusalsOf('carol')).toHaveLength(2);
    expect(refusalsOf('carol')[0]).toMatchObject({ level: WARN, code: 'CONTACTADMIN', temporary: false });
    expect(faultsOf('carol')).toEqual([]);
    expect(postern.logs.events('upstream.credentials_rejected').filter((e) => e.user === 'carol')).toEqual([]);
    expect(await statusOf('carol')).toBe('unknown');
  });

  it('provider text echoing the stored password is not relayed: a fixed sentence for the code, and none in the log', async () => {
    const { client, answer } = await login('mallory');
    expect(answer).toBe('a NO [CONTACTADMIN] The mail server refused this account; contact the administrator.');
    expect(answer).not.toContain(MALLORY.password);
    client.close();
    const [refusal] = refusalsOf('mallory');
    expect(refusal).toMatchObject({ code: 'CONTACTADMIN', text: null });
    for (const line of postern.logs.lines) expect(line).not.toContain(MALLORY.password);
    expect(await statusOf('mallory')).toBe('unknown');
  });

  it('the stored credentials refused (AUTHENTICATIONFAILED) still flag the account', async () => {
    const { client, answer } = await login('wendy');
    expect(answer).toMatch(/^a NO \[UNAVAILABLE\] The mail server refused the credentials postern holds/);
    client.close();
    expect(refusalsOf('wendy')).toEqual([]);
    // The flag goes through the write queue after the answer: waited for, not read at once.
    await expect.poll(() => statusOf('wendy'), { timeout: 5_000 }).toBe('rejected');
  });
});
