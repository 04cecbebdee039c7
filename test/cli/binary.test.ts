/**
 * The CLI as a real subprocess (`node bin/postern.js`, built dist/), on a workspace of its own.
 * Pinned here:
 *  - exit statuses: 0 done, 1 refused with exactly one line on stderr, 2 usage error (commander's
 *    own included); nothing on stdout when refused;
 *  - the account and password walkthrough works as the README shows it, with --json on listings;
 *  - secrets come from stdin only, and never appear in stdout/stderr — except the new password,
 *    printed exactly once by `password new`;
 *  - backups, certificate commands and config errors behave.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountService } from '../../src/accounts/service.js';
import { readKeyFile } from '../../src/crypto/keys.js';
import { openStore } from '../../src/store/index.js';
import { createWorkspace, runBinary, type CliResult, type RunOptions, type Workspace } from '../helpers/cli.js';
import { engine, openTestStore } from '../helpers/test-database.js';

const ALICE = 'Alice primary: correct horse';
const BOB = 'bob primary password';
const BOB_UPSTREAM = 'bob distinct provider secret';
let ws: Workspace;
const outputs: Array<{ args: readonly string[]; result: CliResult }> = [];
const secrets = new Set([ALICE, BOB, BOB_UPSTREAM, 'new primary for alice', 'wrong primary entirely']);
/** Each created app password with the stdout that announced it (the one allowed place). */
const announced = new Map<string, string>();

async function run(args: readonly string[], options?: RunOptions): Promise<CliResult> {
  const result = await ws.run(args, options);
  outputs.push({ args, result });
  return result;
}

function expectRefused(r: CliResult, message: RegExp, code = 1): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stdout).toBe('');
  expect(r.stderr.endsWith('\n')).toBe(true);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/^postern: /);
  expect(r.stderr).toMatch(message);
}

async function newPassword(login: string, primary: string, label: string, extra: string[] = []): Promise<{ id: string; password: string; stdout: string }> {
  const r = await run(['password', 'new', login, '--label', label, '--password-stdin', ...extra], { input: primary + '\n' });
  expect(r.code, r.stderr).toBe(0);
  const password = /^ {4}([a-z]{4}-[a-z]{4}-[a-z]{4}-[a-z]{4})$/m.exec(r.stdout)?.[1];
  const id = /^ {2}id: +([0-9a-f]{8})$/m.exec(r.stdout)?.[1];
  expect(password).toBeDefined();
  expect(id).toBeDefined();
  secrets.add(password!);
  announced.set(password!, r.stdout);
  return { id: id!, password: password!, stdout: r.stdout };
}

beforeAll(async () => {
  ws = await createWorkspace({
    hostnames: ['mail.example.test'],
    imap: { implicitTls: { port: 9993 }, starttls: { port: 9143 }, upstream: { host: 'imap.example.com', port: 993 } },
    pop3: { implicitTls: { port: 9995 }, starttls: { port: 9110 }, upstream: { host: 'pop.example.com', port: 995 } },
    dav: { listener: { port: 8443 }, caldavUpstream: 'https://caldav.example.com/' },
  });
});

afterAll(() => ws?.cleanup());

