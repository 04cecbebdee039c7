// POP3 goes through the same throttle as every protocol (src/auth/sign-in.ts): once an address
// has failed often enough it is blocked, and then even the right app password is refused, in the
// very words of a wrong one, without the upstream being asked; the block is logged once.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { pop3Config, rawTls } from './support.js';

const DAVE = { name: 'dave', password: 'dave-real-Secret-5' };
const PRIMARY = 'dave-primary-Secret-6';

let dovecot: DovecotServer;
let postern: PosternHarness;
let password: string;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [DAVE] });
  postern = await startPostern({
    config: {
      pop3: pop3Config(dovecot, 'tls', { limits: { maxAuthFailures: 10 } }),
      auth: { throttle: { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 3, blockMs: 60_000, windowMs: 60_000 } },
    },
    secrets: [DAVE.password],
  });
  await postern.addUser('dave', PRIMARY, { mode: 'password', secret: DAVE.password });
  password = (await postern.newPassword('dave', PRIMARY)).password;
}, 60_000);

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

it('a blocked address is refused even with the right password, like a wrong one, and no upstream login is tried', async () => {
  const c = await rawTls(postern);
  for (let i = 0; i < 3; i++) {
    // Distinct wrong passwords: the throttle does not count the same wrong password twice.
    c.write(`USER dave\r\nPASS wrong-password-${i}\r\n`);
    expect(await c.readLine()).toBe('+OK Send PASS.');
    expect(await c.readLine()).toBe('-ERR [AUTH] Authentication failed.');
  }
  c.write(`USER dave\r\nPASS ${password}\r\n`);
  expect(await c.readLine()).toBe('+OK Send PASS.');
  expect(await c.readLine()).toBe('-ERR [AUTH] Authentication failed.');
  c.close();
  expect(postern.logs.events('auth.blocked')).toHaveLength(1);
  expect(postern.logs.events('session.started')).toHaveLength(0);
  expect(postern.logs.events('auth.refused').at(-1)).toMatchObject({ protocol: 'pop3', reason: 'throttled' });
}, 30_000);
