// The throttle flush attack end to end (issue 9, item 3): IMAP clients → postern → real Dovecot.
// Invariant: once a real account has a failure on record, guesses at made-up names, however many,
// cannot wipe that record, so the primary-password sentence is not given again to a fresh address
// inside the window (it would confirm one primary-password guess after another). The throttle's
// record cap is set small here so that the flood stays cheap; it is the same code at any cap.
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PRIMARY_PASSWORD_REFUSED_TEXT } from '../../src/auth/types.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapConfig, quoted } from './support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-1' };
const MAX_RECORDS = 10;
const FLOOD = 4 * MAX_RECORDS;
const AUTH_FAILED = 'NO [AUTHENTICATIONFAILED] Authentication failed.';

let dovecot: DovecotServer;
let postern: PosternHarness;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE] });
  postern = await startPostern({
    config: {
      imap: imapConfig(dovecot, 'tls', { limits: { maxAuthFailures: 100 } }),
      auth: { throttle: { baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 1000, blockMs: 0, windowMs: 600_000, maxRecords: MAX_RECORDS } },
    },
    secrets: [ALICE.password],
  });
  await postern.addUser('alice', ALICE.password);
});

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

/** A raw implicit-TLS client from `localAddress` (any of 127/8 is on loopback: one "address" per attacker host). */
async function from(localAddress: string): Promise<LineClient> {
  const client = await connectLineClient({
    host: '127.0.0.1', port: postern.port('imap.implicitTls'),
    tls: { ca: postern.caPem, servername: 'localhost', localAddress } as never,
  });
  await client.readLine();
  return client;
}

async function loginLine(client: LineClient, tag: string, login: string, password: string): Promise<string> {
  client.write(`${tag} LOGIN ${quoted(login)} ${quoted(password)}\r\n`);
  return client.readLine(10_000);
}

it('throttle flush attack: a flood of made-up names does not bring the primary-password sentence back for the next guess', async () => {
  const first = await from('127.0.0.7');
  expect(await loginLine(first, 'a1', 'alice', ALICE.password)).toBe(`a1 NO [AUTHENTICATIONFAILED] ${PRIMARY_PASSWORD_REFUSED_TEXT}`);
  first.close();

  const flooder = await from('127.0.0.3');
  for (let i = 0; i < FLOOD; i++) expect(await loginLine(flooder, `f${i}`, `made-up-${i}`, 'wrong-wrong-wrong')).toBe(`f${i} ${AUTH_FAILED}`);
  flooder.close();

  // A fresh address guessing the primary password learns nothing: the answer of any wrong password.
  const next = await from('127.0.0.8');
  expect(await loginLine(next, 'a2', 'alice', ALICE.password)).toBe(`a2 ${AUTH_FAILED}`);
  next.close();
  expect(postern.logs.events('auth.primary_refused')).toHaveLength(2); // still recognised and logged
  // 42 refused logins, each a bcrypt and (on PostgreSQL) a wait for the shared throttle's commit:
  // on a loaded two-core machine the PostgreSQL pass has needed more than the default 30 s.
}, 90_000);
