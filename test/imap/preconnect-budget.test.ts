// Upstream connections for clients that have not logged in (issue 9, item 5), against a real
// Dovecot behind a counting relay. Invariants pinned here:
// - idle pre-auth clients open at most the pre-connect budget of upstream connections: per client
//   address and in total, however many connect;
// - a normal client still logs in and works while the budget is spent (it connects at login);
// - a client that leaves gives its place back, and the next newcomer pre-connects again.
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCountingRelay, type CountingRelay } from '../helpers/counting-relay.js';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapClient, imapConfig, sleep } from './support.js';

const ALICE = { name: 'alice', password: 'alice-real-Secret-1' };
const PER_ADDRESS = 2;
const TOTAL = 6;
/** The one upstream connection postern makes at start-up, before any client. */
const PROBE = 1;

let dovecot: DovecotServer;
let relay: CountingRelay;
let postern: PosternHarness;
const idle = new Set<tls.TLSSocket>();

beforeAll(async () => {
  dovecot = await startDovecot({ users: [ALICE] });
  relay = await startCountingRelay({ host: dovecot.host, port: dovecot.imapsPort });
  const imap = imapConfig(dovecot, 'tls', { limits: { preConnectPerAddress: PER_ADDRESS, preConnectTotal: TOTAL } });
  imap.upstream = { ...(imap.upstream as object), host: relay.host, port: relay.port, servername: 'localhost' };
  postern = await startPostern({ config: { imap }, secrets: [ALICE.password] });
  await postern.addUser('alice', ALICE.password);
  await relay.waitForAccepted(PROBE); // postern's start-up connection (it learns the pre-login capabilities)
});

afterAll(async () => {
  for (const s of idle) s.destroy();
  await postern?.stop();
  await relay?.stop();
  await dovecot?.stop();
});

/** An unauthenticated TLS client from `localAddress` (any of 127/8 is on loopback) that has read the greeting and then sits idle. */
function idleClient(localAddress: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: postern.port('imap.implicitTls'), ca: postern.caPem, servername: 'localhost', localAddress } as tls.ConnectionOptions);
    socket.once('error', reject);
    socket.once('data', (greeting: Buffer) => {
      expect(greeting.toString()).toMatch(/^\* OK /);
      idle.add(socket);
      resolve(socket);
    });
  });
}

/** Lets pending early connections reach the relay, then reads its count (the start-up one left out). */
async function settledUpstreamCount(): Promise<number> {
  await sleep(500);
  return relay.accepted() - PROBE;
}

it('pre-auth flood: 60 idle unauthenticated connections from four addresses open no more upstream connections than the pre-connect budget', async () => {
  const addresses = ['127.0.0.1', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
  const byAddress = new Map<string, tls.TLSSocket[]>();
  for (const address of addresses) byAddress.set(address, await Promise.all(Array.from({ length: 15 }, () => idleClient(address))));
  // Four addresses × 2 would be 8: the total (6) is the bound.
  expect(await settledUpstreamCount()).toBe(TOTAL);

  // A normal client logs in and works meanwhile; it connects upstream at login.
  const { password } = await postern.newPassword('alice', ALICE.password, { label: 'while flooded' });
  const client = imapClient(postern, { user: 'alice', pass: password });
  await client.connect();
  expect((await client.list()).map((b) => b.path)).toContain('INBOX');
  await client.logout();
  expect(relay.accepted() - PROBE).toBe(TOTAL + 1);

  // The clients of one address leave: their places go back, and a newcomer pre-connects again.
  for (const s of byAddress.get('127.0.0.1')!) s.destroy();
  await sleep(300);
  await idleClient('127.0.0.6');
  await relay.waitForAccepted(PROBE + TOTAL + 2);
  await idleClient('127.0.0.6');
  await idleClient('127.0.0.6'); // the third from one address gets none: per-address budget
  expect(await settledUpstreamCount()).toBe(TOTAL + 3);
});