describe('accounts', () => {
  it('adds accounts with secrets from stdin, refuses duplicates, lists and shows them', async () => {
    const added = await run(['user', 'add', 'Alice@Example.org', '--password-stdin'], { input: ALICE + '\n' });
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/^added account alice@example\.org \(upstream mode password, upstream user alice@example\.org\)$/m);
    const bob = await run(['user', 'add', 'bob', '--password-stdin', '--upstream-secret-stdin', '--upstream-user', 'bob@provider.example'], { input: `${BOB}\n${BOB_UPSTREAM}\n` });
    expect(bob.code, bob.stderr).toBe(0);
    expectRefused(await run(['user', 'add', 'ALICE@example.org', '--password-stdin'], { input: 'x\n' }), /account "alice@example\.org" already exists/);

    const list = await run(['user', 'list', '--json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject([
      { login: 'alice@example.org', upstreamMode: 'password', upstreamUser: 'alice@example.org', upstreamStatus: 'unknown', activePasswords: 0 },
      { login: 'bob', upstreamUser: 'bob@provider.example' },
    ]);
    const table = await run(['user', 'list']);
    expect(table.stdout.split('\n')[0]).toMatch(/^LOGIN +MODE +UPSTREAM USER +UPSTREAM +ACTIVE PASSWORDS +CREATED$/);
    const show = await run(['user', 'show', 'ALICE@EXAMPLE.ORG']);
    expect(show.stdout).toMatch(/^upstream status: +unknown/m);
    expect(JSON.parse((await run(['user', 'show', 'bob', '--json'])).stdout)).toMatchObject({ login: 'bob', upstreamUser: 'bob@provider.example' });
  });

  it('stores a distinct upstream secret when asked to, and the primary otherwise', async () => {
    const config = path.join(ws.dir, 'data');
    const store = await openTestStore(ws);
    try {
      const accounts = new AccountService(store, readKeyFile(path.join(config, 'postern.key')));
      const { AuthService } = await import('../../src/auth/service.js');
      const { inlinePrimaryChecker } = await import('../../src/auth/primary-checker.js');
      const { noThrottle } = await import('../../src/auth/throttle.js');
      const { silentLogger } = await import('../../src/log.js');
      const { WriteQueue } = await import('../../src/store/write-queue.js');
      const writes = new WriteQueue(store, { log: silentLogger() });
      const auth = new AuthService({ store, writes, digestKey: readKeyFile(path.join(config, 'postern.key')), primaryChecker: inlinePrimaryChecker(), throttle: noThrottle, log: silentLogger() });
      const bobs = await accounts.createPassword('bob', BOB, { label: 'probe' });
      const alices = await accounts.createPassword('alice@example.org', ALICE, { label: 'probe' });
      secrets.add(bobs.password).add(alices.password);
      const b = await auth.authenticate({ login: 'bob', password: bobs.password, protocol: 'imap', clientAddress: '127.0.0.1' });
      const a = await auth.authenticate({ login: 'alice@example.org', password: alices.password, protocol: 'imap', clientAddress: '127.0.0.1' });
      expect(b.kind === 'accepted' && b.credential).toEqual({ kind: 'password', username: 'bob@provider.example', password: BOB_UPSTREAM });
      expect(a.kind === 'accepted' && a.credential).toEqual({ kind: 'password', username: 'alice@example.org', password: ALICE });
      await accounts.revokeAll('bob');
      await accounts.revokeAll('alice@example.org');
      await auth.close();
      await writes.close();
    } finally {
      await store.close();
    }
  });
});

