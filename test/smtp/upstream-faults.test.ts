// Upstream misbehaviour a real server will not produce on demand, with a scripted fake upstream.
// Invariants pinned here:
// - the client is told 250 only after the upstream said 250: an upstream lost mid-message means a
//   4xx for the client, never a success;
// - an upstream that hangs is given up after the configured timeout (454 at AUTH);
// - the upstream's own refusal after DATA, multi-line texts included, reaches the client;
// - an upstream gone between transactions is reconnected transparently; gone in the middle of
//   one, the client session ends with 421;
// - a hostile upstream (endless reply line) cannot make postern buffer without limit;
// - the provider's refusals of AUTH that Dovecot will not give on demand (454, 534, 538, 550 5.7.x)
//   reach the client with their codes and text and do not flag the account; 501 and a 421 that is
//   not about policy stay faults; a refusal at a reconnect for a new transaction is 451 / 554.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PosternHarness } from '../helpers/postern.js';
import { startPostern } from '../helpers/postern.js';
import { startFakeUpstream, type FakeScript, type FakeUpstream } from './fake-upstream.js';
import { assertNoInternalErrors, plainToken, rawSession, say } from './fixture.js';

const PRIMARY = 'Erin-primary-passw0rd';
let script: FakeScript = {};
let fake: FakeUpstream;
let postern: PosternHarness;

beforeAll(async () => {
  // The script object is swapped per test; the fake reads it at every event.
  const live: FakeScript = {
    get greeting() { return script.greeting; },
    onCommand: (c, ctx) => script.onCommand?.(c, ctx),
    onDataChunk: (n, ctx) => script.onDataChunk?.(n, ctx),
    onMessage: (m, ctx) => (script.onMessage ? script.onMessage(m, ctx) : '250 2.0.0 Ok: queued as FAKE'),
  };
  fake = await startFakeUpstream(live);
  postern = await startPostern({
    config: { smtp: { implicitTls: { port: 0 }, upstream: { host: fake.host, port: fake.port, security: 'plain', greetingTimeoutMs: 400, connectTimeoutMs: 1_000 } } },
    secrets: ['erin-upstream-Secret'],
  });
  await postern.addUser('erin', PRIMARY, { mode: 'password', secret: 'erin-upstream-Secret' });
});
afterEach(() => {
  script = {};
});
afterAll(async () => {
  await postern?.stop();
  await fake?.stop();
  assertNoInternalErrors(postern);
});

async function authenticated() {
  const { password } = await postern.newPassword('erin', PRIMARY);
  const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
  expect(await say(client, `AUTH PLAIN ${plainToken('erin', password)}`)).toMatch(/^235 /);
  return client;
}

async function openTransaction() {
  const client = await authenticated();
  expect(await say(client, 'MAIL FROM:<erin@example.org>')).toMatch(/^250 /);
  expect(await say(client, 'RCPT TO:<someone@example.org>')).toMatch(/^250 /);
  return client;
}

