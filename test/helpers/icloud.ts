// Starts the iCloud shape for integration tests: discovery hosts that hand out a sibling host.
//
//   https://caldav.icloud.test:PORT/         127.0.0.21   discovery (CalDAV)
//   https://p07-caldav.icloud.test:PORT/     127.0.0.22   the account's partition (CalDAV)
//   https://contacts.icloud.test:PORT/       127.0.0.23   discovery (CardDAV)
//   https://p07-contacts.icloud.test:PORT/   127.0.0.24   the account's partition (CardDAV)
//
// On a discovery host, `/.well-known/caldav` (resp. `carddav`) answers 301 `/`, and a PROPFIND
// (of `/`, as clients send it) answers with current-user-principal and homes as ABSOLUTE URLs on the
// partition host, under the user's numeric dsid: `https://p07-caldav.icloud.test:PORT/<dsid>/<u>/`.
// Every other method on a discovery host is 405. On a partition host, `/<dsid>/…` is the account;
// anything else is 404. A request whose Host is not the name of the address it reached gets 421
// (RFC 9110 §15.5.20), so a proxy that connects to the wrong host for a URL fails loudly.
//
// The DAV server is a real Radicale (test/helpers/radicale.ts; authentication, rights, storage).
// The in-process part is only the front above, because no Debian server hands out another host by
// itself. It does exactly two things beyond relaying bytes: it forwards `/<dsid>/rest` as `/rest`
// with `X-Script-Name: /<dsid>` (Radicale's reverse-proxy prefix, so Radicale itself writes the
// `/<dsid>/…` hrefs), and on discovery hosts it turns the path-absolute hrefs `/<dsid>/…` of the
// multistatus into absolute partition URLs (on partition hosts too with `hrefs: 'absolute'`). The dsid is picked from the Basic user name only to
// build the prefix; Radicale alone decides whether the password is right. `requests` records what
// the front saw (host, method, path, status), so a test can check who talked to which host.
import { once as onceEvent } from 'node:events';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { MailUser } from './dovecot.js';
import { hostLookup, makeHostCertificate, portFreeOnAll, type HostMap, type LookupFunction } from './dav-hosts.js';
import { once } from './child.js';
import { startRadicale, type RadicaleServer } from './radicale.js';
import { makeTempDir, removeTempDir } from './tmp.js';

export interface ICloudOptions {
  users: MailUser[];
  /**
   * The hrefs partition hosts write. `path` (default): path-absolute `/<dsid>/…`, as Radicale writes
   * them; only discovery hands out absolute URLs. `absolute`: the front turns them into absolute
   * partition URLs too. tsdav on its own needs `absolute`: it resolves every href against the
   * discovery origin, so it cannot match `/<dsid>/…` to the partition principal (through postern, one
   * origin, it needs neither).
   */
  hrefs?: 'path' | 'absolute';
}

export interface FrontRequest {
  host: string;
  method: string;
  path: string;
  status: number;
}

export interface ICloudServer {
  /** `https://caldav.icloud.test:PORT`: what a user configures for calendars. */
  caldavOrigin: string;
  /** `https://p07-caldav.icloud.test:PORT`: where discovery sends the client. */
  caldavPartitionOrigin: string;
  /** `https://contacts.icloud.test:PORT`: what a user configures for contacts. */
  contactsOrigin: string;
  contactsPartitionOrigin: string;
  port: number;
  /** All four names → their loopback addresses. */
  hosts: HostMap;
  lookup: LookupFunction;
  caPem: string;
  caFile: string;
  /** The account's numeric id, the first path segment on the partition hosts. */
  dsid(user: string): string;
  /** `/<dsid>/<u>/` on a partition host: principal and both homes (Radicale's layout). */
  principalPath(user: string): string;
  calendarHomePath(user: string): string;
  addressbookHomePath(user: string): string;
  /** The real server behind the front, for checks with the real credentials. */
  radicale: RadicaleServer;
  requests: FrontRequest[];
  users: MailUser[];
  stop(): Promise<void>;
}

export const ICLOUD_HOSTS = {
  caldav: 'caldav.icloud.test',
  caldavPartition: 'p07-caldav.icloud.test',
  contacts: 'contacts.icloud.test',
  contactsPartition: 'p07-contacts.icloud.test',
} as const;

const ADDRESSES: HostMap = {
  [ICLOUD_HOSTS.caldav]: '127.0.0.21',
  [ICLOUD_HOSTS.caldavPartition]: '127.0.0.22',
  [ICLOUD_HOSTS.contacts]: '127.0.0.23',
  [ICLOUD_HOSTS.contactsPartition]: '127.0.0.24',
};
const START_ATTEMPTS = 3;

interface Role {
  name: string;
  /** Set on discovery hosts: the partition origin it hands out, and its well-known service. */
  discovery?: { partition: string; wellKnown: string };
}

