/**
 * What every listener offers in TLS, probed with the OpenSSL command-line client as a scanner would.
 *
 * Pins, for IMAP (implicit and STARTTLS), SMTP submission (implicit and STARTTLS) and DAV:
 * - a downgrade to a suite without forward secrecy (static RSA, AES128-SHA) is refused;
 * - a downgrade to a CBC-SHA1 suite (ECDHE-RSA-AES128-SHA, the Lucky13 padding-oracle class) is refused;
 * - forward-secret AEAD on TLS 1.2 (ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-CHACHA20-POLY1305) is accepted;
 * - TLS 1.3 is accepted; TLS 1.1 is refused even when the client offers it at security level 0.
 * And the SMTP greeting and EHLO name the configured host, never the machine's own hostname.
 */
import { execFile } from 'node:child_process';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectLineClient } from '../helpers/line-client.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';

/** Upstreams that are never reached: the handshakes under test end at postern. */
const NOWHERE = { host: '127.0.0.1', port: 9, security: 'tls' as const, connectTimeoutMs: 500, greetingTimeoutMs: 500 };
const SERVER_NAME = 'mail.postern.test';

let postern: PosternHarness;

beforeAll(async () => {
  postern = await startPostern({
    config: {
      hostnames: [SERVER_NAME, 'localhost', '127.0.0.1'],
      imap: { implicitTls: { host: '127.0.0.1', port: 0 }, starttls: { host: '127.0.0.1', port: 0 }, upstream: NOWHERE },
      smtp: { implicitTls: { host: '127.0.0.1', port: 0 }, starttls: { host: '127.0.0.1', port: 0 }, upstream: NOWHERE },
      dav: { listener: { host: '127.0.0.1', port: 0 }, caldavUpstream: 'http://127.0.0.1:9/cal/' },
    },
  });
});

afterAll(async () => {
  await postern?.stop();
});

interface Probe {
  ok: boolean;
  protocol?: string;
  cipher?: string;
}

/** One handshake with `openssl s_client`; what it negotiated, or ok false when the handshake failed. */
function handshake(port: number, starttls: 'imap' | 'smtp' | null, args: string[]): Promise<Probe> {
  const argv = ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-brief', ...(starttls ? ['-starttls', starttls] : []), ...args];
  return new Promise((resolve) => {
    const child = execFile('openssl', argv, { timeout: 10_000 }, (err, stdout, stderr) => {
      const text = `${stdout}\n${stderr}`;
      const protocol = /Protocol version: (\S+)/.exec(text)?.[1];
      const cipher = /Ciphersuite: (\S+)/.exec(text)?.[1];
      resolve({ ok: !err && protocol !== undefined, ...(protocol ? { protocol } : {}), ...(cipher ? { cipher } : {}) });
    });
    child.stdin?.end();
  });
}

const LISTENERS: Array<{ name: string; starttls: 'imap' | 'smtp' | null }> = [
  { name: 'imap.implicitTls', starttls: null },
  { name: 'imap.starttls', starttls: 'imap' },
  { name: 'smtp.implicitTls', starttls: null },
  { name: 'smtp.starttls', starttls: 'smtp' },
  { name: 'dav', starttls: null },
];

describe.each(LISTENERS)('TLS on $name', ({ name, starttls }) => {
  const probe = (args: string[]) => handshake(postern.port(name), starttls, args);

  it('refuses a downgrade to static RSA without forward secrecy (AES128-SHA on TLS 1.2)', async () => {
    expect(await probe(['-tls1_2', '-cipher', 'AES128-SHA'])).toEqual({ ok: false });
  });

  it('refuses a downgrade to a CBC-SHA1 suite (ECDHE-RSA-AES128-SHA on TLS 1.2)', async () => {
    expect(await probe(['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA'])).toEqual({ ok: false });
  });

  it('refuses every TLS 1.2 suite that is not ECDHE with AEAD', async () => {
    expect(await probe(['-tls1_2', '-cipher', 'ALL:!ECDHE:@SECLEVEL=0'])).toEqual({ ok: false });
    expect(await probe(['-tls1_2', '-cipher', 'ECDHE:!AESGCM:!CHACHA20:@SECLEVEL=0'])).toEqual({ ok: false });
  });

  it('accepts forward-secret AEAD on TLS 1.2 (ECDHE with AES-GCM or ChaCha20-Poly1305)', async () => {
    expect(await probe(['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'])).toEqual({ ok: true, protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' });
    expect(await probe(['-tls1_2', '-cipher', 'ECDHE-RSA-CHACHA20-POLY1305'])).toEqual({ ok: true, protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-CHACHA20-POLY1305' });
  });

  it('prefers its own order: AES-GCM even when the client lists a CBC suite first', async () => {
    expect(await probe(['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-GCM-SHA384'])).toMatchObject({ ok: true, cipher: 'ECDHE-RSA-AES256-GCM-SHA384' });
  });

  it('accepts TLS 1.3 with each of its AEAD suites', async () => {
    for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
      expect(await probe(['-tls1_3', '-ciphersuites', suite])).toEqual({ ok: true, protocol: 'TLSv1.3', cipher: suite });
    }
  });

  it('refuses TLS 1.1 even from a client willing to use it', async () => {
    expect(await probe(['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'])).toEqual({ ok: false });
  });
});

describe('SMTP server name', () => {
  it('names the configured host in the greeting and in EHLO, not the machine hostname (host-name disclosure)', async () => {
    const client = await connectLineClient({ host: '127.0.0.1', port: postern.port('smtp.starttls') });
    try {
      const greeting = await client.readLine();
      client.write('EHLO client.example\r\n');
      const ehlo = await client.readUntil((line) => line.startsWith('250 '));
      expect(greeting).toMatch(new RegExp(`^220 ${SERVER_NAME.replace(/\./g, '\\.')} `));
      expect(ehlo[0]).toMatch(new RegExp(`^250-${SERVER_NAME.replace(/\./g, '\\.')} `));
      if (hostname() !== SERVER_NAME) {
        for (const line of [greeting, ...ehlo]) expect(line).not.toContain(hostname());
      }
    } finally {
      client.close();
    }
  });
});
