// Starts the Nextcloud / SabreDAV / Baïkal shape for integration tests: one TLS origin, one prefix.
//
//   https://nextcloud.test:PORT/   on 127.0.0.13
//   /.well-known/caldav, /.well-known/carddav → 301 /remote.php/dav/   (as Nextcloud's .htaccess does,
//                                                                        answered without credentials)
//   /remote.php/dav/                          DAV root; current-user-principal below
//   /remote.php/dav/principals/users/<u>/     principal (Nextcloud's exact path)
//   /remote.php/dav/principals/users/<u>/calendars/            calendar-home-set, with `calendar/`
//   /remote.php/dav/principals/users/<u>/contacts/             addressbook-home-set, with `addressbook/`
// The homes sit below the principal (Xandikos's layout) rather than at Nextcloud's
// `/remote.php/dav/calendars/<u>/`; what the shape needs — principal, homes and collections all
// under one prefix that is not `/` on one origin — is the same.
//
// The parts are real: a real HAProxy terminates TLS and does HTTP Basic against a userlist (a wrong
// password gets its 401), then sends each user to their own real Xandikos (which is single-user and
// does no authentication) over a unix socket, started with `--route-prefix /remote.php/dav` so every
// href it writes carries the prefix. Nothing in between rewrites anything. Names resolve only through
// `hosts`/`lookup` (see dav-hosts.ts); trust `caPem`.
import { spawn, type ChildProcess } from 'node:child_process';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MailUser } from './dovecot.js';
import { hostFetch } from './dav-fetch.js';
import { hostLookup, makeHostCertificate, portFreeOnAll, type HostMap, type LookupFunction } from './dav-hosts.js';
import { hasExited, once, stopChild } from './child.js';
import { makeTempDir, removeTempDir } from './tmp.js';

export interface NextcloudOptions {
  users: MailUser[];
}

export interface NextcloudServer {
  /** `https://nextcloud.test:PORT` (origin form, no trailing slash). */
  origin: string;
  host: string;
  port: number;
  /** The DAV root every client is configured with: `/remote.php/dav/`. */
  prefix: string;
  hosts: HostMap;
  lookup: LookupFunction;
  caPem: string;
  caFile: string;
  principalPath(user: string): string;
  calendarHomePath(user: string): string;
  addressbookHomePath(user: string): string;
  users: MailUser[];
  dir: string;
  /** HAProxy's log (one line per request, with status); each Xandikos logs to xandikos-<u>.log. */
  logFile: string;
  /** Process ids of every Xandikos and of HAProxy (to check that stop() ended them). */
  pids: number[];
  stop(): Promise<void>;
}

export const NEXTCLOUD_HOST = 'nextcloud.test';
const ADDRESS = '127.0.0.13';
const PREFIX = '/remote.php/dav';
const READY_TIMEOUT_MS = 20_000;
const START_ATTEMPTS = 3;
const liveServers = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Both programs must be on PATH; rejects with the fix when one is missing. */
export async function findNextcloudParts(): Promise<void> {
  for (const [program, args] of [['xandikos', ['--version']], ['haproxy', ['-v']]] as const) {
    const child = spawn(program, args, { stdio: 'ignore' });
    const ok = await new Promise<boolean>((resolve) => {
      child.once('error', () => resolve(false));
      child.once('exit', (code) => resolve(code === 0));
    });
    if (!ok) throw new Error(`${program} not found: install xandikos and haproxy (scripts/install-test-deps.sh)`);
  }
}

