/**
 * Connection caps on the DAV listener (dav.limits), as on the mail listeners. Pins: connections
 * beyond the per-address cap get an HTTP answer, 503 with Retry-After and Connection: close,
 * for their first request (never reaching the upstream, never a bare reset), logged once; a
 * connection that closes frees its slot; connections within the cap keep working meanwhile.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { REPLY_TEXT } from '../../src/dav/replies.js';
import type { PosternHarness } from '../helpers/postern.js';
import { davClient, type DavTestClient } from './support/client.js';
import { startCountingRig, type CountingRig } from './support/counting-upstream.js';

let rig: CountingRig;
let postern: PosternHarness;
let auth: string;
const clients: DavTestClient[] = [];

beforeAll(async () => {
  rig = await startCountingRig({ limits: { maxConnectionsPerAddress: 2 } });
  ({ postern, auth } = rig);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await rig?.stop();
});

/** A client of its own (own keep-alive agent), so each one holds its own connection. */
function newClient(): DavTestClient {
  const c = davClient(postern.port('dav'), postern.caPem);
  clients.push(c);
  return c;
}

const get = (c: DavTestClient) => c.request({ path: '/alice/', headers: { authorization: auth } });

it('answers requests on connections beyond the per-address cap with 503 and closes them; a closed connection frees its slot', async () => {
  const first = newClient();
  const second = newClient();
  expect((await get(first)).status).toBe(200);
  expect((await get(second)).status).toBe(200);
  const before = rig.requests();

  const third = newClient();
  const refused = await get(third);
  expect(refused.status).toBe(503);
  expect(refused.headers['retry-after']).toBe('10');
  expect(refused.headers.connection).toBe('close');
  expect(refused.text).toBe(`${REPLY_TEXT.tooManyConnections}\n`);
  expect(rig.requests()).toBe(before); // never forwarded
  await new Promise<void>((resolve) => (refused.socket.destroyed ? resolve() : refused.socket.once('close', () => resolve())));
  expect(postern.logs.events('connection.limit')).toEqual([expect.objectContaining({ ip: '127.0.0.1', limit: 'address' })]);

  // The two admitted connections still work (keep-alive: the same sockets).
  const again = await get(first);
  expect(again.status).toBe(200);

  // Closing one frees a slot: a new connection is admitted once postern has seen the close.
  first.close();
  const fourth = newClient();
  const deadline = Date.now() + 5_000;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await get(fourth)).status;
    if (status === 200) break;
    fourth.agent.destroy(); // a refused connection is closed anyway; start afresh
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(status).toBe(200);
});
