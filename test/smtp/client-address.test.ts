// Passing the real client's address to a trusted upstream (XCLIENT ADDR), against a scripted fake:
// Dovecot's test instance does not trust postern's address, so the real server cannot show it.
// Invariants pinned here:
// - with `trusted: true` and XCLIENT offered, postern sends XCLIENT ADDR before AUTH, then EHLO again;
// - without `trusted`, the upstream never learns the address;
// - an upstream refusing XCLIENT does not stop mail.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { startFakeUpstream, type FakeScript, type FakeUpstream } from './fake-upstream.js';
import { assertNoInternalErrors, plainToken, rawSession, say } from './fixture.js';

const PRIMARY = 'Erin-primary-passw0rd';
const EHLO_WITH_XCLIENT = '250-fake.example\r\n250-XCLIENT ADDR NAME PORT\r\n250 AUTH PLAIN';
let script: FakeScript = {};
let fake: FakeUpstream;
const posterns: PosternHarness[] = [];

beforeAll(async () => {
  // XCLIENT accepted: the upstream greets afresh (Postfix XCLIENT_README).
  const standard = (c: string) => (c.startsWith('EHLO') ? EHLO_WITH_XCLIENT : c.startsWith('XCLIENT') ? '220 fake.example ESMTP' : undefined);
  fake = await startFakeUpstream({ onCommand: (c, ctx) => script.onCommand?.(c, ctx) ?? standard(c) });
});
afterAll(async () => {
  for (const p of posterns) await p.stop();
  await fake?.stop();
  posterns.forEach(assertNoInternalErrors);
});

async function postern(trusted: boolean): Promise<PosternHarness> {
  const harness = await startPostern({
    config: { smtp: { implicitTls: { port: 0 }, upstream: { host: fake.host, port: fake.port, security: 'plain', trusted } } },
    secrets: ['erin-upstream-Secret'],
  });
  posterns.push(harness);
  await harness.addUser('erin', PRIMARY, { mode: 'password', secret: 'erin-upstream-Secret' });
  return harness;
}

/** Commands the fake received during one AUTH (and a MAIL to show the session works). */
async function upstreamCommands(harness: PosternHarness): Promise<string[]> {
  const { password } = await harness.newPassword('erin', PRIMARY);
  const client = await rawSession(harness.port('smtp.implicitTls'), harness.caPem);
  const mark = fake.commands.length;
  expect(await say(client, `AUTH PLAIN ${plainToken('erin', password)}`)).toMatch(/^235 /);
  expect(await say(client, 'MAIL FROM:<erin@example.org>')).toMatch(/^250 /);
  client.close();
  return fake.commands.slice(mark).map((c) => (c.startsWith('AUTH PLAIN') ? 'AUTH PLAIN …' : c));
}

it('tells a trusted upstream the client address with XCLIENT before AUTH', async () => {
  const commands = await upstreamCommands(await postern(true));
  expect(commands.slice(0, 5)).toEqual([expect.stringMatching(/^EHLO /), 'XCLIENT ADDR=127.0.0.1', expect.stringMatching(/^EHLO /), 'AUTH PLAIN …', 'MAIL FROM:<erin@example.org>']);
});

it('does not tell an untrusted upstream', async () => {
  const commands = await upstreamCommands(await postern(false));
  expect(commands.some((c) => c.startsWith('XCLIENT'))).toBe(false);
  expect(commands).toContain('AUTH PLAIN …');
});

it('carries on when the upstream refuses XCLIENT', async () => {
  script = { onCommand: (c) => (c.startsWith('XCLIENT') ? '550 5.7.0 not authorized' : undefined) };
  const commands = await upstreamCommands(posterns[0]!);
  expect(commands).toContain('XCLIENT ADDR=127.0.0.1');
  expect(commands).toContain('MAIL FROM:<erin@example.org>');
  script = {};
});

it('introduces itself upstream by its configured name, never the machine hostname (host-name disclosure)', async () => {
  const harness = await startPostern({
    config: { hostnames: ['mail.postern.test', 'localhost'], smtp: { implicitTls: { port: 0 }, upstream: { host: fake.host, port: fake.port, security: 'plain' } } },
    secrets: ['erin-upstream-Secret'],
  });
  posterns.push(harness);
  await harness.addUser('erin', PRIMARY, { mode: 'password', secret: 'erin-upstream-Secret' });
  const commands = await upstreamCommands(harness);
  const ehlos = commands.filter((c) => c.startsWith('EHLO '));
  expect(ehlos.length).toBeGreaterThan(0);
  for (const ehlo of ehlos) expect(ehlo).toBe('EHLO mail.postern.test');
});