export async function startNextcloud(options: NextcloudOptions): Promise<NextcloudServer> {
  options.users.forEach(checkUser);
  const dir = await makeTempDir('postern-nextcloud-');
  const children: ChildProcess[] = [];
  const stopAll = once(async () => {
    await Promise.all(children.map((c) => stopChild(c)));
    await removeTempDir(dir);
  });
  try {
    const cert = await makeHostCertificate(dir, [NEXTCLOUD_HOST], [ADDRESS]);
    await writeFile(join(dir, 'haproxy.pem'), (await readFile(cert.certFile, 'utf8')) + (await readFile(cert.keyFile, 'utf8')));
    children.push(...(await Promise.all(options.users.map((u) => spawnXandikos(dir, u.name)))));
    const logFile = join(dir, 'haproxy.log');
    const port = await startHaproxyWithRetries(dir, options.users, logFile, children);
    const hosts: HostMap = { [NEXTCLOUD_HOST]: ADDRESS };
    const server: NextcloudServer = {
      origin: `https://${NEXTCLOUD_HOST}:${port}`,
      host: NEXTCLOUD_HOST,
      port,
      prefix: `${PREFIX}/`,
      hosts,
      lookup: hostLookup(hosts),
      caPem: cert.caPem,
      caFile: cert.certFile,
      principalPath: (user) => `${PREFIX}/principals/users/${user}/`,
      calendarHomePath: (user) => `${PREFIX}/principals/users/${user}/calendars/`,
      addressbookHomePath: (user) => `${PREFIX}/principals/users/${user}/contacts/`,
      users: options.users,
      dir,
      logFile,
      pids: children.map((c) => c.pid!),
      stop: stopAll,
    };
    await waitUsersReady(server, children);
    return server;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Names go into paths and HAProxy's config, passwords into single quotes there. */
function checkUser(user: MailUser): void {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(user.name)) throw new Error(`unsupported user name: ${user.name}`);
  if (!/^[\x21-\x7e]+$/.test(user.password) || /['\\#]/.test(user.password)) throw new Error(`unsupported password for ${user.name}`);
}

async function spawnXandikos(dir: string, user: string): Promise<ChildProcess> {
  const log = await open(join(dir, `xandikos-${user}.log`), 'a');
  try {
    const args = [
      '-d', join(dir, 'data', user), '--defaults', '--route-prefix', PREFIX,
      '--current-user-principal', `/principals/users/${user}/`, '-l', join(dir, `xandikos-${user}.sock`),
    ];
    const child = spawn('xandikos', args, { stdio: ['ignore', log.fd, log.fd] });
    child.on('error', () => undefined);
    track(child);
    return child;
  } finally {
    await log.close();
  }
}

function renderHaproxyConfig(dir: string, port: number, users: MailUser[]): string {
  const lines = [
    '# Generated by test/helpers/nextcloud.ts; the only config this instance reads.',
    'global',
    '  maxconn 256',
    '  log stderr format raw local0',
    'defaults',
    '  mode http',
    '  log global',
    '  option httplog',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    ...users.flatMap((u) => [`userlist users_${u.name}`, `  user ${u.name} insecure-password '${u.password}'`]),
    'frontend nextcloud',
    `  bind ${ADDRESS}:${port} ssl crt ${dir}/haproxy.pem alpn http/1.1`,
    // Nextcloud answers RFC 6764 discovery before authentication, like its .htaccess rewrite.
    `  http-request redirect location ${PREFIX}/ code 301 if { path /.well-known/caldav /.well-known/carddav }`,
    ...users.map((u) => `  acl as_${u.name} http_auth(users_${u.name})`),
    `  http-request auth realm Nextcloud unless ${users.map((u) => `as_${u.name}`).join(' || ')}`,
    ...users.map((u) => `  use_backend xandikos_${u.name} if as_${u.name}`),
    ...users.flatMap((u) => [`backend xandikos_${u.name}`, `  server xandikos unix@${dir}/xandikos-${u.name}.sock`]),
    '',
  ];
  return lines.join('\n');
}

async function startHaproxyWithRetries(dir: string, users: MailUser[], logFile: string, children: ChildProcess[]): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const port = await portFreeOnAll([ADDRESS]);
    const conf = join(dir, 'haproxy.cfg');
    await writeFile(conf, renderHaproxyConfig(dir, port, users));
    const log = await open(logFile, 'a');
    const child = spawn('haproxy', ['-f', conf, '-db'], { stdio: ['ignore', log.fd, log.fd] });
    await log.close();
    child.on('error', () => undefined);
    track(child);
    const bound = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(true), 300);
      child.once('exit', () => (clearTimeout(timer), resolve(false)));
    });
    if (bound) {
      children.push(child);
      return port;
    }
    const text = await readFile(logFile, 'utf8').catch(() => '');
    if (attempt >= START_ATTEMPTS || !/Address already in use|cannot bind/i.test(text)) throw new Error(`haproxy exited at start:\n${text}`);
  }
}

/** A test run that dies without calling stop() must not leave the servers behind. */
function track(child: ChildProcess): void {
  if (!exitHookInstalled) process.once('exit', () => liveServers.forEach((c) => c.kill('SIGTERM')));
  exitHookInstalled = true;
  liveServers.add(child);
  child.once('exit', () => liveServers.delete(child));
}

/** Ready = every user's principal answers 207 through HAProxy (so both hops are up). */
async function waitUsersReady(server: NextcloudServer, children: ChildProcess[]): Promise<void> {
  const client = hostFetch({ caPem: server.caPem, hosts: server.hosts });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    for (const user of server.users) {
      const authorization = `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}`;
      for (;;) {
        const exited = children.find(hasExited);
        if (exited) throw new Error(`${exited.spawnfile} exited before it was ready:\n${await logs(server.dir)}`);
        const status = await client
          .fetch(server.origin + server.principalPath(user.name), { method: 'PROPFIND', headers: { authorization, depth: '0' } })
          .then(async (r) => (await r.arrayBuffer(), r.status), () => 0);
        if (status === 207) break;
        if (Date.now() > deadline) throw new Error(`nextcloud shape not ready for ${user.name} (last status ${status}):\n${await logs(server.dir)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    client.close();
  }
}

async function logs(dir: string): Promise<string> {
  return readFile(join(dir, 'haproxy.log'), 'utf8').catch(() => '');
}
