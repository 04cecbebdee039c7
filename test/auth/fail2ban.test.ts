/**
 * The shipped fail2ban filter against REAL postern log lines, through Debian's fail2ban-regex.
 * Pins: every refused login (wrong password, unknown user, malformed login, revoked password,
 * primary password, throttled) matches once with the client's address — IPv4, IPv6, and
 * IPv4-mapped IPv6 as IPv4 — and with the line's own timestamp; successes and every other line
 * do not match; a login crafted to look like another address cannot redirect the ban.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { primaryCheckPool } from '../../src/auth/primary-check-pool.js';
import { PenaltyThrottle } from '../../src/auth/penalty-throttle.js';
import { createAuthFixture, type AuthFixture } from '../helpers/auth-fixture.js';

const run = promisify(execFile);
const FILTER = fileURLToPath(new URL('../../config/fail2ban/filter.d/postern.conf', import.meta.url));
const JAIL = fileURLToPath(new URL('../../config/fail2ban/jail.d/postern.conf', import.meta.url));
const PRIMARY = 'primary password for fail2ban';

let f: AuthFixture;
let logFile: string;

beforeAll(async () => {
  f = createAuthFixture({
    checker: primaryCheckPool({ workers: 1 }),
    throttle: (log) => new PenaltyThrottle({ baseDelayMs: 0, maxDelayMs: 0, blockAfterFailures: 3, blockMs: 60_000, windowMs: 60_000, log }),
  });
  await f.addUser('alice@example.test', PRIMARY);
  const good = await f.newPassword('alice@example.test', PRIMARY);
  const revoked = await f.newPassword('alice@example.test', PRIMARY);
  await f.accounts.revokePassword('alice@example.test', revoked.publicId);
  const steps: Array<[string, string, string]> = [
    ['alice@example.test', good.password, '192.0.2.1'],
    ['alice@example.test', 'wrong-password-one', '192.0.2.2'],
    ['nobody@example.test', 'wrong-password-two', '2001:db8::77'],
    ['alice@example.test', good.password, '2001:db8::1'],
    ['alice@example.test', PRIMARY, '::ffff:192.0.2.44'],
    ['alice@example.test', revoked.password, '192.0.2.3'],
    ['bad login', 'wrong-password-three', '192.0.2.4'],
    ['x","ip":"6.6.6.6', 'wrong-password-four', '192.0.2.5'],
    ['victim1@example.test', 'wrong-password-five', '198.51.100.9'],
    ['victim2@example.test', 'wrong-password-six', '198.51.100.9'],
    ['victim3@example.test', 'wrong-password-seven', '198.51.100.9'],
    // Blocked now: refused unchecked, still one line for fail2ban.
    ['alice@example.test', good.password, '198.51.100.9'],
    ['alice@example.test', good.password, '192.0.2.1'],
  ];
  for (const [login, password, ip] of steps) await f.attempt(login, password, ip);
  f.logs.logger.info({ event: 'listener.started', listener: 'imap.implicitTls', host: '127.0.0.1', port: 993 }, 'listening imap.implicitTls on 127.0.0.1:993');
  logFile = path.join(f.dir, 'postern.log');
  writeFileSync(logFile, f.logs.lines.join('\n') + '\n');
});

afterAll(async () => {
  await f?.close();
});

/** Runs fail2ban-regex and returns one [address, unix time] per matched line. */
async function matches(file: string): Promise<Array<[string, number]>> {
  const { stdout } = await run('fail2ban-regex', ['-o', 'row', file, FILTER], { timeout: 60_000 });
  return stdout.trim().split('\n').filter(Boolean).map((line) => {
    const m = /^\['([^']+)',\s*(\d+)/.exec(line);
    if (!m) throw new Error(`unexpected fail2ban-regex output: ${line}`);
    return [m[1]!, Number(m[2])];
  });
}

it('matches each refused login once, with its address and time, and nothing else', async () => {
  const failures = f.logs.entries().filter((e) => e.event === 'auth.refused' || e.event === 'auth.primary_refused');
  expect(failures.map((e) => e.reason)).toEqual([
    'bad_password', 'unknown_user', 'primary_password', 'password_revoked', 'invalid_login', 'unknown_user',
    'unknown_user', 'unknown_user', 'unknown_user', 'throttled',
  ]);
  // Successes, the block notice and the listener line are in the file too, and must not match.
  expect(f.logs.events('auth.ok')).toHaveLength(3);
  expect(f.logs.events('auth.blocked')).toHaveLength(1);

  const found = await matches(logFile);
  expect(found.map(([ip]) => ip)).toEqual([
    '192.0.2.2', '2001:db8::77', '192.0.2.44', '192.0.2.3', '192.0.2.4', '192.0.2.5',
    '198.51.100.9', '198.51.100.9', '198.51.100.9', '198.51.100.9',
  ]);
  expect(found.map(([, at]) => at)).toEqual(failures.map((e) => Math.floor(Date.parse(e.time as string) / 1000)));
});

it('still matches when a syslog daemon prefixes the lines', async () => {
  const prefixed = path.join(f.dir, 'syslog.log');
  writeFileSync(prefixed, f.logs.lines.map((l) => `Nov 25 10:00:00 mailhost postern[4242]: ${l}`).join('\n') + '\n');
  expect((await matches(prefixed)).map(([ip]) => ip)).toHaveLength(10);
});

it('ships a jail that uses the filter', async () => {
  const { readFileSync } = await import('node:fs');
  const jail = readFileSync(JAIL, 'utf8');
  expect(jail).toMatch(/^\[postern\]$/m);
  expect(jail).toMatch(/^filter\s*=\s*postern$/m);
  expect(jail).toMatch(/^logpath\s*=/m);
});

it('matches a refused POP3 login too: a protocol name with a digit in it', async () => {
  const before = f.logs.lines.length;
  await f.attempt('alice@example.test', 'wrong-password-eight', '192.0.2.95', 'pop3');
  const lines = f.logs.lines.slice(before);
  expect(lines.some((l) => l.includes('"protocol":"pop3"'))).toBe(true);
  const file = path.join(f.dir, 'pop3.log');
  writeFileSync(file, lines.join('\n') + '\n');
  expect((await matches(file)).map(([ip]) => ip)).toEqual(['192.0.2.95']);
});
