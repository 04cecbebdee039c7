/**
 * Passkey rules that the browser test cannot reach cheaply, against a real SQLite store. Pins:
 *  - the RP comes from the page's address: HTTPS at a host name only (WebAuthn refuses IP addresses);
 *  - a session's challenge is taken once, only for its purpose, only before it expires, and never
 *    by another session;
 *  - a signature count is stored only when it moves forward (or stays zero for counter-less
 *    authenticators): a replayed or cloned count is refused by the UPDATE itself;
 *  - a response that is not a WebAuthn response is refused and recorded, without throwing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createAuthFixture, type AuthFixture } from '../../test/helpers/auth-fixture.js';
import { PasskeyService, relyingPartyOf } from './passkeys.js';

const WHERE = { address: '192.0.2.31', browser: 'Test/1.0' };

let f: AuthFixture;
afterEach(async () => f?.close());

async function fixture() {
  f = createAuthFixture({ clock: 'movable' });
  await f.addUser('hanna', 'hanna-primary-Secret-1');
  const account = await f.accounts.getAccount('hanna');
  const session = () => f.store.portalSessions.insert({ tokenDigest: Buffer.from(Math.random().toString()), accountId: account.id, stage: 'password', at: f.now.value, primaryChangedAt: account.primaryChangedAt, address: WHERE.address, browser: WHERE.browser });
  return { account, session };
}

describe('passkeys', () => {
  it('the RP is the page address: HTTPS at a host name, never an IP address', () => {
    expect(relyingPartyOf('https://account.example.org:8444/', 'postern')).toEqual({ id: 'account.example.org', origin: 'https://account.example.org:8444', name: 'postern' });
    expect(relyingPartyOf('https://localhost/', 'postern')?.origin).toBe('https://localhost');
    expect(relyingPartyOf('https://192.0.2.1:8444/', 'postern')).toBeNull();
    expect(relyingPartyOf('https://[2001:db8::1]/', 'postern')).toBeNull();
    expect(relyingPartyOf('http://account.example.org/', 'postern')).toBeNull();
    expect(relyingPartyOf(null, 'postern')).toBeNull();
  });

  it('a challenge is taken once, for its purpose, by its session, before it expires', async () => {
    const { session } = await fixture();
    const [a, b] = [await session(), await session()];
    const sessions = f.store.portalSessions;
    const until = f.now.value + 120_000;
    await sessions.setChallenge(a, 'challenge-one', 'authenticate', until);
    expect(await sessions.takeChallenge(b, 'challenge-one', 'authenticate', f.now.value)).toBe(false);
    expect(await sessions.takeChallenge(a, 'challenge-one', 'register', f.now.value)).toBe(false);
    expect(await sessions.takeChallenge(a, 'challenge-one', 'authenticate', f.now.value)).toBe(true);
    expect(await sessions.takeChallenge(a, 'challenge-one', 'authenticate', f.now.value)).toBe(false);
    await sessions.setChallenge(a, 'challenge-two', 'authenticate', until);
    expect(await sessions.takeChallenge(a, 'challenge-two', 'authenticate', until)).toBe(false);
  });

  it('a signature count is stored only when it moves forward, or stays zero', async () => {
    const { account } = await fixture();
    const repo = f.store.passkeys;
    const id = await repo.insert({ accountId: account.id, credentialId: Buffer.from('cred-1'), publicKey: Buffer.from('key'), counter: 5, transports: ['internal'], name: 'Laptop', at: f.now.value });
    expect(await repo.recordUse(id, 5, f.now.value)).toBe(false);
    expect(await repo.recordUse(id, 4, f.now.value)).toBe(false);
    expect(await repo.recordUse(id, 6, f.now.value)).toBe(true);
    const zero = await repo.insert({ accountId: account.id, credentialId: Buffer.from('cred-2'), publicKey: Buffer.from('key'), counter: 0, transports: [], name: 'Synced', at: f.now.value });
    expect(await repo.recordUse(zero, 0, f.now.value)).toBe(true);
    expect(await repo.findByCredentialId(Buffer.from('cred-1'))).toMatchObject({ counter: 6, transports: ['internal'], lastUsedAt: f.now.value });
    expect((await repo.findByCredentialId(Buffer.from('cred-2')))?.transports).toEqual([]);
  });

  it('a response that is not a WebAuthn response is refused and recorded', async () => {
    const { account, session } = await fixture();
    const service = new PasskeyService(f.store, relyingPartyOf('https://localhost:8444/', 'postern'), () => f.now.value);
    const id = await session();
    await service.authenticationOptions(account, id);
    for (const junk of ['', 'null', '[]', '{"id":1}', '{"response":{"clientDataJSON":"!!"}}', 'x'.repeat(5000)]) {
      expect(await service.authenticate(account, id, junk, WHERE)).toBe(false);
    }
    expect((await service.register(account, id, '{}', 'Name', WHERE)).ok).toBe(false);
    const failed = (await f.store.events.listForAccount(account.id)).filter((e) => e.type === 'second_factor.failed');
    expect(failed).toHaveLength(6);
  });
});
