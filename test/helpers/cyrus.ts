// Starts a real Cyrus IMAP 3.6 httpd (Debian's cyrus-common + cyrus-caldav; no cyrus-imapd, which
// conflicts with dovecot-imapd) in the shape Fastmail serves: two TLS origins, one layout.
//
//   https://caldav.fastmail.test:PORT/    on 127.0.0.11     (CalDAV origin)
//   https://carddav.fastmail.test:PORT/   on 127.0.0.12     (CardDAV origin)
//
// Both origins are one Cyrus `master` with two `httpd -s` services (implicit TLS), one per address,
// on the same port, so both hosts serve the whole namespace, as Fastmail's do:
//   /.well-known/caldav  → 301 https://<host>/dav/calendars     (Cyrus's own redirect)
//   /.well-known/carddav → 301 https://<host>/dav/addressbooks
//   /dav/principals/user/<u>/      principal (current-user-principal of every collection)
//   /dav/calendars/user/<u>/       calendar-home-set; Cyrus provisions `Default` (and Inbox/Outbox)
//   /dav/addressbooks/user/<u>/    addressbook-home-set; Cyrus provisions `Default`
// Users authenticate with HTTP Basic against a sasldb in the temp dir (sasl auxprop); a wrong
// password gets 401. Cyrus's DAV homes need the user's mailbox to exist and httpd does not create it,
// so start-up delivers one message per user over LMTP (`deliver` → `lmtpd` with autocreate_post),
// then touches both homes once so the provisioning (about a second per user) happens here, not in a
// test. Names resolve only through `hosts`/`lookup` (see dav-hosts.ts); trust `caPem`.
//
// Cyrus services refuse to run as root: as root the harness runs them as Debian's `cyrus` user and
// hands it the temp dir; otherwise as the current user (`cyrus_user`). Cyrus logs only to syslog
// (/dev/log), so a failure to start is reported with what the harness saw, not Cyrus's own words.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chown, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import type { MailUser } from './dovecot.js';
import { hostFetch } from './dav-fetch.js';
import { hostLookup, makeHostCertificate, portFreeOnAll, type HostMap, type LookupFunction } from './dav-hosts.js';
import { hasExited, once, stopChild } from './child.js';
import { makeTempDir, removeTempDir } from './tmp.js';

export interface CyrusOptions {
  users: MailUser[];
}

export interface CyrusServer {
  /** `https://caldav.fastmail.test:PORT` (origin form, no trailing slash). */
  caldavOrigin: string;
  /** `https://carddav.fastmail.test:PORT`. */
  carddavOrigin: string;
  caldavHost: string;
  carddavHost: string;
  port: number;
  /** Host name → loopback address for both origins; give it (or `lookup`) to whatever connects. */
  hosts: HostMap;
  lookup: LookupFunction;
  /** The self-signed certificate both origins present (SAN: both names and addresses). */
  caPem: string;
  caFile: string;
  principalPath(user: string): string;
  calendarHomePath(user: string): string;
  addressbookHomePath(user: string): string;
  users: MailUser[];
  dir: string;
  stop(): Promise<void>;
}

export const CYRUS_CALDAV_HOST = 'caldav.fastmail.test';
export const CYRUS_CARDDAV_HOST = 'carddav.fastmail.test';
const CALDAV_ADDRESS = '127.0.0.11';
const CARDDAV_ADDRESS = '127.0.0.12';
const BIN = process.env.CYRUS_BIN_DIR ?? '/usr/lib/cyrus/bin';
const SASLPASSWD = '/usr/sbin/saslpasswd2';
const READY_TIMEOUT_MS = 20_000;
const START_ATTEMPTS = 3;
const run = promisify(execFile);
const liveServers = new Set<ChildProcess>();
let exitHookInstalled = false;

/** The Cyrus programs the harness runs; rejects with the fix when one is missing. */
export async function findCyrus(): Promise<string> {
  const needed = [join(BIN, 'master'), join(BIN, 'httpd'), join(BIN, 'lmtpd'), join(BIN, 'deliver'), SASLPASSWD];
  for (const file of needed) {
    await access(file, constants.X_OK).catch(() => {
      throw new Error(`${file} not found: install cyrus-common, cyrus-caldav and sasl2-bin (scripts/install-test-deps.sh)`);
    });
  }
  return join(BIN, 'master');
}

