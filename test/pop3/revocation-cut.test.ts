/**
 * Revocation mid-session on POP3. POP3 has no unsolicited response, so postern says nothing: it
 * cuts the connection (reset) within a second of the revocation, mid-response if need be.
 *  - a slow reader mid-RETR of a large message gets no more of what postern's kernel had queued
 *    after the cut: at most what sat in its own receive buffer, never the terminating `.` line;
 *  - an idle logged-in client finds its connection reset within a second, and a message it had
 *    marked with DELE is still in the mailbox (no QUIT, so no UPDATE state, RFC 1939 §6);
 *  - other passwords' sessions of the same account go on.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { deliver, message, pop3Config, rawTls } from './support.js';

const DAVE = { name: 'dave', password: 'dave-real-Secret-5' };
const DAVE_PRIMARY = 'dave-primary-Secret-6';
const MESSAGE_BYTES = 24 * 1024 * 1024;

let dovecot: DovecotServer;
let postern: PosternHarness;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  dovecot = await startDovecot({ users: [DAVE] });
  const line = 'x'.repeat(998) + '\r\n';
  await deliver(dovecot, DAVE, [message('big', line.repeat(Math.ceil(MESSAGE_BYTES / line.length))), message('small')]);
  postern = await startPostern({ config: { pop3: pop3Config(dovecot) }, secrets: [DAVE.password] });
  await postern.addUser('dave', DAVE_PRIMARY, { mode: 'password', secret: DAVE.password });
}, 120_000);

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

async function signedIn(password: string): Promise<{ client: Awaited<ReturnType<typeof rawTls>>; socket: tls.TLSSocket }> {
  const client = await rawTls(postern);
  client.write(`USER dave\r\nPASS ${password}\r\n`);
  expect(await client.readLine()).toBe('+OK Send PASS.');
  expect(await client.readLine()).toBe('+OK Logged in.');
  return { client, socket: client.socket() as tls.TLSSocket };
}

function ending(socket: tls.TLSSocket): Promise<string> {
  return new Promise<string>((resolve) => {
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    socket.once('close', () => resolve('close'));
  });
}

describe('revocation cuts a POP3 session', () => {
  it('a slow reader mid-RETR gets no more of the queued message after a revoke: reset, bounded bytes', async () => {
    const { password, publicId } = await postern.newPassword('dave', DAVE_PRIMARY, { label: 'slow reader' });
    const { socket } = await signedIn(password);
    let received = 0;
    let tail = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      tail = (tail + chunk.toString('latin1')).slice(-5);
    });
    socket.pause();
    socket.write('RETR 1\r\n');
    await sleep(1_500); // let the RETR fill every buffer between Dovecot and the paused client
    const revokedAt = Date.now();
    await postern.accounts.revokePassword('dave', publicId);
    await postern.logs.waitForEvent('session.revoked');
    const closed = await waitForClosed();
    expect(Date.now() - revokedAt).toBeLessThan(1_500);
    const ended = ending(socket);
    const resumedAt = received;
    socket.resume();
    const how = await ended;
    expect(closed).toMatchObject({ relayed: true, why: 'relay ended by postern' });
    expect(how).toMatch(/^(ECONNRESET|close)$/);
    expect(received, `received ${received} bytes (${received - resumedAt} after resuming) of the ${closed.bytesOut} postern wrote`).toBeLessThan(closed.bytesOut / 2);
    expect(tail).not.toBe('\r\n.\r\n'); // the response was cut, never completed
    socket.destroy();
  }, 60_000);

  it('an idle session is reset within a second, its DELE not applied, while another password\'s session goes on', async () => {
    const doomed = await postern.newPassword('dave', DAVE_PRIMARY, { label: 'doomed' });
    const other = await postern.newPassword('dave', DAVE_PRIMARY, { label: 'other' });
    const { client, socket } = await signedIn(doomed.password);
    client.write('DELE 2\r\n');
    expect(await client.readLine()).toMatch(/^\+OK/);
    const survivor = await signedIn(other.password);
    const ended = ending(socket);
    const revokedAt = Date.now();
    await postern.accounts.revokePassword('dave', doomed.publicId);
    const how = await ended;
    expect(Date.now() - revokedAt).toBeLessThan(1_500);
    expect(how).toMatch(/^(ECONNRESET|close)$/);
    // Nothing unsolicited was written: POP3 has no way to say it (relay.ts).
    await expect(client.readLine(200)).rejects.toThrow();
    survivor.client.write('STAT\r\n');
    expect(await survivor.client.readLine()).toMatch(/^\+OK \d+ \d+$/);
    survivor.client.write('QUIT\r\n');
    await survivor.client.readLine();
    // Dovecot locks the maildir per session; a fresh session sees both messages still there.
    const fresh = await postern.newPassword('dave', DAVE_PRIMARY, { label: 'check' });
    const check = await signedIn(fresh.password);
    check.client.write('STAT\r\n');
    expect(await check.client.readLine()).toMatch(/^\+OK 2 \d+$/);
    check.client.close();
  }, 60_000);
});

async function waitForClosed(): Promise<{ relayed: boolean; why: string; bytesOut: number }> {
  for (let i = 0; i < 100; i++) {
    const closed = postern.logs.events('session.closed').find((e) => (e as { relayed?: boolean }).relayed);
    if (closed) return closed as { relayed: boolean; why: string; bytesOut: number };
    await sleep(20);
  }
  throw new Error('no relayed session.closed');
}
