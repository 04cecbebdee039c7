/**
 * A revoked password must stop the data, not just the session. A client that reads slowly has a
 * large FETCH in flight through postern to a real Dovecot; the password is revoked; when the client
 * reads again it must find the connection cut, having received at most what was already in its
 * own receive buffer — not the megabytes postern's kernel still had queued (a graceful close would
 * deliver them). And an idle, reading client still gets the BYE naming the reason.
 */
import tls from 'node:tls';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapConfig, message, quoted, rawTls, sleep } from './support.js';

const DAVE = { name: 'dave', password: 'dave-real-Secret-5' };
const DAVE_PRIMARY = 'dave-primary-Secret-6';
const MESSAGE_BYTES = 24 * 1024 * 1024;

let dovecot: DovecotServer;
let postern: PosternHarness;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [DAVE] });
  postern = await startPostern({ config: { imap: imapConfig(dovecot) }, secrets: [DAVE.password] });
  await postern.addUser('dave', DAVE_PRIMARY, { mode: 'password', secret: DAVE.password });
  // Straight to Dovecot: the mailbox content is set-up, not what is under test.
  const direct = new ImapFlow({ host: dovecot.host, port: dovecot.imapsPort, secure: true, auth: { user: DAVE.name, pass: DAVE.password }, tls: { ca: dovecot.caPem, servername: 'localhost' }, logger: false });
  direct.on('error', () => undefined);
  await direct.connect();
  const line = 'x'.repeat(998) + '\r\n';
  await direct.append('INBOX', message('big', line.repeat(Math.ceil(MESSAGE_BYTES / line.length))));
  await direct.logout();
}, 120_000);

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

/** Logs in over implicit TLS and selects INBOX with a bare TLS socket we can pause. */
async function signedIn(password: string): Promise<tls.TLSSocket> {
  const client = await rawTls(postern);
  client.write(`a LOGIN dave ${quoted(password)}\r\n`);
  expect(await client.readLine()).toMatch(/^a OK /);
  client.write('b SELECT INBOX\r\n');
  await client.readUntil((l) => l.startsWith('b OK'));
  return client.socket() as tls.TLSSocket;
}

describe('revocation cuts the connection', () => {
  it('a slow reader mid-FETCH gets no more of the queued message after a revoke: reset, bounded bytes', async () => {
    const { password, publicId } = await postern.newPassword('dave', DAVE_PRIMARY, { label: 'slow reader' });
    const socket = await signedIn(password);
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.pause();
    socket.write('c FETCH 1 BODY.PEEK[]\r\n');
    // Let the FETCH fill every buffer between Dovecot and the paused client.
    await sleep(1_500);
    await postern.accounts.revokePassword('dave', publicId);
    await postern.logs.waitForEvent('session.revoked');
    await sleep(300);
    const ended = new Promise<string>((resolve) => {
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      socket.once('close', () => resolve('close'));
    });
    const resumedAt = received;
    socket.resume();
    const how = await ended;
    const afterResume = received - resumedAt;
    // At most what sat in this client's own receive buffer. A graceful close also delivered
    // postern's send queue, which the kernel lets grow to megabytes for a bulk transfer: then the
    // client received about everything postern had written.
    const closed = postern.logs.events('session.closed').at(-1) as { relayed: boolean; why: string; bytesOut: number };
    expect(closed).toMatchObject({ relayed: true, why: 'relay ended by postern' });
    expect(how).toMatch(/^(ECONNRESET|close)$/);
    expect(received, `received ${received} bytes (${afterResume} after resuming) of the ${closed.bytesOut} postern wrote`).toBeLessThan(closed.bytesOut / 2);
    socket.destroy();
  }, 60_000);

  it('an idle client that is reading still gets the BYE naming the reason, then the reset', async () => {
    const { password, publicId } = await postern.newPassword('dave', DAVE_PRIMARY, { label: 'idle reader' });
    const client = await rawTls(postern);
    client.write(`a LOGIN dave ${quoted(password)}\r\n`);
    await client.readLine();
    client.write('b SELECT INBOX\r\n');
    await client.readUntil((l) => l.startsWith('b OK'));
    client.write('c IDLE\r\n');
    expect(await client.readLine()).toMatch(/^\+ /);
    await postern.accounts.revokePassword('dave', publicId);
    const lines = await client.readUntil((l) => l.startsWith('* BYE'), 3_000);
    expect(lines.at(-1)).toBe('* BYE This app-specific password has been revoked; signing out.');
    await client.closed;
  });
});
