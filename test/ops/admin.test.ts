/**
 * The admin listener of one postern in front of a real Dovecot, asked over real HTTP:
 *  - /healthz answers 200; /readyz 200 while serving and 503 `draining` once a drain has begun
 *    (while the sessions still run their grace period);
 *  - /metrics moves with what happens: an IMAP login signed in upstream counts as signed_in
 *    with an upstream-latency observation and one active IMAP session; a wrong password counts as
 *    refused, the primary password as primary_refused (and as a primary-password refusal); a
 *    revoke ends the session, counted with its revoke→disconnect latency, and the session gauge
 *    goes back to 0; the default process metrics are there;
 *  - anything but GET/HEAD of the three paths is 404/405.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapConfig, quoted, rawTls } from '../imap/support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-3' };
const PRIMARY = 'alice-primary-Secret-4';

let dovecot: DovecotServer;
let postern: PosternHarness;
let password: string;
let publicId: string;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE] });
  postern = await startPostern({ config: { imap: imapConfig(dovecot, 'tls'), admin: { listen: '127.0.0.1', port: 0 } }, secrets: [ALICE.password] });
  await postern.addUser('alice', PRIMARY, { mode: 'password', secret: ALICE.password });
  ({ password, publicId } = await postern.newPassword('alice', PRIMARY));
}, 120_000);

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

async function get(path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${postern.port('admin')}${path}`, { method });
  return { status: res.status, body: await res.text() };
}

/** One sample's value from the Prometheus text, 0 when absent. */
async function sample(series: string): Promise<number> {
  const { body } = await get('/metrics');
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function login(pw: string, tag = 'a1'): Promise<{ reply: string; client: Awaited<ReturnType<typeof rawTls>> }> {
  const client = await rawTls(postern);
  client.write(`${tag} LOGIN alice ${quoted(pw)}\r\n`);
  const reply = (await client.readUntil((l) => l.startsWith(`${tag} `))).at(-1)!;
  return { reply, client };
}

describe('probes', () => {
  it('/healthz and /readyz answer 200 while serving; other paths and methods are refused', async () => {
    expect(await get('/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await get('/readyz')).toEqual({ status: 200, body: 'ready\n' });
    expect((await get('/nope')).status).toBe(404);
    expect((await get('/metrics', 'POST')).status).toBe(405);
  });
});

describe('/metrics', () => {
  it('has the default process metrics and every postern metric family', async () => {
    const { status, body } = await get('/metrics');
    expect(status).toBe(200);
    expect(body).toContain('process_cpu_user_seconds_total');
    expect(body).toContain('nodejs_eventloop_lag_seconds');
    for (const name of ['postern_logins_total', 'postern_active_sessions', 'postern_upstream_login_seconds', 'postern_primary_check_queue_depth', 'postern_database_errors_total']) {
      expect(body).toContain(`# TYPE ${name} `);
    }
  });

  it('moves with logins, refusals, sessions and a revocation', async () => {
    const signedIn = 'postern_logins_total{protocol="imap",outcome="signed_in"}';
    const active = 'postern_active_sessions{protocol="imap"}';
    const ok = await login(password);
    expect(ok.reply).toMatch(/^a1 OK/);
    expect(await sample(signedIn)).toBe(1);
    expect(await sample('postern_upstream_login_seconds_count{protocol="imap"}')).toBe(1);
    expect(await sample(active)).toBe(1);

    const wrong = await login('wrong-wrong-wrong', 'b1');
    expect(wrong.reply).toMatch(/^b1 NO/);
    wrong.client.close();
    expect(await sample('postern_logins_total{protocol="imap",outcome="refused"}')).toBe(1);
    const primary = await login(PRIMARY, 'c1');
    expect(primary.reply).toMatch(/^c1 NO/);
    primary.client.close();
    expect(await sample('postern_logins_total{protocol="imap",outcome="primary_refused"}')).toBe(1);
    expect(await sample('postern_primary_password_refusals_total{protocol="imap"}')).toBe(1);

    await postern.accounts.revokePassword('alice', publicId);
    await ok.client.closed;
    await expect.poll(() => sample('postern_sessions_revoked_total{protocol="imap",reason="admin"}')).toBe(1);
    await expect.poll(() => sample(active)).toBe(0);
    expect(await sample('postern_revoke_disconnect_seconds_count')).toBe(1);
    // Within the one second revocation promises (the watcher polls every 250 ms).
    expect(await sample('postern_revoke_disconnect_seconds_bucket{le="1"}')).toBe(1);
    expect(await sample(signedIn)).toBe(1);
  });
});

describe('readiness while draining', () => {
  it('/readyz is 503 `draining` during the grace period, before sessions are ended', async () => {
    const { client } = await login((await postern.newPassword('alice', PRIMARY)).password, 'd1');
    const drained = postern.app.drain(60_000);
    expect(await get('/readyz')).toEqual({ status: 503, body: 'not ready: draining\n' });
    expect((await get('/healthz')).status).toBe(200);
    // The session lives on in the grace period.
    client.write('d2 NOOP\r\n');
    expect((await client.readUntil((l) => l.startsWith('d2 '))).at(-1)).toMatch(/^d2 OK/);
    client.close();
    // The last client gone, the grace period ends early and the drain completes.
    await drained;
  });
});
