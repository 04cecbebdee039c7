/**
 * One real Radicale plus one postern whose DAV listener fronts it, with a user whose stored
 * upstream secret is the Radicale password. Each test file starts one pair in beforeAll.
 */
import { startRadicale, type RadicaleServer } from '../../helpers/radicale.js';
import { startPostern, type PosternHarness } from '../../helpers/postern.js';
import { davClient, type DavTestClient } from './client.js';

export interface DavRig {
  radicale: RadicaleServer;
  postern: PosternHarness;
  client: DavTestClient;
  port: number;
  /** Base URL of postern's DAV listener, e.g. https://localhost:PORT */
  base: string;
  stop(): Promise<void>;
}

export const ALICE = { login: 'alice', primary: 'alice primary passphrase 1', upstream: 'alice-radicale-secret-77' };
export const BOB = { login: 'bob', primary: 'bob primary passphrase 22', upstream: 'bob-radicale-secret-88' };

export async function startDavRig(dav: Record<string, unknown> = {}): Promise<DavRig> {
  const radicale = await startRadicale({ users: [{ name: ALICE.login, password: ALICE.upstream }, { name: BOB.login, password: BOB.upstream }] });
  let postern: PosternHarness;
  try {
    postern = await startPostern({
      config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: radicale.url, carddavUpstream: radicale.url, ...dav } },
      secrets: [ALICE.upstream, BOB.upstream],
    });
  } catch (err) {
    await radicale.stop();
    throw err;
  }
  await postern.addUser(ALICE.login, ALICE.primary, { mode: 'password', secret: ALICE.upstream });
  await postern.addUser(BOB.login, BOB.primary, { mode: 'password', secret: BOB.upstream });
  const port = postern.port('dav');
  const client = davClient(port, postern.caPem);
  return {
    radicale, postern, client, port,
    base: `https://localhost:${port}`,
    async stop() {
      client.close();
      try {
        await postern.stop();
      } finally {
        await radicale.stop();
      }
    },
  };
}