export async function startCyrus(options: CyrusOptions): Promise<CyrusServer> {
  const master = await findCyrus();
  options.users.forEach(checkUser);
  const dir = await makeTempDir('postern-cyrus-');
  try {
    const cert = await makeHostCertificate(dir, [CYRUS_CALDAV_HOST, CYRUS_CARDDAV_HOST], [CALDAV_ADDRESS, CARDDAV_ADDRESS]);
    await Promise.all(['conf', 'spool', 'run'].map((d) => mkdir(join(dir, d))));
    for (const user of options.users) await addSaslUser(dir, user);
    const owner = await serviceUser();
    await writeFile(join(dir, 'imapd.conf'), renderImapdConf(dir, owner.name));
    if (owner.uid !== process.getuid?.()) await chownTree(dir, owner.uid, owner.gid);
    const { child, port } = await startWithRetries(master, dir);
    const server = describe(dir, port, cert.caPem, cert.certFile, options.users, child);
    try {
      for (const user of options.users) await provision(dir, server, user);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
}

function checkUser(user: MailUser): void {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(user.name)) throw new Error(`unsupported Cyrus user name: ${user.name}`);
  if (!user.password || /[\r\n]/.test(user.password)) throw new Error(`unsupported password for ${user.name}`);
}

/** The password goes through stdin (`-p`), never argv. The realm is Cyrus's `servername`. */
async function addSaslUser(dir: string, user: MailUser): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile(SASLPASSWD, ['-p', '-c', '-f', join(dir, 'sasldb2'), '-u', CYRUS_CALDAV_HOST, user.name], (err, _out, stderr) =>
      err ? reject(new Error(`saslpasswd2 for ${user.name} failed: ${stderr || err.message}`)) : resolve(),
    );
    child.stdin?.end(user.password);
  });
}

async function serviceUser(): Promise<{ name: string; uid: number; gid: number }> {
  const me = userInfo();
  if (me.uid !== 0) return { name: me.username, uid: me.uid, gid: me.gid };
  const { stdout } = await run('id', ['-u', 'cyrus']).catch(() => {
    throw new Error('running as root but there is no `cyrus` user to run Cyrus as (install cyrus-common)');
  });
  const gid = Number((await run('id', ['-g', 'cyrus'])).stdout.trim());
  return { name: 'cyrus', uid: Number(stdout.trim()), gid };
}

async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await chown(path, uid, gid);
  if (!(await stat(path)).isDirectory()) return;
  for (const entry of await readdir(path)) await chownTree(join(path, entry), uid, gid);
}

function renderImapdConf(dir: string, owner: string): string {
  return `# Generated by test/helpers/cyrus.ts; the only config this instance reads.
configdirectory: ${dir}/conf
partition-default: ${dir}/spool
servername: ${CYRUS_CALDAV_HOST}
cyrus_user: ${owner}
httpmodules: caldav carddav
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: ${dir}/sasldb2
sasl_mech_list: PLAIN
autocreate_post: 1
autocreate_quota: 0
lmtpsocket: ${dir}/run/lmtp
idlesocket: ${dir}/run/idle
notifysocket: ${dir}/run/notify
tls_server_cert: ${dir}/cert.pem
tls_server_key: ${dir}/key.pem
syslog_prefix: postern-cyrus
`;
}

function renderCyrusConf(dir: string, port: number): string {
  const conf = join(dir, 'imapd.conf');
  return `# Generated by test/helpers/cyrus.ts: only the two DAV origins and the LMTP socket for provisioning.
START {
  recover cmd="ctl_cyrusdb -r -C ${conf}"
}
SERVICES {
  caldav cmd="httpd -s -C ${conf}" listen="${CALDAV_ADDRESS}:${port}"
  carddav cmd="httpd -s -C ${conf}" listen="${CARDDAV_ADDRESS}:${port}"
  lmtpunix cmd="lmtpd -a -C ${conf}" listen="${dir}/run/lmtp"
}
EVENTS {
}
`;
}

