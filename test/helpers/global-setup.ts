// Vitest globalSetup: the integration tests need real Dovecot (with POP3), fetchmail, Postfix, Radicale, Cyrus httpd,
// Xandikos, HAProxy, fail2ban-regex, Chromium and PostgreSQL. When one is missing the run must fail loudly with the fix, never skip: a green CI without the servers proves nothing.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { promisify } from 'node:util';
import { findCyrus } from './cyrus.js';
import { findDovecot } from './dovecot.js';
import { findNextcloudParts } from './nextcloud.js';
import { findPostfix } from './postfix.js';
import { findRadicalePython } from './radicale.js';
import { CHROMIUM } from './browser.js';
import { findPostgresBin, startPostgres } from './postgres.js';
import { testEngine } from './test-database.js';
import type { TestProject } from 'vitest/node';

const run = promisify(execFile);
const FIX = 'Install them with scripts/install-test-deps.sh (Debian/Ubuntu, needs root or sudo)';

async function missing(): Promise<string[]> {
  const checks: Array<[string, () => Promise<unknown>]> = [
    [
      'dovecot (dovecot-core, dovecot-imapd, dovecot-pop3d, dovecot-submissiond, dovecot-lmtpd)',
      async () => run(await findDovecot(), ['--version']),
    ],
    ['dovecot POP3 (dovecot-pop3d)', () => access('/usr/lib/dovecot/pop3', constants.X_OK)],
    ['fetchmail (fetchmail)', () => run('fetchmail', ['--version']).catch((err: { stdout?: string }) => {
      // fetchmail --version exits 1 without a config file; it printed its version, so it is there.
      if (!/fetchmail release/i.test(err.stdout ?? '')) throw err;
    })],
    ['postfix (postfix)', async () => (await findPostfix(), run('/usr/sbin/postconf', ['-d', 'mail_version']))],
    ['radicale (python3 -c "import radicale")', () => findRadicalePython()],
    ['cyrus httpd, lmtpd, deliver and saslpasswd2 (cyrus-common, cyrus-caldav, sasl2-bin)', () => findCyrus()],
    ['xandikos and haproxy (xandikos, haproxy)', () => findNextcloudParts()],
    ['fail2ban-regex (fail2ban)', () => run('fail2ban-regex', ['--version'])],
    ['openssl', () => run('openssl', ['version'])],
    ['haproxy (haproxy)', () => run('haproxy', ['-v'])],
    // The account page's end-to-end tests drive Debian's browser (test/helpers/browser.ts).
    ['chromium (chromium)', () => run(CHROMIUM, ['--version'])],
    // The PostgreSQL store's tests run a real server (test/helpers/postgres.ts).
    ['postgresql (postgresql)', async () => run(`${findPostgresBin()}/postgres`, ['--version'])],
  ];
  const results = await Promise.all(checks.map(([name, check]) => check().then(() => null, () => name)));
  return results.filter((name): name is string => name !== null);
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const absent = await missing();
  if (absent.length > 0) {
    throw new Error(`Integration test dependencies missing: ${absent.join('; ')}. ${FIX}.`);
  }
  // The PostgreSQL pass of the matrix (test/helpers/test-database.ts): one server for the whole
  // run, a fresh database on it per postern; stopping it at teardown removes them all.
  if (testEngine() !== 'postgres') {
    project.provide('postgresUrl', null);
    return undefined;
  }
  const server = await startPostgres();
  project.provide('postgresUrl', server.url);
  return () => server.stop();
}