describe('upstream faults', () => {
  it('gives up on an upstream that never greets: 454 at AUTH', async () => {
    script = { greeting: null };
    const { password } = await postern.newPassword('erin', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('erin', password)}`)).toMatch(/^454 4\.7\.0 /);
    client.close();
  });

  it('sends the real credentials upstream with PLAIN', async () => {
    const client = await authenticated();
    const auth = fake.commands.filter((c) => c.startsWith('AUTH PLAIN ')).at(-1)!;
    expect(Buffer.from(auth.slice('AUTH PLAIN '.length), 'base64').toString()).toBe('\0erin\0erin-upstream-Secret');
    client.close();
  });

  it('an upstream lost mid-message gives 451, never 250; the next message reconnects', async () => {
    script = { onDataChunk: (received, ctx) => (received > 50_000 ? ctx.drop() : undefined) };
    const client = await openTransaction();
    const before = fake.messages.length;
    expect(await say(client, 'DATA')).toMatch(/^354 /);
    client.write(`Subject: cut\r\n\r\n${'z'.repeat(200_000)}\r\n`);
    expect(await say(client, '.')).toMatch(/^451 4\.4\.2 /);
    script = {};
    const connections = fake.connections();
    expect(await say(client, 'MAIL FROM:<erin@example.org>')).toMatch(/^250 /);
    expect(fake.connections()).toBe(connections + 1);
    expect(await say(client, 'RCPT TO:<someone@example.org>')).toMatch(/^250 /);
    expect(await say(client, 'DATA')).toMatch(/^354 /);
    expect(await say(client, 'Subject: ok\r\n\r\nfine\r\n.')).toBe('250 2.0.0 Ok: queued as FAKE');
    expect(fake.messages.length).toBe(before + 1);
    client.close();
  });

  it("relays the upstream's refusal after DATA, multi-line text joined", async () => {
    script = { onMessage: () => '554-5.7.1 Message refused:\r\n554 5.7.1 looks like spam' };
    const client = await openTransaction();
    expect(await say(client, 'DATA')).toMatch(/^354 /);
    expect(await say(client, 'Subject: spam\r\n\r\nbuy\r\n.')).toBe('554 5.7.1 Message refused: 5.7.1 looks like spam');
    client.close();
  });

  it('relays a refused DATA command and resets the upstream before the next transaction', async () => {
    script = { onCommand: (c) => (c === 'DATA' ? '451 4.3.0 try later' : undefined) };
    const client = await openTransaction();
    expect(await say(client, 'DATA')).toMatch(/^354 /); // smtp-server answers 354 itself …
    expect(await say(client, 'Subject: x\r\n\r\ny\r\n.')).toBe('451 4.3.0 try later'); // … the upstream's verdict follows
    script = {};
    const mark = fake.commands.length;
    expect(await say(client, 'MAIL FROM:<erin@example.org>')).toMatch(/^250 /);
    expect(fake.commands.slice(mark)).toEqual(['RSET', 'MAIL FROM:<erin@example.org>']);
    client.close();
  });

  it('reconnects transparently when the upstream closed between transactions', async () => {
    const client = await authenticated();
    const connections = fake.connections();
    fake.drop(connections); // the upstream goes away while postern's session is idle
    await new Promise((r) => setTimeout(r, 100));
    expect(await say(client, 'MAIL FROM:<erin@example.org>')).toMatch(/^250 /);
    expect(fake.connections()).toBe(connections + 1);
    client.close();
  });

  it('ends the client session with 421 when the upstream goes away mid-transaction', async () => {
    const connections = fake.connections();
    const client = await openTransaction();
    fake.drop(connections + 1);
    expect(await client.readLine(2_000)).toMatch(/^421 4\.4\.2 /);
    await client.closed;
  });

  it('survives an upstream that sends an endless reply line', async () => {
    script = { onCommand: (c, ctx) => (c.startsWith('RCPT') ? (ctx.write('250 '.padEnd(1_000_000, 'a')), null) : undefined) };
    const client = await authenticated();
    expect(await say(client, 'MAIL FROM:<erin@example.org>')).toMatch(/^250 /);
    expect(await say(client, 'RCPT TO:<someone@example.org>')).toMatch(/^421 4\.4\.2 /);
    await client.closed;
    await postern.logs.waitForEvent('upstream.fault');
  });
});


describe('upstream STARTTLS', () => {
  async function starttlsPostern(): Promise<PosternHarness> {
    const harness = await startPostern({
      config: { smtp: { implicitTls: { port: 0 }, upstream: { host: fake.host, port: fake.port, security: 'starttls', greetingTimeoutMs: 1_000 } } },
      secrets: ['erin-upstream-Secret'],
    });
    await harness.addUser('erin', PRIMARY, { mode: 'password', secret: 'erin-upstream-Secret' });
    return harness;
  }

  async function authAnswer(harness: PosternHarness): Promise<string> {
    const { password } = await harness.newPassword('erin', PRIMARY);
    const client = await rawSession(harness.port('smtp.implicitTls'), harness.caPem);
    const answer = await say(client, `AUTH PLAIN ${plainToken('erin', password)}`);
    client.close();
    return answer;
  }

  it('refuses to log in when the upstream does not offer STARTTLS (no downgrade to plaintext)', async () => {
    const harness = await starttlsPostern();
    try {
      const mark = fake.commands.length;
      expect(await authAnswer(harness)).toMatch(/^454 4\.7\.0 /);
      expect(fake.commands.slice(mark).some((c) => c.startsWith('AUTH'))).toBe(false);
      assertNoInternalErrors(harness);
    } finally {
      await harness.stop();
    }
  });

  it('refuses an upstream that sends more after its STARTTLS reply (response injection)', async () => {
    script = {
      onCommand: (c) => (c.startsWith('EHLO') ? '250-fake.example\r\n250-STARTTLS\r\n250 AUTH PLAIN' : c === 'STARTTLS' ? '220 2.0.0 go ahead\r\n235 2.7.0 injected' : undefined),
    };
    const harness = await starttlsPostern();
    try {
      const mark = fake.commands.length;
      expect(await authAnswer(harness)).toMatch(/^454 4\.7\.0 /);
      expect(fake.commands.slice(mark).some((c) => c.startsWith('AUTH'))).toBe(false);
      await harness.logs.waitForEvent('upstream.fault');
      assertNoInternalErrors(harness);
    } finally {
      await harness.stop();
    }
  });
});

describe('the provider refuses AUTH for a reason of its own', () => {
  const authAnswer = (answer: string, onConnection?: number): FakeScript => ({
    onCommand: (c, ctx) => (c.startsWith('AUTH ') && (onConnection === undefined || ctx.connection === onConnection) ? answer : undefined),
  });

  it.each([
    ['454 4.7.0 Temporary authentication failure', true],
    ['534 5.7.9 Authentication mechanism is too weak', false],
    ['538 5.7.11 Encryption required for requested authentication mechanism', false],
    ['550 5.7.1 Sending from this network is not allowed', false],
  ])('%s reaches the client as it came, the account not flagged', async (answer, temporary) => {
    script = authAnswer(answer);
    const { password } = await postern.newPassword('erin', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('erin', password)}`)).toBe(answer);
    client.close();
    expect(postern.logs.events('upstream.login_refused').at(-1)).toMatchObject({ code: answer.split(' ').slice(0, 2).join(' '), temporary });
    expect((await postern.app.store.accounts.findByLogin('erin'))?.upstreamStatus).not.toBe('rejected');
  });

  it.each(['501 5.5.2 Syntax error in parameters', '421 4.3.2 Service shutting down'])('%s is a fault: 454 4.7.0 and upstream.fault', async (answer) => {
    script = authAnswer(answer);
    const before = postern.logs.events('upstream.fault').length;
    const { password } = await postern.newPassword('erin', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('erin', password)}`)).toMatch(/^454 4\.7\.0 Temporary authentication failure: the mail provider cannot be reached/);
    client.close();
    expect(postern.logs.events('upstream.fault').length).toBe(before + 1);
  });

  it.each([
    ['454 4.7.0 Temporary authentication failure', '451 4.7.0 Temporary authentication failure'],
    ['525 5.7.13 Account disabled', '554 5.7.13 Account disabled'],
  ])('refused with %s at a reconnect for a new transaction, MAIL gets %s', async (answer, expected) => {
    const client = await authenticated();
    const connections = fake.connections();
    script = authAnswer(answer, connections + 1);
    fake.drop(connections);
    await new Promise((r) => setTimeout(r, 100));
    expect(await say(client, 'MAIL FROM:<erin@example.org>')).toBe(expected);
    client.close();
    expect((await postern.app.store.accounts.findByLogin('erin'))?.upstreamStatus).not.toBe('rejected');
  });
});