/** The probed port may be taken before master binds it; master then serves nothing there: retry. */
async function startWithRetries(master: string, dir: string): Promise<{ child: ChildProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await portFreeOnAll([CALDAV_ADDRESS, CARDDAV_ADDRESS]);
    await writeFile(join(dir, 'cyrus.conf'), renderCyrusConf(dir, port));
    const child = spawnMaster(master, dir);
    try {
      await waitReady(child, port);
      return { child, port };
    } catch (err) {
      await stopChild(child);
      if (attempt >= START_ATTEMPTS) throw err;
    }
  }
}

/**
 * `detached`: master's shutdown signals its whole process group (kill(0, SIGTERM)); in the test
 * runner's group that would be the runner itself.
 */
function spawnMaster(master: string, dir: string): ChildProcess {
  const args = ['-C', join(dir, 'imapd.conf'), '-M', join(dir, 'cyrus.conf'), '-p', join(dir, 'run', 'master.pid'), '-l', '32'];
  const child = spawn(master, args, { stdio: 'ignore', detached: true });
  child.on('error', () => undefined);
  track(child);
  return child;
}

/** A test run that dies without calling stop() must not leave Cyrus behind. */
function track(child: ChildProcess): void {
  if (!exitHookInstalled) process.once('exit', () => liveServers.forEach((c) => c.kill('SIGTERM')));
  exitHookInstalled = true;
  liveServers.add(child);
  child.once('exit', () => liveServers.delete(child));
}

/** Ready = both httpd services complete a TLS handshake (master forks httpd per connection). */
async function waitReady(child: ChildProcess, port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (hasExited(child)) throw new Error(`cyrus master exited (code ${child.exitCode}) before it was ready; Cyrus logs to syslog only`);
    const ready = await Promise.all([CALDAV_ADDRESS, CARDDAV_ADDRESS].map((a) => handshakes(a, port)));
    if (ready.every(Boolean)) return;
    if (Date.now() > deadline) {
      throw new Error(`cyrus httpd not answering TLS on ${CALDAV_ADDRESS}/${CARDDAV_ADDRESS}:${port}; Cyrus logs to syslog only`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function handshakes(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, rejectUnauthorized: false, timeout: 2_000 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

function describe(dir: string, port: number, caPem: string, caFile: string, users: MailUser[], child: ChildProcess): CyrusServer {
  const hosts: HostMap = { [CYRUS_CALDAV_HOST]: CALDAV_ADDRESS, [CYRUS_CARDDAV_HOST]: CARDDAV_ADDRESS };
  const stop = once(async () => {
    await stopChild(child);
    await removeTempDir(dir);
  });
  return {
    caldavOrigin: `https://${CYRUS_CALDAV_HOST}:${port}`,
    carddavOrigin: `https://${CYRUS_CARDDAV_HOST}:${port}`,
    caldavHost: CYRUS_CALDAV_HOST,
    carddavHost: CYRUS_CARDDAV_HOST,
    port,
    hosts,
    lookup: hostLookup(hosts),
    caPem,
    caFile,
    principalPath: (user) => `/dav/principals/user/${user}/`,
    calendarHomePath: (user) => `/dav/calendars/user/${user}/`,
    addressbookHomePath: (user) => `/dav/addressbooks/user/${user}/`,
    users,
    dir,
    stop,
  };
}

/** Creates the user's mailbox (LMTP autocreate), then lets httpd provision both DAV homes. */
async function provision(dir: string, server: CyrusServer, user: MailUser): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile(join(BIN, 'deliver'), ['-C', join(dir, 'imapd.conf'), user.name], (err, _out, stderr) =>
      err ? reject(new Error(`cyrus deliver to ${user.name} failed: ${stderr || err.message}`)) : resolve(),
    );
    child.stdin?.end(`From: postern-tests@fastmail.test\r\nTo: ${user.name}\r\nSubject: mailbox\r\n\r\nCreates the mailbox.\r\n`);
  });
  const client = hostFetch({ caPem: server.caPem, hosts: server.hosts });
  try {
    const authorization = `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}`;
    for (const url of [server.caldavOrigin + server.calendarHomePath(user.name), server.carddavOrigin + server.addressbookHomePath(user.name)]) {
      const res = await client.fetch(url, { method: 'PROPFIND', headers: { authorization, depth: '0' } });
      if (res.status !== 207) throw new Error(`cyrus did not provision ${url} for ${user.name}: ${res.status}`);
    }
  } finally {
    client.close();
  }
}
