/**
 * Postern's DAV listener in front of a minimal in-process upstream that answers every request
 * "ok" and counts them, with one user (alice) and an app password for her: for tests about what
 * postern does with connections and bodies, where the upstream's DAV semantics do not matter
 * (those use the real Radicale, setup.ts). `requests()` says how many requests reached upstream.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startPostern, type PosternHarness } from '../../helpers/postern.js';
import { basic } from './client.js';

export interface CountingRig {
  postern: PosternHarness;
  /** `Authorization` header value with alice's app password. */
  auth: string;
  requests(): number;
  stop(): Promise<void>;
}

export async function startCountingRig(dav: Record<string, unknown> = {}): Promise<CountingRig> {
  let requests = 0;
  const upstream = http.createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const closeUpstream = async () => {
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  };
  const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
  let postern: PosternHarness;
  try {
    postern = await startPostern({
      config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: origin, carddavUpstream: origin, ...dav } },
      secrets: ['upstream secret'],
    });
  } catch (err) {
    await closeUpstream();
    throw err;
  }
  await postern.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'upstream secret' });
  const auth = basic('alice', (await postern.newPassword('alice', 'alice primary passphrase')).password);
  return {
    postern,
    auth,
    requests: () => requests,
    async stop() {
      try {
        await postern.stop();
      } finally {
        await closeUpstream();
      }
    },
  };
}
