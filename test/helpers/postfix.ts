// Starts a real Postfix 3 as an SMTP submission upstream, for what Dovecot 2.3's submission service
// cannot do: SMTPUTF8 (RFC 6531, internationalised addresses). A throwaway instance with its own
// config, queue, certificate and log in a temp dir; nothing of Debian's /etc/postfix is read.
//
// - Listens on a free port of 127.0.0.1 with STARTTLS required before AUTH (Postfix binds only
//   addresses that are on an interface, so not 127.0.0.2 as Dovecot does; with
//   smtpd_tls_auth_only no AUTH is possible in clear from any address anyway).
// - AUTH is answered by a running Dovecot's auth service (smtpd_sasl_type = dovecot) through the
//   socket DOVECOT_AUTH_FOR_POSTFIX adds to it, so the users and passwords are Dovecot's own.
// - Mail for the configured addresses is delivered by Postfix's virtual(8) agent straight into those
//   Dovecot users' Maildirs, so a test reads it back over IMAP. Postfix prepends Return-Path,
//   Delivered-To and Received; `stripPostfixTrace` removes exactly those.
// Must run as root: the master switches to the postfix user itself.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants, openSync, closeSync } from 'node:fs';
import { access, chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { hasExited, once } from './child.js';
import type { DovecotServer } from './dovecot.js';
import { freePort } from './free-port.js';
import { connectLineClient } from './line-client.js';
import { dropLeadingField } from './relay-sink.js';
import { makeTempDir, removeTempDir } from './tmp.js';

const run = promisify(execFile);
const HOST = '127.0.0.1';
const MAIL_UID = 65534; // Dovecot's mail user in test/helpers/dovecot.ts
const READY_TIMEOUT_MS = 20_000;
const AUTH_SOCKET = 'auth-postfix';

/** Extra Dovecot config: an auth socket Postfix's smtpd (running as `postfix`) may use. */
export const DOVECOT_AUTH_FOR_POSTFIX = `service auth {
  unix_listener ${AUTH_SOCKET} {
    mode = 0666
  }
}
`;

export interface PostfixOptions {
  /** The Dovecot (started with DOVECOT_AUTH_FOR_POSTFIX) that authenticates and holds the mailboxes. */
  dovecot: DovecotServer;
  /** Recipient address (may be UTF-8) → Dovecot user whose INBOX receives it. */
  mailboxes: Record<string, string>;
}

export interface PostfixServer {
  host: string;
  /** SMTP submission with STARTTLS; AUTH only after it. */
  port: number;
  caPem: string;
  caFile: string;
  dir: string;
  /** Postfix's own log (maillog_file), for failure messages. */
  log(): Promise<string>;
  stop(): Promise<void>;
}

const live = new Set<string>();
let exitHookInstalled = false;

/** The postfix command, or a clear error naming the install script. */
export async function findPostfix(): Promise<string> {
  for (const candidate of ['/usr/sbin/postfix', '/usr/local/sbin/postfix']) {
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
  }
  throw new Error('postfix not found (/usr/sbin/postfix); run scripts/install-test-deps.sh');
}

export async function startPostfix(options: PostfixOptions): Promise<PostfixServer> {
  const postfix = await findPostfix();
  if (process.getuid?.() !== 0) throw new Error('startPostfix needs root: the Postfix master switches users itself');
  const authSocket = join(options.dovecot.dir, 'run', AUTH_SOCKET);
  if (!(await access(authSocket).then(() => true, () => false))) {
    throw new Error(`Dovecot has no ${AUTH_SOCKET} socket: start it with extraConfig DOVECOT_AUTH_FOR_POSTFIX`);
  }
  const dir = await makeTempDir('postern-postfix-');
  try {
    await chmod(dir, 0o755); // postfix-owned daemons must reach the queue below it
    for (const sub of ['conf', 'queue']) await mkdir(join(dir, sub));
    await mkdir(join(dir, 'data'));
    await chown(join(dir, 'data'), ...(await postfixIds()));
    await makeCertificate(dir);
    const conf = join(dir, 'conf');
    await writeFile(join(conf, 'main.cf'), mainCf(dir, options.dovecot.dir, authSocket));
    await writeFile(join(conf, 'vmailbox'), Object.entries(options.mailboxes).map(([address, user]) => `${address} ${user}/Maildir/\n`).join(''));
    const logFile = join(dir, 'postfix.log');
    const log = () => readFile(logFile, 'utf8').catch(() => '');
    const port = await startOnFreePort(postfix, conf, logFile, log);
    const stop = once(async () => {
      await stopPostfix(postfix, conf, port.child);
      await removeTempDir(dir);
    });
    const caPem = await readFile(join(dir, 'cert.pem'), 'utf8');
    return { host: HOST, port: port.number, caPem, caFile: join(dir, 'cert.pem'), dir, log, stop };
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
}

/** A probed free port can be taken before Postfix binds it: a lost race gets a new port. */
async function startOnFreePort(postfix: string, conf: string, logFile: string, log: () => Promise<string>): Promise<{ number: number; child: ChildProcess }> {
  for (let attempt = 1; ; attempt++) {
    const number = await freePort(HOST);
    await writeFile(join(conf, 'master.cf'), masterCf(number));
    const child = spawnPostfix(postfix, conf, logFile);
    try {
      await waitReady(child, number, log);
      return { number, child };
    } catch (err) {
      await stopPostfix(postfix, conf, child);
      if (attempt >= 3 || !/Address already in use/.test(String(err))) throw err;
    }
  }
}

async function postfixIds(): Promise<[number, number]> {
  const { stdout } = await run('id', ['-u', 'postfix']);
  const { stdout: gid } = await run('id', ['-g', 'postfix']);
  return [Number(stdout.trim()), Number(gid.trim())];
}

/** A self-signed P-256 certificate for 127.0.0.1 and localhost; it is its own CA. */
async function makeCertificate(dir: string): Promise<void> {
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '7',
    '-subj', '/CN=localhost', '-addext', `subjectAltName=IP:${HOST},DNS:localhost`,
  ]);
}

