// Starts a real Dovecot 2.3 (IMAP, POP3, submission, LMTP) for integration tests: a throwaway instance with its
// own config, certificate, users, mail and log in a temp dir, on free ports of 127.0.0.2. Nothing of
// Debian's /etc/dovecot is read, and base_dir/state_dir/instance_name are per instance, so several run
// side by side. Must run as root (Dovecot's master drops to dovenull/dovecot/nobody itself).
//
// Why 127.0.0.2: Dovecot treats a client whose address equals the address it accepted on as "secured"
// and lets it send passwords in clear. Tests connect from 127.0.0.1 (the kernel's source address for the
// loopback route), so with `ssl = required` the greeting says LOGINDISABLED and LOGIN/AUTHENTICATE get
// `NO [PRIVACYREQUIRED]`, exactly as at a real provider; only STARTTLS or implicit TLS may authenticate.
//
// Quirks worth knowing in tests:
// - Master user: SASL PLAIN with an authorization identity, base64(`alice\0master\0pw`), logs the master
//   in as alice, over IMAP and submission alike (`pass = yes`: alice must exist).
// - Every failed password check is answered after up to 0.5 s: Dovecot batches failure replies on a
//   500 ms timer even with auth_failure_delay = 0. The per-IP auth penalty is switched off.
// - User names are looked up as `%Ln`: alice, ALICE and alice@example.test are the same user.
// - Dovecot treats bytes pipelined after STARTTLS as TLS handshake data: the handshake fails, it hangs up.
// - stop() takes about a second: the master waits for its children before exiting.
// Submission relays to an in-process sink (relay-sink.ts) that delivers into INBOXes through LMTP; see
// there for what arrives.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connectLineClient } from './line-client.js';
import { freePort } from './free-port.js';
import { startRelaySink, type RelaySink } from './relay-sink.js';
import { makeTempDir, removeTempDir } from './tmp.js';
import { hasExited, once, stopChild } from './child.js';

export { addressOf, stripDeliveryTrace } from './relay-sink.js';

export interface MailUser {
  name: string;
  password: string;
  /**
   * passwd-file extra fields (space-separated key=value, e.g. `nologin=y reason=...`), for a user
   * Dovecot refuses for a reason of its own.
   */
  extraFields?: string;
}

export interface DovecotOptions {
  users: MailUser[];
  masterUser?: MailUser;
  /** Extra Dovecot settings appended to the generated config (e.g. enabling imap_zlib for COMPRESS). */
  extraConfig?: string;
}

export interface DovecotServer {
  host: string;
  /** Plaintext IMAP with STARTTLS (auth only after STARTTLS). */
  imapPort: number;
  imapsPort: number;
  /** Plaintext POP3 with STLS (auth only after STLS), and POP3 over implicit TLS. */
  pop3Port: number;
  pop3sPort: number;
  /** Submission with STARTTLS, AUTH required (RFC 6409). */
  submissionPort: number;
  submissionsPort: number;
  lmtpPort: number;
  /** The self-signed certificate every listener presents; trust it as the CA. */
  caPem: string;
  caFile: string;
  dir: string;
  logFile: string;
  masterUser: MailUser;
  users: MailUser[];
  relaySink: RelaySink;
  stop(): Promise<void>;
}

interface Ports {
  imap: number;
  imaps: number;
  pop3: number;
  pop3s: number;
  submission: number;
  submissions: number;
  lmtp: number;
}

const HOST = '127.0.0.2';
const MAIL_UID = 65534; // nobody/nogroup: Dovecot refuses to run mail processes as root.
const MAIL_GID = 65534;
const READY_TIMEOUT_MS = 15_000;
const START_ATTEMPTS = 3;
const liveMasters = new Set<ChildProcess>();
let exitHookInstalled = false;
const run = promisify(execFile);

/** The dovecot binary, or a clear error naming the install script. */
export async function findDovecot(): Promise<string> {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin'].filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, 'dovecot');
    if (await isExecutable(candidate)) return candidate;
  }
  throw new Error('dovecot binary not found (looked in PATH, /usr/sbin); run scripts/install-test-deps.sh');
}

async function isExecutable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