describe('app-specific passwords', () => {
  it('new prints the password once with its label, id and where to paste it', async () => {
    const { stdout, password } = await newPassword('alice@example.org', ALICE, 'Thunderbird on laptop', ['--scopes', 'imap,pop3,caldav', '--expires', '90d']);
    expect(stdout.split(password)).toHaveLength(2);
    expect(stdout).toMatch(/shown once and cannot be displayed again/);
    expect(stdout).toMatch(/^ {2}label: +Thunderbird on laptop$/m);
    expect(stdout).toMatch(/^ {2}scopes: +imap, pop3, caldav$/m);
    expect(stdout).toMatch(/^ {2}expires: +\d{4}-\d\d-\d\dT/m);
    expect(stdout).toMatch(/user name "alice@example\.org"/);
    expect(stdout).toMatch(/^ {2}IMAP +mail\.example\.test:9993 \(SSL\/TLS\)$/m);
    expect(stdout).toMatch(/^ {2}IMAP +mail\.example\.test:9143 \(STARTTLS\)$/m);
    expect(stdout).toMatch(/^ {2}POP3 +mail\.example\.test:9995 \(SSL\/TLS\)$/m);
    expect(stdout).toMatch(/^ {2}POP3 +mail\.example\.test:9110 \(STARTTLS\)$/m);
    expect(stdout).toMatch(/^ {2}CalDAV +https:\/\/mail\.example\.test:8443\/$/m);
    expect(stdout).not.toMatch(/SMTP/);
  });

  it('list shows id, label, scopes, created, last used, expiry and status, as a table and as JSON', async () => {
    const second = await newPassword('alice@example.org', ALICE, 'Phone — 手机 📱');
    const list = await run(['password', 'list', 'alice@example.org']);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID +LABEL +SCOPES +CREATED +LAST USED +EXPIRES +STATUS$/);
    expect(list.stdout).toMatch(new RegExp(`^${second.id} +Phone — 手机 📱 +imap,pop3,smtp,caldav,carddav .* never +never +active$`, 'm'));
    const rows = JSON.parse((await run(['password', 'list', 'alice@example.org', '--json'])).stdout) as Array<Record<string, unknown>>;
    expect(rows.find((r) => r.id === second.id)).toMatchObject({ label: 'Phone — 手机 📱', status: 'active', lastUsed: null, expiresAt: null });
    expect(rows.filter((r) => r.label === 'probe').every((r) => r.status === 'revoked' && r.revokedReason === 'revoke-all')).toBe(true);
    const active = JSON.parse((await run(['password', 'list', 'alice@example.org', '--json', '--status', 'active'])).stdout) as unknown[];
    expect(active).toHaveLength(2);
  });

  it('revoke, revoke-all and history', async () => {
    const p = await newPassword('bob', BOB, 'to revoke');
    const revoked = await run(['password', 'revoke', 'bob', p.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`^revoked ${p.id} \\(to revoke\\)`));
    expectRefused(await run(['password', 'revoke', 'bob', p.id]), /already revoked or expired/);
    expectRefused(await run(['password', 'revoke', 'bob', 'ffffffff']), /has no app-specific password with id ffffffff/);
    await newPassword('bob', BOB, 'a');
    await newPassword('bob', BOB, 'b');
    const all = await run(['password', 'revoke-all', 'bob']);
    expect(all.stdout).toMatch(/^revoked 2 app-specific passwords: [0-9a-f]{8}, [0-9a-f]{8}$/m);
    const history = await run(['password', 'history', 'bob']);
    expect(history.stdout.split('\n')[0]).toMatch(/^TIME +EVENT +PASSWORD +PROTOCOL +ADDRESS +DETAIL$/);
    expect(history.stdout).toMatch(new RegExp(`password\\.revoked +${p.id} .*reason=admin`));
    expect(history.stdout).toMatch(/password\.created .*label="to revoke"/);
    const events = JSON.parse((await run(['password', 'history', 'bob', '--json', '--limit', '3'])).stdout) as Array<{ type: string; detail: { reason?: string } }>;
    expect(events).toHaveLength(3);
    expect(events.slice(0, 2).map((e) => e.detail.reason)).toEqual(['revoke-all', 'revoke-all']);
  });

  it('refuses the 26th active password with a clear message', async () => {
    const data = path.join(ws.dir, 'data');
    const store = await openTestStore(ws);
    try {
      const accounts = new AccountService(store, readKeyFile(path.join(data, 'postern.key')));
      const active = async () => (await accounts.listPasswords('alice@example.org')).filter((p) => p.revokedAt === null).length;
      while ((await active()) < 24) secrets.add((await accounts.createPassword('alice@example.org', ALICE, { label: `filler ${await active()}` })).password);
    } finally {
      await store.close();
    }
    await newPassword('alice@example.org', ALICE, 'the 25th');
    expectRefused(await run(['password', 'new', 'alice@example.org', '--label', 'the 26th', '--password-stdin'], { input: ALICE + '\n' }),
      /"alice@example\.org" already has 25 active app-specific passwords: revoke one first/);
  }, 120_000); // two dozen bcrypt + scrypt rounds, on a shared machine

  it('set-password revokes every app password of the account', async () => {
    const r = await run(['user', 'set-password', 'alice@example.org', '--password-stdin'], { input: 'new primary for alice\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^primary password of alice@example\.org changed; 25 app-specific passwords revoked: /);
    expect(r.stdout).toMatch(/^the upstream password is now the new primary password; if the provider uses a different one, run set-password again with --upstream-secret$/m);
    expectRefused(await run(['password', 'new', 'alice@example.org', '--label', 'x', '--password-stdin'], { input: ALICE + '\n' }), /primary password is wrong/);
    await newPassword('alice@example.org', 'new primary for alice', 'after the change');
  });

  it('set-upstream keeps a distinct upstream password unless a new one is given', async () => {
    const renamed = await run(['user', 'set-upstream', 'bob', '--upstream-user', 'bob2@provider.example', '--password-stdin'], { input: `${BOB}\n` });
    expect(renamed.code, renamed.stderr).toBe(0);
    expect(renamed.stdout).toBe('upstream of bob set: mode password, user bob2@provider.example, upstream password kept; status reset to unknown\n');
    const stored = async () => {
      const store = await openTestStore(ws);
      try {
        const accounts = new AccountService(store, readKeyFile(path.join(ws.dir, 'data', 'postern.key')));
        const account = await accounts.getAccount('bob');
        return { user: account.upstreamUser, secret: accounts.upstreamSecretWithPrimary(account, BOB) };
      } finally {
        await store.close();
      }
    };
    expect(await stored()).toEqual({ user: 'bob2@provider.example', secret: BOB_UPSTREAM });
    const NEW_UPSTREAM = 'bob second provider secret';
    secrets.add(NEW_UPSTREAM);
    const replaced = await run(['user', 'set-upstream', 'bob', '--password-stdin', '--upstream-secret-stdin'], { input: `${BOB}\n${NEW_UPSTREAM}\n` });
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stdout).toMatch(/, new upstream password; status reset to unknown$/m);
    expect(await stored()).toEqual({ user: 'bob2@provider.example', secret: NEW_UPSTREAM });
  });
});

