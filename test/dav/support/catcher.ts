/**
 * The rig for "does anything leave the configured upstream origin?": a recording upstream (the
 * only configured origin, answering 207 to everything and remembering method, path and
 * Authorization of each request), a "catcher" on another port of the same loopback address that
 * must never see a connection, and a postern in front of the recorder with alice and two
 * single-scope passwords. A raw TLS client sends request lines exactly as given: http.request
 * would normalise or refuse many of the targets these tests need.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { routingPath } from '../../../src/dav/request-target.js';
import { startPostern, type PosternHarness } from '../../helpers/postern.js';
import { basic } from './client.js';

export interface Recorded {
  method: string;
  url: string;
  host: string | undefined;
  authorization: string | undefined;
  destination: string | undefined;
  /** A collection-kind probe (Depth-0 PROPFIND of resourcetype) rather than a relayed request. */
  probe: boolean;
}

export interface CatcherRig {
  postern: PosternHarness;
  /** `http://127.0.0.1:<port>`: the configured upstream. */
  upstreamOrigin: string;
  /** Port of the catcher (same address as the upstream). */
  catcherPort: number;
  /** Connections the catcher accepted: must stay 0. */
  caught(): number;
  recorded: Recorded[];
  auth: { full: string; caldav: string; carddav: string };
  /** Sends `head` (the request line and headers, CRLF-separated, without the final blank line). */
  raw(head: string, body?: string, settleMs?: number): Promise<RawAnswer>;
  stop(): Promise<void>;
}

export interface RawAnswer {
  status: number;
  head: string;
  body: string;
  /** The server closed the connection after this answer. */
  closed: boolean;
}

export async function startCatcherRig(dav: Record<string, unknown> = {}): Promise<CatcherRig> {
  const recorded: Recorded[] = [];
  // /alice/cal/ is a calendar and /alice/book/ an address book, as far as probes can tell.
  const upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const probe = req.method === 'PROPFIND' && req.headers.depth === '0' && Buffer.concat(chunks).toString().includes('<d:resourcetype/>');
      recorded.push({ method: req.method!, url: req.url!, host: req.headers.host, authorization: req.headers.authorization, destination: req.headers.destination as string | undefined, probe });
      const path = routingPath(req.url!.split('?')[0]!) ?? '';
      const kind = /^\/alice\/cal\/?$/.test(path) ? '<C:calendar/>' : /^\/alice\/book\/?$/.test(path) ? '<R:addressbook/>' : '';
      res.writeHead(207, { 'content-type': 'application/xml' });
      res.end(`<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:R="urn:ietf:params:xml:ns:carddav"><response><href>${req.url}</href><propstat><prop><resourcetype><collection/>${kind}</resourcetype></prop></propstat></response></multistatus>`);
    });
  });
  let caught = 0;
  const catcher = net.createServer((socket) => {
    caught++;
    socket.destroy();
  });
  await Promise.all([upstream, catcher].map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
  const upstreamOrigin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const catcherPort = (catcher.address() as AddressInfo).port;
  const closeServers = async () => {
    upstream.closeAllConnections();
    await Promise.all([upstream, catcher].map((s) => new Promise((resolve) => s.close(resolve))));
  };
  let postern: PosternHarness;
  try {
    postern = await startPostern({
      config: { dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: `${upstreamOrigin}/`, carddavUpstream: `${upstreamOrigin}/`, ...dav } },
      secrets: ['alice-upstream-secret'],
    });
  } catch (err) {
    await closeServers();
    throw err;
  }
  await postern.addUser('alice', 'alice primary passphrase', { mode: 'password', secret: 'alice-upstream-secret' });
  const make = async (scopes?: string) => basic('alice', (await postern.newPassword('alice', 'alice primary passphrase', { scopes })).password);
  const auth = { full: await make(), caldav: await make('caldav'), carddav: await make('carddav') };
  const port = postern.port('dav');
  return {
    postern, upstreamOrigin, catcherPort, recorded, auth,
    caught: () => caught,
    raw: (head, body, settleMs) => rawRequest(port, postern.caPem, head, body, settleMs),
    async stop() {
      try {
        await postern.stop();
      } finally {
        await closeServers();
      }
    },
  };
}

/** One request on a fresh TLS connection; resolves with the first answer (or status 0 if none came). */
export function rawRequest(port: number, ca: string, head: string, body = '', settleMs = 150): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    let data = Buffer.alloc(0);
    let answer: RawAnswer | null = null;
    const finish = (closed: boolean) => {
      socket.destroy();
      resolve(answer ? { ...answer, closed } : { status: 0, head: data.toString('latin1'), body: '', closed });
    };
    const timer = setTimeout(() => finish(false), 5000);
    socket.on('error', () => undefined);
    socket.on('secureConnect', () => socket.write(`${head}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`));
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      answer ??= parseAnswer(data);
      // Give the server a moment to close after its answer, so that `closed` says whether it did.
      if (answer) setTimeout(() => (clearTimeout(timer), finish(false)), settleMs);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      finish(true);
    });
  });
}

function parseAnswer(data: Buffer): RawAnswer | null {
  const text = data.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = text.slice(0, end);
  const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
  if (text.length < end + 4 + length) return null;
  return { status: Number(head.slice(9, 12)), head, body: text.slice(end + 4, end + 4 + length), closed: false };
}