export async function startDovecot(options: DovecotOptions): Promise<DovecotServer> {
  const binary = await findDovecot();
  if (process.getuid?.() !== 0) throw new Error('startDovecot needs root: the Dovecot master switches users itself');
  const masterUser = options.masterUser ?? { name: 'postern-master', password: randomBytes(12).toString('hex') };
  [...options.users, masterUser].forEach(checkUser);
  const dir = await makeTempDir('postern-dovecot-');
  try {
    await prepareDir(dir, options.users, masterUser);
    await writeFile(join(dir, 'local.conf'), options.extraConfig ?? '');
    return await startWithRetries(binary, dir, options.users, masterUser);
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
}

/** Names go into passwd-file lines and `%Ln`-normalised lookups: keep them simple and lower case. */
function checkUser(user: MailUser): void {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(user.name)) throw new Error(`unsupported Dovecot user name: ${user.name}`);
  if (!user.password || /[:\r\n]/.test(user.password)) {
    throw new Error(`unsupported password for Dovecot user ${user.name} (empty, or contains ':' or newline)`);
  }
}

async function prepareDir(dir: string, users: MailUser[], master: MailUser): Promise<void> {
  await chmod(dir, 0o755); // mail processes run as nobody and must reach mail/
  const mail = join(dir, 'mail');
  await mkdir(mail, { mode: 0o700 });
  await chown(mail, MAIL_UID, MAIL_GID);
  await writeFile(join(dir, 'passwd'), users.map(passwdLine).join(''));
  await writeFile(join(dir, 'master-users'), passwdLine(master));
  await makeCertificate(dir);
}

function passwdLine(user: MailUser): string {
  return `${user.name}:{PLAIN}${user.password}::::::${user.extraFields ?? ''}\n`;
}

/** A self-signed P-256 certificate valid for 127.0.0.2 and localhost; it is its own CA. */
async function makeCertificate(dir: string): Promise<void> {
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '7',
    '-subj', '/CN=localhost', '-addext', `subjectAltName=IP:${HOST},DNS:localhost`,
  ]);
}

/** Free ports are only free when probed; a lost race shows up as EADDRINUSE and gets new ports. */
async function startWithRetries(
  binary: string,
  dir: string,
  users: MailUser[],
  masterUser: MailUser,
): Promise<DovecotServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(binary, dir, users, masterUser);
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !/Address already in use/.test(String(err))) throw err;
    }
  }
}

async function startOnce(
  binary: string,
  dir: string,
  users: MailUser[],
  masterUser: MailUser,
): Promise<DovecotServer> {
  const ports = await allocatePorts();
  const relaySink = await startRelaySink({ users: users.map((u) => u.name), lmtp: { host: HOST, port: ports.lmtp } });
  const conf = join(dir, 'dovecot.conf');
  const logFile = join(dir, 'dovecot.log');
  await writeFile(conf, renderConfig(dir, ports, relaySink.port));
  const child = spawnDovecot(binary, conf);
  const caPem = await readFile(join(dir, 'cert.pem'), 'utf8');
  try {
    await waitReady(child, ports, caPem, logFile);
  } catch (err) {
    await Promise.all([stopChild(child), relaySink.stop()]);
    throw err;
  }
  const stop = once(async () => {
    await Promise.all([stopChild(child), relaySink.stop()]);
    await removeTempDir(dir);
  });
  return {
    host: HOST,
    imapPort: ports.imap,
    imapsPort: ports.imaps,
    pop3Port: ports.pop3,
    pop3sPort: ports.pop3s,
    submissionPort: ports.submission,
    submissionsPort: ports.submissions,
    lmtpPort: ports.lmtp,
    caPem,
    caFile: join(dir, 'cert.pem'),
    dir,
    logFile,
    masterUser,
    users,
    relaySink,
    stop,
  };
}

async function allocatePorts(): Promise<Ports> {
  const taken = new Set<number>();
  const next = async (): Promise<number> => {
    for (;;) {
      const port = await freePort(HOST);
      if (!taken.has(port)) return taken.add(port), port;
    }
  };
  return {
    imap: await next(),
    imaps: await next(),
    pop3: await next(),
    pop3s: await next(),
    submission: await next(),
    submissions: await next(),
    lmtp: await next(),
  };
}

