/**
 * Bytes kept flowing after a DAV revoke: closing a socket still delivers what sits in the kernel's
 * send buffer, megabytes to a client that reads slowly. Revocation must reset the connection.
 *
 * Pins: a slow reader (4 KiB receive buffer, not reading) in the middle of a large GET receives at
 * most a small bounded amount once its password is revoked (the kernel's send queue is discarded
 * by the reset; a close delivered megabytes). The client is a real TLS client in Python, because Node cannot set SO_RCVBUF.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findRadicalePython } from '../helpers/radicale.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { basic } from './support/client.js';

/** Far below the megabytes a closed socket delivered; above the client's own buffers. */
const AFTER_REVOKE_BOUND = 512 * 1024;
let upstream: http.Server;
let postern: PosternHarness;

beforeAll(async () => {
  // An endless download, written with back-pressure: what is queued is only what the sockets hold.
  upstream = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
    };
    res.on('drain', pump);
    pump();
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
  postern = await startPostern({ config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: origin } }, secrets: ['upstream secret'] });
  await postern.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'upstream secret' });
});

afterAll(async () => {
  await postern?.stop();
  upstream?.closeAllConnections();
  await new Promise((resolve) => upstream?.close(resolve));
});

describe('a revoke while a slow reader downloads', () => {
  it('resets the connection: the queued megabytes are discarded, not delivered', { timeout: 20_000 }, async () => {
    const { password, publicId } = await postern.newPassword('alice', 'alice primary passphrase');
    const python = await findRadicalePython();
    const script = path.join(import.meta.dirname, 'support', 'slow-reader.py');
    const child = spawn(python, [script, String(postern.port('dav')), basic('alice', password), '/alice/big'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    try {
      expect((await lines.next()).value).toBe('HEAD HTTP/1.1 200 OK');
      // Let every buffer between upstream and client fill while the client does not read.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await postern.accounts.revokePassword('alice', publicId);
      await postern.logs.waitForEvent('session.revoked');
      await new Promise((resolve) => setTimeout(resolve, 200));
      child.stdin.write('go\n');
      const result = JSON.parse(String((await lines.next()).value)) as { after: number; ended: string };
      // What a close would have delivered: ~2.8 MB here. Linux hands a reset that arrives behind
      // unread data to the reader as an ordinary EOF, so the discarded bytes are the evidence.
      expect(result.after).toBeLessThan(AFTER_REVOKE_BOUND);
      expect(['eof', 'reset']).toContain(result.ended);
    } finally {
      child.kill();
    }
  });
});
