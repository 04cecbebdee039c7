/**
 * `postern dav check <login>` against a real Radicale: with the primary password it opens the
 * stored upstream secret and walks well-known → principal → home → listing, printing each
 * (upstream URLs); a wrong stored secret is reported as the upstream's refusal (exit 1); a wrong
 * primary password opens nothing; no secret appears in any output.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createWorkspace, type CliResult, type Workspace } from '../helpers/cli.js';
import { startRadicale, type RadicaleServer } from '../helpers/radicale.js';

const ALICE = { name: 'alice', password: 'alice radicale secret 9' };
const BOB = { name: 'bob', password: 'bob radicale secret 8' };
const PRIMARY = 'alice primary passphrase';
let radicale: RadicaleServer;
let ws: Workspace;
const outputs: CliResult[] = [];

beforeAll(async () => {
  radicale = await startRadicale({ users: [ALICE, BOB] });
  ws = await createWorkspace({ dav: { listener: { host: '127.0.0.1', port: 0 }, caldav: { url: radicale.url }, carddav: { url: radicale.url } } });
  const auth = `Basic ${Buffer.from(`${ALICE.name}:${ALICE.password}`).toString('base64')}`;
  const made = await fetch(`${radicale.url}alice/work/`, { method: 'MKCALENDAR', headers: { authorization: auth } });
  expect(made.status).toBe(201);
  await run(['user', 'add', 'alice', '--password-stdin', '--upstream-secret-stdin'], `${PRIMARY}\n${ALICE.password}\n`);
  await run(['user', 'add', 'bob', '--password-stdin', '--upstream-secret-stdin'], `bob primary passphrase\nnot bobs radicale password\n`);
});

afterAll(async () => {
  for (const r of outputs) for (const secret of [ALICE.password, BOB.password, PRIMARY, 'not bobs radicale password']) expect(r.stdout + r.stderr).not.toContain(secret);
  ws?.cleanup();
  await radicale?.stop();
});

async function run(args: string[], input: string): Promise<CliResult> {
  const r = await ws.runHere(args, { input });
  outputs.push(r);
  return r;
}

it('prints principal, homes and collections found with the account\'s credentials', async () => {
  const r = await run(['dav', 'check', 'alice', '--password-stdin'], `${PRIMARY}\n`);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`caldav: ${radicale.url}.well-known/caldav`);
  expect(r.stdout).toContain(`  principal: ${radicale.url}alice/`);
  expect(r.stdout).toContain(`  calendar home: ${radicale.url}alice/`);
  expect(r.stdout).toContain(`  calendar: ${radicale.url}alice/work/`);
  expect(r.stdout).toContain(`  addressbook home: ${radicale.url}alice/`);
  expect(r.stdout).toContain('  no address books yet');
});

it('reports the upstream refusing the stored credentials, exit 1', async () => {
  const r = await run(['dav', 'check', 'bob', '--password-stdin'], 'bob primary passphrase\n');
  expect(r.code).toBe(1);
  expect(r.stdout).toContain('FAILED');
  expect(r.stdout).toContain('UPSTREAM_AUTH_REJECTED');
  expect(r.stderr).toContain('dav check failed for "bob"');
});

it('opens nothing with a wrong primary password', async () => {
  const r = await run(['dav', 'check', 'alice', '--password-stdin'], 'not the primary\n');
  expect(r.code).toBe(1);
  expect(r.stdout).not.toContain('principal');
});