function renderConfig(dir: string, ports: Ports, relayPort: number): string {
  return `# Generated by test/helpers/dovecot.ts; the only config this instance reads.
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = postern-test-${ports.imap}
log_path = ${dir}/dovecot.log
protocols = imap pop3 submission lmtp
listen = ${HOST}
hostname = mail.example.test
login_greeting = Dovecot ready.

# Like a real provider: no authentication of any kind before TLS.
ssl = required
disable_plaintext_auth = yes
ssl_cert = <${dir}/cert.pem
ssl_key = <${dir}/key.pem
auth_mechanisms = plain login
# Lookups use the local part, lower-cased: alice, Alice and alice@example.test are one user.
auth_username_format = %Ln
auth_verbose = yes
# Tests fail logins on purpose; no 2 s delay per failure, no per-IP penalty (anvil-auth-penalty below).
auth_failure_delay = 0
mail_max_userip_connections = 100

mail_location = maildir:~/Maildir
first_valid_uid = 1
imap_idle_notify_interval = 1 secs
mailbox_idle_check_interval = 1 secs

submission_relay_host = 127.0.0.1
submission_relay_port = ${relayPort}
submission_max_mail_size = 100M
# LMTP adds only Return-Path, so tests can compare what arrives with what was sent.
lmtp_add_received_header = no
lmtp_hdr_delivery_address = none

passdb {
  driver = passwd-file
  args = ${dir}/master-users
  master = yes
  pass = yes
}
passdb {
  driver = passwd-file
  args = ${dir}/passwd
}
userdb {
  driver = passwd-file
  args = ${dir}/passwd
  default_fields = uid=${MAIL_UID} gid=${MAIL_GID} home=${dir}/mail/%n
}

service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service imap-login {
  inet_listener imap {
    port = ${ports.imap}
  }
  inet_listener imaps {
    port = ${ports.imaps}
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = ${ports.pop3}
  }
  inet_listener pop3s {
    port = ${ports.pop3s}
    ssl = yes
  }
}
service submission-login {
  inet_listener submission {
    port = ${ports.submission}
  }
  inet_listener submissions {
    port = ${ports.submissions}
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    port = ${ports.lmtp}
  }
}
!include_try ${dir}/local.conf
`;
}

function spawnDovecot(binary: string, conf: string): ChildProcess {
  const child = spawn(binary, ['-F', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (!exitHookInstalled) process.once('exit', killLeftovers);
  exitHookInstalled = true;
  liveMasters.add(child);
  child.on('error', () => undefined);
  child.once('exit', () => liveMasters.delete(child));
  return child;
}

/** A test run that dies without calling stop() must not leave Dovecot masters behind. */
function killLeftovers(): void {
  for (const child of liveMasters) child.kill('SIGTERM');
}

/** Resolves once every listener has sent its greeting; rejects with the log tail if Dovecot died. */
async function waitReady(child: ChildProcess, ports: Ports, caPem: string, logFile: string): Promise<void> {
  const output = collectOutput(child);
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => {
      void readFile(logFile, 'utf8').catch(() => '').then((log) => {
        reject(new Error(`dovecot exited (code ${code}, signal ${signal}) before it was ready:\n${output()}\n${log}`));
      });
    });
  });
  exited.catch(() => undefined);
  const tlsOptions = { ca: caPem };
  const greetings: Array<[number, string, boolean]> = [
    [ports.imap, '* OK', false],
    [ports.imaps, '* OK', true],
    [ports.pop3, '+OK', false],
    [ports.pop3s, '+OK', true],
    [ports.submission, '220 ', false],
    [ports.submissions, '220 ', true],
    [ports.lmtp, '220 ', false],
  ];
  const deadline = Date.now() + READY_TIMEOUT_MS;
  await Promise.race([
    exited,
    Promise.all(
      greetings.map(([port, prefix, tls]) => awaitGreeting(child, port, prefix, tls && tlsOptions, deadline)),
    ),
  ]);
}

function collectOutput(child: ChildProcess): () => string {
  let text = '';
  const append = (chunk: Buffer) => (text += chunk.toString('utf8'));
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  return () => text;
}

async function awaitGreeting(
  child: ChildProcess,
  port: number,
  prefix: string,
  tls: false | { ca: string },
  deadline: number,
): Promise<void> {
  for (;;) {
    try {
      const client = await connectLineClient({ host: HOST, port, tls, timeoutMs: 2_000 });
      const line = await client.readLine().finally(() => client.close());
      if (line.startsWith(prefix)) return;
      throw new Error(`unexpected greeting on port ${port}: ${line}`);
    } catch (err) {
      if (hasExited(child)) throw new Error('dovecot exited');
      if (Date.now() > deadline) throw new Error(`dovecot port ${port} not ready: ${(err as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