function mainCf(dir: string, dovecotDir: string, authSocket: string): string {
  return `# Generated by test/helpers/postfix.ts; the only config this instance reads.
compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
mail_owner = postfix
setgid_group = postdrop
# Logged by postlogd into the temp dir (there is no syslog to rely on).
maillog_file = ${dir}/postfix.log
maillog_file_prefixes = ${dir}
inet_interfaces = ${HOST}
inet_protocols = ipv4
myhostname = mx.example.test
mydomain = example.test
mydestination =
relayhost =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtputf8_enable = yes

# Submission as a provider runs it: TLS first, then AUTH, then relay for authenticated users only.
smtpd_tls_cert_file = ${dir}/cert.pem
smtpd_tls_key_file = ${dir}/key.pem
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = ${authSocket}
mynetworks =
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_client_restrictions = permit_sasl_authenticated, reject
# Nothing added to what the client sent, beyond the trace fields.
always_add_missing_headers = no
local_header_rewrite_clients =
enable_original_recipient = no

# Delivery into the Dovecot users' Maildirs, as Dovecot's mail user.
virtual_mailbox_domains = example.test
virtual_mailbox_base = ${dovecotDir}/mail
virtual_mailbox_maps = texthash:${dir}/conf/vmailbox
virtual_uid_maps = static:${MAIL_UID}
virtual_gid_maps = static:${MAIL_UID}
virtual_minimum_uid = 1
`;
}

/** Only the services this set-up uses, none chrooted (the queue is in a temp dir). */
function masterCf(port: number): string {
  return `# Generated by test/helpers/postfix.ts
${HOST}:${port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`;
}

/**
 * `postfix start-fg` runs the master in the foreground (as a child of postfix-script) in its own
 * process group, so a test run that dies without stop() can still take the whole tree down.
 */
function spawnPostfix(postfix: string, conf: string, logFile: string): ChildProcess {
  const out = openSync(logFile, 'a');
  const child = spawn(postfix, ['-c', conf, 'start-fg'], { stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  child.on('error', () => undefined);
  live.add(conf);
  child.once('exit', () => live.delete(conf));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) spawn(postfix, ['-c', c, 'abort'], { stdio: 'ignore', detached: true }).unref();
    });
  }
  return child;
}

/** `postfix stop` lets the master end its daemons; the whole group is killed if that hangs. */
async function stopPostfix(postfix: string, conf: string, child: ChildProcess): Promise<void> {
  if (hasExited(child)) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await run(postfix, ['-c', conf, 'stop']).catch(() => undefined);
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }, 5_000);
  await exited;
  clearTimeout(timer);
}

async function waitReady(child: ChildProcess, port: number, log: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      const client = await connectLineClient({ host: HOST, port, timeoutMs: 2_000 });
      const line = await client.readLine().finally(() => client.close());
      if (line.startsWith('220 ')) return;
      throw new Error(`unexpected greeting: ${line}`);
    } catch (err) {
      if (hasExited(child) || Date.now() > deadline) {
        throw new Error(`postfix not ready on ${HOST}:${port} (${(err as Error).message}):\n${await log()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** The message as the client sent it: without the Return-Path, Delivered-To and Received Postfix prepends. */
export function stripPostfixTrace(source: Buffer): Buffer {
  let rest = source;
  for (const name of ['Return-Path', 'Delivered-To', 'Received']) rest = dropLeadingField(rest, name);
  return rest;
}