export async function startICloud(options: ICloudOptions): Promise<ICloudServer> {
  const dsids = new Map(options.users.map((u, i) => [u.name, String(1_700_000_000 + 7_919 * (i + 1))]));
  const radicale = await startRadicale({ users: options.users });
  const dir = await makeTempDir('postern-icloud-');
  const servers: https.Server[] = [];
  const stop = once(async () => {
    await Promise.all(servers.map((s) => closeServer(s)));
    await radicale.stop();
    await removeTempDir(dir);
  });
  try {
    const cert = await makeHostCertificate(dir, Object.keys(ADDRESSES), Object.values(ADDRESSES));
    const requests: FrontRequest[] = [];
    const port = await listenAll(servers, cert, (port) => roles(port), { hrefs: options.hrefs ?? 'path', radicale, dsids, requests });
    const origin = (host: string) => `https://${host}:${port}`;
    const dsid = (user: string) => {
      const id = dsids.get(user);
      if (id === undefined) throw new Error(`no such iCloud test user: ${user}`);
      return id;
    };
    const home = (user: string) => `/${dsid(user)}/${user}/`;
    return {
      caldavOrigin: origin(ICLOUD_HOSTS.caldav),
      caldavPartitionOrigin: origin(ICLOUD_HOSTS.caldavPartition),
      contactsOrigin: origin(ICLOUD_HOSTS.contacts),
      contactsPartitionOrigin: origin(ICLOUD_HOSTS.contactsPartition),
      port,
      hosts: ADDRESSES,
      lookup: hostLookup(ADDRESSES),
      caPem: cert.caPem,
      caFile: cert.certFile,
      dsid,
      principalPath: home,
      calendarHomePath: home,
      addressbookHomePath: home,
      radicale,
      requests,
      users: options.users,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function roles(port: number): Role[] {
  const partition = (host: string) => `https://${host}:${port}`;
  return [
    { name: ICLOUD_HOSTS.caldav, discovery: { partition: partition(ICLOUD_HOSTS.caldavPartition), wellKnown: '/.well-known/caldav' } },
    { name: ICLOUD_HOSTS.caldavPartition },
    { name: ICLOUD_HOSTS.contacts, discovery: { partition: partition(ICLOUD_HOSTS.contactsPartition), wellKnown: '/.well-known/carddav' } },
    { name: ICLOUD_HOSTS.contactsPartition },
  ];
}

interface Backend {
  hrefs: 'path' | 'absolute';
  radicale: RadicaleServer;
  dsids: Map<string, string>;
  requests: FrontRequest[];
}

/** One HTTPS listener per name, all on one port (as iCloud's are all on 443); retried on a lost race. */
async function listenAll(
  servers: https.Server[],
  cert: { certFile: string; keyFile: string; caPem: string },
  rolesFor: (port: number) => Role[],
  backend: Backend,
): Promise<number> {
  const tls = { cert: await readFile(cert.certFile), key: await readFile(cert.keyFile) };
  for (let attempt = 1; ; attempt++) {
    const port = await portFreeOnAll(Object.values(ADDRESSES));
    const started: https.Server[] = [];
    try {
      for (const role of rolesFor(port)) {
        const server = https.createServer(tls, (req, res) => handle(role, backend, req, res));
        started.push(server);
        server.listen(port, ADDRESSES[role.name]);
        await onceEvent(server, 'listening');
      }
      servers.push(...started);
      return (started[0]!.address() as AddressInfo).port;
    } catch (err) {
      await Promise.all(started.map((s) => closeServer(s)));
      if (attempt >= START_ATTEMPTS || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}

function closeServer(server: https.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function handle(role: Role, backend: Backend, req: http.IncomingMessage, res: http.ServerResponse): void {
  const path = req.url ?? '/';
  const method = req.method ?? 'GET';
  res.on('finish', () => backend.requests.push({ host: role.name, method, path, status: res.statusCode }));
  const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
  if (host !== role.name) return void res.writeHead(421).end();
  if (role.discovery) return discover(role.discovery, backend, req, res, path, method);
  const match = /^\/(\d+)(\/.*)$/.exec(path);
  if (!match) return void res.writeHead(404).end();
  const [, dsid, rest] = match as unknown as [string, string, string];
  const rewrite = backend.hrefs === 'absolute' ? { from: `>/${dsid}/`, to: `>https://${req.headers.host}/${dsid}/` } : null;
  relay(backend, req, res, { path: rest, prefix: `/${dsid}`, rewrite });
}

function discover(discovery: NonNullable<Role['discovery']>, backend: Backend, req: http.IncomingMessage, res: http.ServerResponse, path: string, method: string): void {
  if (path === discovery.wellKnown) return void res.writeHead(301, { location: '/' }).end();
  if (method !== 'PROPFIND') return void res.writeHead(405, { allow: 'PROPFIND' }).end();
  const dsid = backend.dsids.get(basicUser(req.headers.authorization) ?? '') ?? '0';
  relay(backend, req, res, { path, prefix: `/${dsid}`, rewrite: { from: `>/${dsid}/`, to: `>${discovery.partition}/${dsid}/` } });
}

function basicUser(authorization: string | undefined): string | null {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization ?? '');
  if (!match) return null;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? null : decoded.slice(0, colon);
}

interface RelaySpec {
  path: string;
  prefix: string;
  /** Discovery hosts (and partition hosts with `hrefs: 'absolute'`): `/<dsid>/…` hrefs become absolute. */
  rewrite: { from: string; to: string } | null;
}

function relay(backend: Backend, req: http.IncomingMessage, res: http.ServerResponse, spec: RelaySpec): void {
  const headers = { ...req.headers, host: `${backend.radicale.host}:${backend.radicale.port}`, 'x-script-name': spec.prefix };
  const upstream = http.request(
    { host: backend.radicale.host, port: backend.radicale.port, method: req.method, path: spec.path, headers },
    (answer) => {
      if (!spec.rewrite) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        const body = Buffer.from(Buffer.concat(chunks).toString('utf8').split(spec.rewrite!.from).join(spec.rewrite!.to), 'utf8');
        const { 'content-length': _length, 'transfer-encoding': _encoding, ...rest } = answer.headers;
        res.writeHead(answer.statusCode ?? 502, { ...rest, 'content-length': body.length }).end(body);
      });
    },
  );
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
}
