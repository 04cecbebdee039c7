// Shared set-up for the POP3 tests: a postern configured in front of a real Dovecot POP3 service,
// mail put into Dovecot directly over IMAP, raw line clients for exact wire checks, and the real
// clients (python's poplib, fetchmail) run as child processes with their secrets passed through
// the environment or a 0600 file, never argv.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ImapFlow } from 'imapflow';
import type { DovecotServer, MailUser } from '../helpers/dovecot.js';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import type { PosternHarness } from '../helpers/postern.js';

export type UpstreamSecurity = 'tls' | 'starttls';

/** The `pop3` config section pointing at Dovecot, listeners on 127.0.0.1 port 0. */
export function pop3Config(dovecot: DovecotServer, security: UpstreamSecurity = 'tls', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    implicitTls: { host: '127.0.0.1', port: 0 },
    starttls: { host: '127.0.0.1', port: 0 },
    upstream: {
      host: dovecot.host,
      port: security === 'tls' ? dovecot.pop3sPort : dovecot.pop3Port,
      security,
      caFile: dovecot.caFile,
      connectTimeoutMs: 3_000,
      greetingTimeoutMs: 3_000,
    },
    ...extra,
  };
}

/** A raw client on postern's implicit-TLS POP3 listener, greeting already read. */
export async function rawTls(postern: PosternHarness): Promise<LineClient> {
  const client = await connectLineClient({ host: '127.0.0.1', port: postern.port('pop3.implicitTls'), tls: { ca: postern.caPem, servername: 'localhost' } });
  await client.readLine();
  return client;
}

/** A raw client on postern's plaintext/STLS POP3 listener, greeting already read. */
export async function rawPlain(postern: PosternHarness): Promise<LineClient> {
  const client = await connectLineClient({ host: '127.0.0.1', port: postern.port('pop3.starttls') });
  await client.readLine();
  return client;
}

export function message(subject: string, body = 'Hello from the postern POP3 tests.\r\n'): string {
  return `From: alice@example.test\r\nTo: alice@example.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.test>\r\n\r\n${body}`;
}

/** Puts messages into the user's INBOX straight at Dovecot: set-up, not what is under test. */
export async function deliver(dovecot: DovecotServer, user: MailUser, messages: string[]): Promise<void> {
  const direct = new ImapFlow({ host: dovecot.host, port: dovecot.imapsPort, secure: true, auth: { user: user.name, pass: user.password }, tls: { ca: dovecot.caPem, servername: 'localhost' }, logger: false });
  direct.on('error', () => undefined);
  await direct.connect();
  for (const m of messages) await direct.append('INBOX', m);
  await direct.logout();
}

export interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runChild(file: string, args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<ChildResult> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * python3's poplib against postern: logs in (USER/PASS, or AUTH PLAIN through `_shortcmd`), runs
 * STAT, LIST, UIDL and RETR of every message, QUITs, and prints one JSON object.
 */
const POPLIB_SCRIPT = String.raw`
import base64, json, os, poplib, ssl, sys
ctx = ssl.create_default_context(cafile=os.environ['CA_FILE'])
host, port, mode = '127.0.0.1', int(os.environ['PORT']), os.environ['MODE']
out = {}
try:
    if mode == 'stls':
        c = poplib.POP3(host, port, timeout=10)
        out['capa_before'] = sorted(c.capa().keys())
        c.stls(context=ctx)
    else:
        c = poplib.POP3_SSL(host, port, context=ctx, timeout=10)
    out['capa'] = sorted(c.capa().keys())
    user, pw = os.environ['POP_USER'], os.environ['POP_PASS']
    if os.environ.get('AUTH') == 'plain':
        out['login'] = c._shortcmd('AUTH PLAIN ' + base64.b64encode(('\0' + user + '\0' + pw).encode()).decode()).decode()
    else:
        c.user(user)
        out['login'] = c.pass_(pw).decode()
    count, size = c.stat()
    out['stat'] = [count, size]
    out['uidl'] = [l.decode() for l in c.uidl()[1]]
    out['messages'] = [b'\r\n'.join(c.retr(i + 1)[1]).decode('utf-8', 'replace') for i in range(count)]
    out['quit'] = c.quit().decode()
except poplib.error_proto as e:
    out['error'] = e.args[0].decode() if isinstance(e.args[0], bytes) else str(e.args[0])
print(json.dumps(out))
`;

export interface PoplibOptions {
  port: number;
  mode: 'tls' | 'stls';
  user: string;
  password: string;
  caFile: string;
  auth?: 'user' | 'plain';
}

export async function poplib(options: PoplibOptions): Promise<Record<string, unknown>> {
  const result = await runChild('python3', ['-c', POPLIB_SCRIPT], {
    PORT: String(options.port), MODE: options.mode, POP_USER: options.user, POP_PASS: options.password, CA_FILE: options.caFile, AUTH: options.auth ?? 'user',
  });
  if (result.code !== 0) throw new Error(`poplib failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

export interface FetchmailOptions {
  dir: string;
  port: number;
  /** `ssl`: implicit TLS; `stls`: STLS required (sslproto without ssl). */
  mode: 'ssl' | 'stls';
  user: string;
  password: string;
  caFile: string;
}

/** fetchmail polls once, delivering each message by appending it to `<dir>/delivered`. */
export async function fetchmail(options: FetchmailOptions): Promise<ChildResult & { deliveredFile: string }> {
  const rc = path.join(options.dir, 'fetchmailrc');
  const deliveredFile = path.join(options.dir, 'delivered');
  const tlsWords = options.mode === 'ssl' ? 'ssl sslproto tls1.2+' : 'sslproto tls1.2+';
  writeFileSync(rc, [
    `set no syslog`,
    `poll 127.0.0.1 service ${options.port} protocol pop3 timeout 15`,
    `  user "${options.user}" password "${options.password}" is "${options.user}" here`,
    `  ${tlsWords} sslcertck sslcertfile "${options.caFile}" sslcommonname localhost`,
    `  keep fetchall mda "/bin/sh -c 'cat >> ${deliveredFile}; echo ---- >> ${deliveredFile}'"`,
    '',
  ].join('\n'), { mode: 0o600 });
  const result = await runChild('fetchmail', ['-f', rc, '--nodetach', '--pidfile', path.join(options.dir, 'fetchmail.pid'), '-v'], { FETCHMAILHOME: options.dir, HOME: options.dir });
  return { ...result, deliveredFile };
}
