/**
 * The rig for proxy behaviour a real Radicale cannot be made to show: a scriptable in-process upstream
 * on its own origin (http://127.0.0.1:<port>, plus one alias) behind a real postern with alice and one
 * app password. Before each test the upstream goes back to "record the request, fully read, and answer
 * ok"; a test swaps `rig.handler` to script anything else. `useScriptedUpstream()` registers the hooks
 * of the calling test file and returns the rig, filled in once beforeAll has run.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { startPostern, type PosternHarness } from '../../helpers/postern.js';
import { basic, davClient, type DavTestClient } from './client.js';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export const ALIAS = 'https://p07-caldav.example.net';
export const ALICE_PRIMARY = 'alice primary passphrase';
export const ALICE_UPSTREAM_SECRET = 'upstream-secret-for-alice';

export interface ScriptedRig {
  upstream: http.Server;
  upstreamOrigin: string;
  postern: PosternHarness;
  client: DavTestClient;
  /** Authorization header value for alice's app password. */
  auth: string;
  /** How the upstream answers; reset before each test. */
  handler: Handler;
  /** Requests recorded by `recordAnd` since the test began. */
  seen: SeenRequest[];
  /** Records each request (fully read) and then runs `next`. */
  recordAnd(next: Handler): Handler;
  /** The raw client connects to 127.0.0.1, so that is the Host postern derives its public origin from. */
  publicOrigin(): string;
}

export function useScriptedUpstream(): ScriptedRig {
  const rig = { seen: [] } as unknown as ScriptedRig;
  rig.recordAnd = (next) => (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      rig.seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) });
      next(req, res);
    });
  };
  rig.publicOrigin = () => `https://127.0.0.1:${rig.postern.port('dav')}`;

  beforeAll(async () => {
    rig.upstream = http.createServer((req, res) => rig.handler(req, res));
    rig.upstream.keepAliveTimeout = 200;
    await new Promise<void>((resolve) => rig.upstream.listen(0, '127.0.0.1', resolve));
    rig.upstreamOrigin = `http://127.0.0.1:${(rig.upstream.address() as AddressInfo).port}`;
    rig.postern = await startPostern({
      config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `${rig.upstreamOrigin}/`, carddavUpstream: `${rig.upstreamOrigin}/`, upstreamAliases: [ALIAS], upstreamTimeoutMs: 1500 } },
      secrets: [ALICE_UPSTREAM_SECRET],
    });
    await rig.postern.addUser('alice', ALICE_PRIMARY, { mode: 'password', secret: ALICE_UPSTREAM_SECRET });
    rig.auth = basic('alice', (await rig.postern.newPassword('alice', ALICE_PRIMARY)).password);
    rig.client = davClient(rig.postern.port('dav'), rig.postern.caPem);
  });

  afterAll(async () => {
    rig.client?.close();
    await rig.postern?.stop();
    rig.upstream?.closeAllConnections();
    await new Promise((resolve) => rig.upstream?.close(resolve));
  });

  beforeEach(() => {
    rig.seen = [];
    rig.handler = rig.recordAnd((_req, res) => res.end('ok'));
  });

  return rig;
}