describe('refusals (exit 1) and usage errors (exit 2)', () => {
  const cases: Array<[string, string[], string | undefined, number, RegExp]> = [
    ['unknown user', ['password', 'new', 'nobody', '--label', 'x', '--password-stdin'], 'x\n', 1, /no account "nobody"/],
    ['unknown user (show)', ['user', 'show', 'nobody'], undefined, 1, /no account "nobody"/],
    ['wrong primary', ['password', 'new', 'bob', '--label', 'x', '--password-stdin'], 'wrong primary entirely\n', 1, /the primary password is wrong/],
    ['label too long', ['password', 'new', 'bob', '--label', 'x'.repeat(65), '--password-stdin'], BOB + '\n', 1, /label must be 1–64 characters \(got 65\)/],
    ['label blank', ['password', 'new', 'bob', '--label', '   ', '--password-stdin'], BOB + '\n', 1, /label must be 1–64 characters \(got 0\)/],
    ['label with escape', ['password', 'new', 'bob', '--label', 'evil\u001b[2J', '--password-stdin'], BOB + '\n', 1, /label must not contain control characters/],
    ['label with bidi override', ['password', 'new', 'bob', '--label', 'gpj.\u202eexe', '--password-stdin'], BOB + '\n', 1, /label must not contain control characters/],
    ['bad scope', ['password', 'new', 'bob', '--label', 'x', '--scopes', 'imap,nntp', '--password-stdin'], BOB + '\n', 1, /unknown scope "nntp"/],
    ['bad expiry', ['password', 'new', 'bob', '--label', 'x', '--expires', 'soon', '--password-stdin'], BOB + '\n', 1, /invalid expiry "soon"/],
    ['bad login', ['user', 'add', 'two words', '--password-stdin'], 'x\n', 1, /invalid login name/],
    ['empty primary', ['user', 'add', 'carol', '--password-stdin'], '\n', 1, /primary password must not be empty/],
    ['set-upstream wrong primary', ['user', 'set-upstream', 'bob', '--password-stdin'], 'wrong primary entirely\n', 1, /primary password is wrong/],
    ['master mode without a master user', ['user', 'add', 'dave', '--mode', 'master', '--password-stdin'], 'x\n', 1, /needs a master user in the config/],
    ['not a terminal and no --password-stdin', ['password', 'new', 'bob', '--label', 'x'], '', 2, /stdin is not a terminal: pass the primary password of bob on stdin with --password-stdin/],
    ['missing stdin line', ['user', 'add', 'frank', '--password-stdin', '--upstream-secret-stdin'], 'only one line\n', 2, /expected the upstream password on line 2 of stdin/],
    ['upstream secret from stdin needs --password-stdin', ['user', 'add', 'gina', '--upstream-secret-stdin'], '', 2, /--upstream-secret-stdin needs --password-stdin/],
    ['remove needs --yes without a terminal', ['user', 'remove', 'bob'], '', 2, /confirm with --yes/],
    ['unknown option', ['password', 'list', 'bob', '--bogus'], undefined, 2, /unknown option '--bogus'/],
    ['missing argument', ['password', 'revoke', 'bob'], undefined, 2, /missing required argument 'id'/],
    ['missing --label', ['password', 'new', 'bob', '--password-stdin'], BOB + '\n', 2, /required option '--label <label>' not specified/],
    ['unknown command', ['passwd'], undefined, 2, /unknown command 'passwd'/],
    ['bad choice', ['user', 'add', 'hank', '--mode', 'sideways'], undefined, 2, /argument 'sideways' is invalid/],
    ['bad --limit', ['password', 'history', 'bob', '--limit', '0'], undefined, 2, /--limit <n>.*must be a whole number/],
    ['excess argument', ['user', 'list', 'extra'], undefined, 2, /too many arguments/],
  ];
  for (const [name, args, input, code, message] of cases) {
    it(`${name}: exit ${code}`, async () => {
      expectRefused(await run(args, input === undefined ? undefined : { input }), message, code);
    });
  }

  it('a refused account add saves nothing', async () => {
    const list = JSON.parse((await run(['user', 'list', '--json'])).stdout) as Array<{ login: string }>;
    expect(list.map((a) => a.login)).toEqual(['alice@example.org', 'bob']);
  });

  it('help is not an error; a bare command group is a usage error', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: postern \[options\] \[command\]/);
    const group = await run(['password']);
    expect(group.code).toBe(2);
    expect(group.stderr).toMatch(/Usage: postern password/);
  });

  it('config problems: missing file, invalid key, env POSTERN_CONFIG', async () => {
    const missing = await runBinary(['-c', path.join(ws.dir, 'nope.yaml'), 'user', 'list'], { cwd: ws.dir });
    outputs.push({ args: ['missing config'], result: missing });
    expectRefused(missing, /configuration file not found: .*nope\.yaml \(run "postern init"\)/);
    const bad = path.join(ws.dir, 'bad.yaml');
    writeFileSync(bad, readFileSync(ws.configPath, 'utf8').replace('level: info', 'level: loud') + 'imapp: {}\n');
    const invalid = await runBinary(['-c', bad, 'user', 'list'], { cwd: ws.dir });
    expectRefused(invalid, /bad\.yaml is invalid: .*log\.level: .*; .*imapp/);
    // A YAML syntax error names the place, not the text there (which could be an inline secret).
    writeFileSync(bad, 'master:\n  user: m\n  password: "unterminated-secret-value\n');
    const broken = await runBinary(['-c', bad, 'user', 'list'], { cwd: ws.dir });
    expectRefused(broken, /bad\.yaml: not valid YAML: .*line \d+/);
    expect(broken.stderr).not.toContain('unterminated-secret-value');
    const viaEnv = await runBinary(['user', 'list', '--json'], { cwd: ws.dir, env: { POSTERN_CONFIG: ws.configPath } });
    expect(viaEnv.code).toBe(0);
    expect(JSON.parse(viaEnv.stdout)).toHaveLength(2);
  });
});

