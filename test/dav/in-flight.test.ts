/**
 * Requests in flight through the DAV proxy, against a scripted upstream (test/dav/support/scripted-upstream.ts).
 * Pins:
 *  - revoking the password cuts a download in progress within 1 s (the bound), mid-body;
 *  - shutdown lets a request in flight finish, closes idle keep-alive connections at once and refuses
 *    new connections.
 */
import https from 'node:https';
import { describe, expect, it } from 'vitest';
import { startPostern } from '../helpers/postern.js';
import { basic, davClient } from './support/client.js';
import { useScriptedUpstream } from './support/scripted-upstream.js';

const rig = useScriptedUpstream();

describe('revocation mid-download', () => {
  it('cuts a download in progress within 1 s of the password being revoked', async () => {
    const { password, publicId } = await rig.postern.newPassword('alice', 'alice primary passphrase', { label: 'downloader' });
    let revokedAt = 0;
    rig.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/calendar', 'content-length': String(10 * 1024 * 1024) });
      res.write(Buffer.alloc(64 * 1024, 'a')); // and then nothing more for now
    };
    const ended = new Promise<{ at: number; complete: boolean }>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: rig.postern.port('dav'), path: '/alice/work/slow.ics', agent: false, ca: rig.postern.caPem, servername: 'localhost', headers: { authorization: basic('alice', password) } }, (res) => {
        res.once('data', () => {
          revokedAt = performance.now();
          void rig.postern.accounts.revokePassword('alice', publicId);
        });
        res.on('data', () => undefined);
        res.on('close', () => resolve({ at: performance.now(), complete: res.complete }));
      }).on('error', () => undefined);
      setTimeout(() => reject(new Error('download not cut within 3 s')), 3000);
    });
    const { at, complete } = await ended;
    expect(complete).toBe(false);
    expect(at - revokedAt).toBeLessThan(1000);
  });
});

describe('shutdown', () => {
  it('lets a request in flight finish, closes idle connections and refuses new ones', async () => {
    const draining = await startPostern({ config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `${rig.upstreamOrigin}/` } }, secrets: ['upstream-secret-for-alice'] });
    const drainingClient = davClient(draining.port('dav'), draining.caPem);
    await draining.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'upstream-secret-for-alice' });
    const pw = basic('alice', (await draining.newPassword('alice', 'alice primary passphrase')).password);
    try {
      const idle = await drainingClient.request({ method: 'GET', path: '/alice/a', headers: { authorization: pw } });
      expect(idle.status).toBe(200);
      const idleClosed = new Promise<void>((resolve) => idle.socket.once('close', () => resolve()));
      rig.handler = rig.recordAnd((_req, res) => setTimeout(() => res.end('finished late'), 400));
      const inFlight = new Promise<{ status: number; text: string }>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port: draining.port('dav'), path: '/alice/slow', agent: false, ca: draining.caPem, servername: 'localhost', headers: { authorization: pw } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, text }));
        }).on('error', reject);
      });
      while (rig.seen.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
      const closed = draining.app.close();
      await idleClosed;
      expect(await inFlight).toEqual({ status: 200, text: 'finished late' });
      await closed;
      await expect(drainingClient.request({ method: 'GET', path: '/alice/b', headers: { authorization: pw } })).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      drainingClient.close();
      await draining.stop();
    }
  });
});
