// The provider refuses AUTH for a reason that is not the stored credentials (issue 18, item 2),
// against a real Dovecot submission server. Invariants pinned here:
// - Dovecot's `421 4.7.0 Maximum number of connections…` (mail_max_userip_connections, and the
//   connection closed after it, as Dovecot does) and
//   `525 5.7.13 <reason>` (a passdb nologin, RFC 5248's account disabled) reach the client with the
//   provider's basic and enhanced codes and its text, not postern's `454 4.7.0 … cannot be reached`;
// - each is logged as `upstream.login_refused` with the code (info for the 4xx, warn for the 5xx),
//   never as `upstream.fault`, and the account is not flagged;
// - a provider text that carries the upstream password is never relayed nor logged;
// - the stored credentials really refused (535 5.7.8) still flag the account.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import type { LineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { plainToken, rawSession, say } from './fixture.js';

const ALICE = { name: 'alice', password: 'alice-upstream-Secret-1' };
const CAROL = { name: 'carol', password: 'carol-upstream-Secret-2', extraFields: 'nologin=y reason=Account-suspended-by-the-provider.' };
const MALLORY = { name: 'mallory', password: 'mallory-upstream-Secret-3', extraFields: 'nologin=y reason=Locked:mallory-upstream-Secret-3' };
const WENDY = { name: 'wendy', password: 'wendy-upstream-Secret-4' };
const PRIMARY = 'Primary-passw0rd-for-all';
const INFO = 30;
const WARN = 40;

let dovecot: DovecotServer;
let postern: PosternHarness;
const passwords: Record<string, string> = {};

beforeAll(async () => {
  dovecot = await startDovecot({
    users: [ALICE, CAROL, MALLORY, WENDY],
    extraConfig: 'protocol submission {\n  mail_max_userip_connections = 1\n}\n',
  });
  postern = await startPostern({
    config: { smtp: { implicitTls: { port: 0 }, starttls: { port: 0 }, upstream: { host: dovecot.host, port: dovecot.submissionsPort, security: 'tls', caFile: dovecot.caFile } } },
    secrets: [ALICE.password, CAROL.password, MALLORY.password, WENDY.password],
  });
  for (const user of [ALICE, CAROL, MALLORY]) await postern.addUser(user.name, PRIMARY, { mode: 'password', user: user.name, secret: user.password });
  await postern.addUser(WENDY.name, PRIMARY, { mode: 'password', user: WENDY.name, secret: 'wendy-stale-Secret-0' });
  for (const user of [ALICE, CAROL, MALLORY, WENDY]) passwords[user.name] = (await postern.newPassword(user.name, PRIMARY)).password;
});

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

async function auth(user: string): Promise<{ client: LineClient; answer: string }> {
  const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
  return { client, answer: await say(client, `AUTH PLAIN ${plainToken(user, passwords[user]!)}`) };
}

const statusOf = async (login: string) => (await postern.app.store.accounts.findByLogin(login))?.upstreamStatus;
const refusalsOf = (user: string) => postern.logs.events('upstream.login_refused').filter((e) => e.user === user);
const faultsOf = (user: string) => postern.logs.events('upstream.fault').filter((e) => e.user === user);

describe('the provider refuses AUTH for a reason of its own', () => {
  it('Dovecot\'s 421 4.7.0 connection limit reaches the client as Dovecot said it, logged at info, the account not flagged', async () => {
    const first = await auth('alice');
    expect(first.answer).toMatch(/^235 /);
    try {
      const second = await auth('alice');
      expect(second.answer).toBe('421 4.7.0 Maximum number of connections from user+IP exceeded (mail_max_userip_connections=1)');
      // As Dovecot does after its 421 (RFC 5321 §3.8): the connection is closed.
      await second.client.closed;
    } finally {
      first.client.close();
    }
    expect(refusalsOf('alice')).toHaveLength(1);
    expect(refusalsOf('alice')[0]).toMatchObject({ level: INFO, protocol: 'smtp', code: '421 4.7.0', temporary: true });
    expect(faultsOf('alice')).toEqual([]);
    await expect.poll(() => statusOf('alice'), { timeout: 5_000 }).toBe('ok');
  });

  it('a passdb nologin gives 525 5.7.13 with its text, logged at warn, the account not flagged', async () => {
    const { client, answer } = await auth('carol');
    expect(answer).toBe('525 5.7.13 Account-suspended-by-the-provider.');
    client.close();
    expect(refusalsOf('carol')[0]).toMatchObject({ level: WARN, code: '525 5.7.13', temporary: false });
    expect(faultsOf('carol')).toEqual([]);
    expect(await statusOf('carol')).toBe('unknown');
  });

  it('provider text echoing the stored password is not relayed: a fixed sentence, the codes kept, none in the log', async () => {
    const { client, answer } = await auth('mallory');
    expect(answer).toBe('525 5.7.13 The mail provider refused the login; contact the administrator.');
    client.close();
    expect(refusalsOf('mallory')[0]).toMatchObject({ code: '525 5.7.13', text: null });
    for (const line of postern.logs.lines) expect(line).not.toContain(MALLORY.password);
    expect(await statusOf('mallory')).toBe('unknown');
  });

  it('the stored credentials refused (535 5.7.8) still flag the account', async () => {
    const { client, answer } = await auth('wendy');
    expect(answer).toMatch(/^454 4\.7\.0 Temporary authentication failure: the mail provider refused the credentials/);
    client.close();
    expect(refusalsOf('wendy')).toEqual([]);
    // The flag goes through the write queue after the answer: waited for, not read at once.
    await expect.poll(() => statusOf('wendy'), { timeout: 5_000 }).toBe('rejected');
  });
});