describe('database and certificate commands', () => {
  it('db check reports ok on either engine', async () => {
    const check = await run(['db', 'check', '--json']);
    expect(check.code, check.stderr).toBe(0);
    expect(JSON.parse(check.stdout)).toMatchObject({ ok: true, integrity: ['ok'], foreignKeyProblems: 0, schemaVersion: 11, journalMode: engine === 'sqlite' ? 'wal' : 'postgresql', accounts: 2 });
  });

  it.runIf(engine === 'postgres')('db backup on PostgreSQL refuses and names pg_dump', async () => {
    expectRefused(await run(['db', 'backup', path.join(ws.dir, 'backup.db')]), /PostgreSQL: back it up with pg_dump/);
  });

  // SQLite only: `db backup` is SQLite's online backup into a file (PostgreSQL's refusal is the test above).
  it.runIf(engine === 'sqlite')('db backup writes a consistent copy without secrets and refuses to overwrite', async () => {
    const target = path.join(ws.dir, 'backup.db');
    const backup = await run(['db', 'backup', target]);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/keep the key file/);
    const bytes = readFileSync(target);
    for (const s of secrets) expect(bytes.includes(Buffer.from(s)) || bytes.includes(Buffer.from(s.replace(/-/g, '')))).toBe(false);
    const copy = openStore(target);
    try {
      expect((await copy.accounts.list()).map((a) => a.login)).toEqual(['alice@example.org', 'bob']);
    } finally {
      await copy.close();
    }
    expectRefused(await run(['db', 'backup', target]), /exists already/);
    expectRefused(await run(['db', 'backup', path.join(ws.dir, 'missing', 'backup.db')]), /folder .*missing does not exist; create it first/);
  });

  it('cert show prints names, expiry and fingerprint; generate refuses to overwrite without --force', async () => {
    const before = JSON.parse((await run(['cert', 'show', '--json'])).stdout) as { subjectAltNames: string[]; fingerprintSha256: string; selfSigned: boolean };
    expect(before.subjectAltNames).toEqual(['DNS:mail.example.test', 'IP Address:127.0.0.1']);
    expect(before.fingerprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(before.selfSigned).toBe(true);
    expectRefused(await run(['cert', 'generate']), /exists already: use --force/);
    const regenerated = await run(['cert', 'generate', '--force', '--days', '30']);
    expect(regenerated.code, regenerated.stderr).toBe(0);
    const shown = await run(['cert', 'show']);
    expect(shown.stdout).toMatch(/^SHA-256: +([0-9A-F]{2}:){31}[0-9A-F]{2}$/m);
    expect(shown.stdout).not.toContain(before.fingerprintSha256);
    expect(shown.stdout).toMatch(/^names: +DNS:mail\.example\.test, IP Address:127\.0\.0\.1$/m);
  });

  it('user remove --yes removes the account and its passwords', async () => {
    const r = await run(['user', 'remove', 'bob', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^removed account bob/);
    expectRefused(await run(['user', 'show', 'bob']), /no account "bob"/);
  });
});

describe('secrets in output', () => {
  it('no secret reached stdout or stderr of any command, except each new password in its own announcement', () => {
    expect(outputs.length).toBeGreaterThan(40);
    for (const secret of secrets) {
      const forms = [secret, secret.replace(/-/g, '')].filter((s) => s.length >= 6);
      for (const { args, result } of outputs) {
        for (const form of forms) {
          const inOut = result.stdout.split(form).length - 1;
          const allowed = form === secret && announced.get(secret) === result.stdout ? 1 : 0;
          expect(inOut, `stdout of ${args.join(' ')}`).toBe(allowed);
          expect(result.stderr.includes(form), `stderr of ${args.join(' ')}`).toBe(false);
        }
      }
    }
  });
});
