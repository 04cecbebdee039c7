// Shared set-up for the IMAP tests: a postern configured in front of a real Dovecot, imapflow
// clients that trust postern's certificate, and raw line clients for exact wire checks.
import { ImapFlow } from 'imapflow';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';
import type { DovecotServer } from '../helpers/dovecot.js';
import type { PosternHarness } from '../helpers/postern.js';

export type UpstreamSecurity = 'tls' | 'starttls';

/** The `imap` config section pointing at Dovecot, listeners on 127.0.0.1 port 0. */
export function imapConfig(dovecot: DovecotServer, security: UpstreamSecurity = 'tls', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    implicitTls: { host: '127.0.0.1', port: 0 },
    starttls: { host: '127.0.0.1', port: 0 },
    upstream: {
      host: dovecot.host,
      port: security === 'tls' ? dovecot.imapsPort : dovecot.imapPort,
      security,
      caFile: dovecot.caFile,
      connectTimeoutMs: 3_000,
      greetingTimeoutMs: 3_000,
    },
    ...extra,
  };
}

export interface ClientOptions {
  user: string;
  pass: string;
  starttls?: boolean;
}

export function imapClient(postern: PosternHarness, options: ClientOptions): ImapFlow {
  const starttls = options.starttls ?? false;
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: postern.port(starttls ? 'imap.starttls' : 'imap.implicitTls'),
    secure: !starttls,
    doSTARTTLS: starttls ? true : undefined,
    servername: 'localhost',
    auth: { user: options.user, pass: options.pass },
    tls: { ca: postern.caPem, servername: 'localhost' },
    logger: false,
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    clientInfo: { name: 'postern-test', version: '1' },
  });
  client.on('error', () => undefined);
  return client;
}

/** A raw client on postern's implicit-TLS listener, greeting already read. */
export async function rawTls(postern: PosternHarness): Promise<LineClient> {
  const client = await connectLineClient({ host: '127.0.0.1', port: postern.port('imap.implicitTls'), tls: { ca: postern.caPem, servername: 'localhost' } });
  await client.readLine();
  return client;
}

/** A raw client on postern's plaintext/STARTTLS listener, greeting already read. */
export async function rawPlain(postern: PosternHarness): Promise<LineClient> {
  const client = await connectLineClient({ host: '127.0.0.1', port: postern.port('imap.starttls') });
  await client.readLine();
  return client;
}

export function quoted(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function message(subject: string, body = 'Hello from the postern tests.\r\n'): string {
  return `From: alice@example.test\r\nTo: alice@example.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.test>\r\n\r\n${body}`;
}
