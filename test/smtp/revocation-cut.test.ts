/**
 * A revoked password cuts the SMTP session, it does not just close it. A client that stops reading
 * has pipelined thousands of commands whose replies queue up in postern's socket and kernel; the
 * password is revoked; when the client reads again the connection is reset and it gets at most
 * what was already in its own receive buffer, not the queued replies and the 421 after them (a
 * graceful close delivered all of them). A client that is reading still gets the 421.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DovecotServer } from '../helpers/dovecot.js';
import type { PosternHarness } from '../helpers/postern.js';
import { PRIMARY, plainToken, rawSession, say, startMailServer, startSmtpPostern } from './fixture.js';

const PIPELINED = 200_000;
const REPLY = /^250 /gm;

let dovecot: DovecotServer;
let postern: PosternHarness;

beforeAll(async () => {
  dovecot = await startMailServer();
  postern = await startSmtpPostern(dovecot);
});

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('revocation cuts the connection', () => {
  it('a client that stops reading gets none of its queued replies after a revoke: reset, bounded bytes', async () => {
    const { password, publicId } = await postern.newPassword('alice', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
    const socket = client.socket() as tls.TLSSocket;
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.pause();
    socket.write('NOOP\r\n'.repeat(PIPELINED));
    // Let postern answer what it can while nobody reads the answers.
    await sleep(2_000);
    await postern.accounts.revokePassword('alice', publicId);
    await postern.logs.waitForEvent('session.revoked');
    await sleep(300);
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.resume();
    await ended;
    const replies = text.match(REPLY)?.length ?? 0;
    expect(replies, `${replies} of ${PIPELINED} NOOP replies reached the client`).toBeLessThan(PIPELINED / 2);
    expect(text).not.toMatch(/^421 /m);
  }, 60_000);

  it('a client that is reading still gets the 421 naming the reason', async () => {
    const { password, publicId } = await postern.newPassword('alice', PRIMARY);
    const client = await rawSession(postern.port('smtp.implicitTls'), postern.caPem);
    expect(await say(client, `AUTH PLAIN ${plainToken('alice', password)}`)).toMatch(/^235 /);
    await postern.accounts.revokePassword('alice', publicId);
    expect(await client.readLine(2_000)).toMatch(/^421 4\.7\.0 .*no longer valid/);
    await client.closed;
  });
});
