// Self-tests for the test helpers. Integration tests trust these servers to behave like a real provider,
// so the behaviour they lean on is pinned here:
// - Dovecot refuses any authentication before TLS to a client from another address (127.0.0.1 → .2);
// - IMAP works over implicit TLS and STARTTLS with the generated CA; a master user logs in as another
//   user with SASL PLAIN and an authorization identity; IDLE reports new mail within a second or so;
//   bytes pipelined after STARTTLS make Dovecot drop the connection;
// - submission requires TLS and AUTH, refuses unknown recipients with 550 5.1.1 at RCPT, and a relayed
//   message arrives in the INBOX equal to what was sent once the documented trace fields are stripped;
//   8BITMIME is advertised and passed on, SMTPUTF8 is not offered;
// - two Dovecot instances run side by side and stop() cleans up;
// - Radicale answers PROPFIND on a principal with 207, and a wrong password with 401;
// - the line client copes with lines split across chunks and discards plaintext on STARTTLS.
import { access, readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestProject } from 'vitest/node';
import { startDovecot, type DovecotServer } from './dovecot.js';
import { freePort } from './free-port.js';
import { connectLineClient, type LineClient } from './line-client.js';
import { assertNoSecrets } from './log-sink.js';
import setup from './global-setup.js';
import { startRadicale, type RadicaleServer } from './radicale.js';
import { addressOf, stripDeliveryTrace } from './relay-sink.js';
import { engine } from './test-database.js';
import { makeTempDir, removeTempDir } from './tmp.js';

const alice = { name: 'alice', password: 'alice-secret' };
const bob = { name: 'bob', password: 'bob-secret' };
const master = { name: 'admin', password: 'master-secret' };

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Serves `script(socket)` on a loopback port; resolves the port. */
async function scriptedServer(script: (socket: net.Socket) => Promise<void> | void): Promise<{ port: number; close(): void }> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    void Promise.resolve(script(socket)).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return { port: address.port, close: () => server.close() };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('secret scan of logs', () => {
  it('finds a secret as it is, without hyphens, and inside base64 (SASL PLAIN tokens, Basic headers)', () => {
    const secret = 'abcd-efgh-ijkl-mnop';
    const scan = (line: string) => () => assertNoSecrets([line], [secret], 'the test line');
    expect(scan('{"msg":"login","user":"alice"}')).not.toThrow();
    expect(scan(`{"password":"${secret}"}`)).toThrow(/appeared in the test line/);
    expect(scan('{"password":"abcdefghijklmnop"}')).toThrow(/appeared/);
    expect(scan(`C: a AUTHENTICATE PLAIN ${Buffer.from(`\0alice\0${secret}`).toString('base64')}`)).toThrow(/appeared/);
    expect(scan(`{"authorization":"Basic ${Buffer.from(`alice:${secret}`).toString('base64')}"}`)).toThrow(/appeared/);
    expect(scan(`{"authorization":"Basic ${Buffer.from('alice:something-else').toString('base64')}"}`)).not.toThrow();
  });
});

describe('tmp and free-port', () => {
  it('makes and removes temp dirs, and finds bindable ports', async () => {
    const dir = await makeTempDir('postern-selftest-');
    expect(await exists(dir)).toBe(true);
    await removeTempDir(dir);
    await removeTempDir(dir);
    expect(await exists(dir)).toBe(false);
    const port = await freePort();
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    server.close();
  });
});

describe('line client', () => {
  it('reassembles lines split across chunks and splits several lines in one chunk', async () => {
    const server = await scriptedServer(async (socket) => {
      for (const chunk of ['* OK hel', 'lo\r', '\na\r\nb\r\nc', '\r\n', 'tail\r\n']) {
        socket.write(chunk);
        await pause(10);
      }
      socket.end();
    });
    const client = await connectLineClient({ host: '127.0.0.1', port: server.port });
    expect(await client.readLine()).toBe('* OK hello');
    expect(await client.readUntil((line) => line === 'c')).toEqual(['a', 'b', 'c']);
    await client.closed;
    expect(client.isClosed()).toBe(true);
    expect(await client.readLine()).toBe('tail'); // lines received before the close stay readable
    await expect(client.readLine()).rejects.toThrow(/closed/);
    server.close();
  });

  it('times out a read, reads raw bytes, and rejects a read pending at close', async () => {
    const server = await scriptedServer((socket) => {
      socket.write('{5}\r\nab\r\nc');
      socket.once('data', () => socket.destroy());
    });
    const client = await connectLineClient({ host: '127.0.0.1', port: server.port });
    expect(await client.readLine()).toBe('{5}');
    expect((await client.readBytes(5)).toString()).toBe('ab\r\nc');
    await expect(client.readLine(50)).rejects.toThrow(/timed out/);
    const pending = client.readLine(2_000);
    client.write('bye\r\n');
    await expect(pending).rejects.toThrow(/closed/);
    server.close();
  });
});

describe('dovecot', () => {
  let dovecot: DovecotServer;
  const clients: ImapFlow[] = [];

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [alice, bob], masterUser: master });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.logout().catch(() => undefined)));
    await dovecot?.stop();
  });

  function imap(user: { user: string; pass: string; authzid?: string }, secure = true): ImapFlow {
    const client = new ImapFlow({
      host: dovecot.host,
      port: secure ? dovecot.imapsPort : dovecot.imapPort,
      secure,
      doSTARTTLS: secure ? undefined : true,
      tls: { ca: dovecot.caPem },
      auth: user,
      logger: false,
    });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  }

  async function readInbox(client: ImapFlow): Promise<Buffer[]> {
    const lock = await client.getMailboxLock('INBOX');
    try {
      const sources: Buffer[] = [];
      for await (const message of client.fetch('1:*', { source: true })) {
        if (message.source) sources.push(message.source);
      }
      return sources;
    } finally {
      lock.release();
    }
  }

  async function imapOverStartTls(): Promise<LineClient> {
    const client = await connectLineClient({ host: dovecot.host, port: dovecot.imapPort });
    await client.readLine();
    client.write('a STARTTLS\r\n');
    expect(await client.readLine()).toMatch(/^a OK /);
    await client.startTls({ ca: dovecot.caPem });
    return client;
  }

  async function submissionOverStartTls(): Promise<LineClient> {
    const client = await connectLineClient({ host: dovecot.host, port: dovecot.submissionPort });
    expect(await client.readLine()).toMatch(/^220 /);
    client.write('EHLO test\r\n');
    expect((await client.readUntil((l) => l.startsWith('250 '))).join('\n')).not.toContain('AUTH');
    client.write('STARTTLS\r\n');
    expect(await client.readLine()).toMatch(/^220 /);
    await client.startTls({ ca: dovecot.caPem });
    return client;
  }

  it('logs in over implicit TLS, lists mailboxes, appends and fetches', async () => {
    const client = imap({ user: alice.name, pass: alice.password });
    await client.connect();
    expect((await client.list()).map((m) => m.path)).toContain('INBOX');
    const message = 'Subject: append\r\n\r\nappended body\r\n';
    await client.append('INBOX', message);
    const sources = await readInbox(client);
    expect(sources.map((s) => s.toString())).toContain(message);
  });

  it('notifies an IDLE client of new mail within seconds', async () => {
    const { host, imapsPort: port, caPem: ca } = dovecot;
    const watcher = await connectLineClient({ host, port, tls: { ca } });
    await watcher.readLine();
    watcher.write(`a LOGIN ${alice.name} ${alice.password}\r\nb SELECT INBOX\r\nc IDLE\r\n`);
    await watcher.readUntil((l) => l.startsWith('+ '));
    const writer = imap({ user: alice.name, pass: alice.password });
    await writer.connect();
    const started = Date.now();
    await writer.append('INBOX', 'Subject: idle\r\n\r\nwake up\r\n');
    const untagged = await watcher.readUntil((l) => / EXISTS$/.test(l), 3_000);
    expect(untagged.at(-1)).toMatch(/^\* \d+ EXISTS$/);
    expect(Date.now() - started).toBeLessThan(3_000);
    watcher.write('DONE\r\n');
    expect((await watcher.readUntil((l) => l.startsWith('c '))).at(-1)).toMatch(/^c OK/);
    watcher.close();
  });

  it('logs in over STARTTLS on the plaintext port', async () => {
    const client = imap({ user: bob.name, pass: bob.password }, false);
    await client.connect();
    expect(client.secureConnection).toBe(true); // imapflow marks the connection secure after the upgrade
    expect(client.authenticated).toBeTruthy();
    await client.mailboxOpen('INBOX');
  });

  it('refuses authentication in plaintext from 127.0.0.1, like a real provider', async () => {
    const client = await connectLineClient({ host: dovecot.host, port: dovecot.imapPort });
    const greeting = await client.readLine();
    expect(greeting).toContain('LOGINDISABLED');
    expect(client.socket().localAddress).toBe('127.0.0.1');
    client.write(`a LOGIN ${alice.name} ${alice.password}\r\n`);
    expect(await client.readUntil((l) => l.startsWith('a '))).toContainEqual(
      expect.stringMatching(/^a NO \[PRIVACYREQUIRED\]/),
    );
    const plain = Buffer.from(`\0${alice.name}\0${alice.password}`).toString('base64');
    client.write(`b AUTHENTICATE PLAIN ${plain}\r\n`);
    expect(await client.readLine()).toMatch(/^b NO \[PRIVACYREQUIRED\]/);
    client.close();
  });

  it('accepts SASL PLAIN with an authorization identity from the master user (raw and imapflow)', async () => {
    const owner = imap({ user: bob.name, pass: bob.password });
    await owner.connect();
    await owner.append('INBOX', 'Subject: for the master\r\n\r\nbody\r\n');

    const raw = await imapOverStartTls();
    const sasl = Buffer.from(`${bob.name}\0${master.name}\0${master.password}`).toString('base64');
    raw.write(`b AUTHENTICATE PLAIN ${sasl}\r\n`);
    expect((await raw.readUntil((l) => l.startsWith('b '))).at(-1)).toMatch(/^b OK /);
    raw.close();

    const asBob = imap({ user: master.name, pass: master.password, authzid: bob.name });
    await asBob.connect();
    const subjects = (await readInbox(asBob)).map((s) => s.toString());
    expect(subjects.some((s) => s.includes('Subject: for the master'))).toBe(true);

    const wrong = imap({ user: master.name, pass: 'nope', authzid: bob.name });
    await expect(wrong.connect()).rejects.toThrow();
  });

  it('relays submission through the sink into the INBOX, byte-comparable after the trace fields', async () => {
    const transport = nodemailer.createTransport({
      host: dovecot.host,
      port: dovecot.submissionPort,
      secure: false,
      requireTLS: true,
      tls: { ca: dovecot.caPem },
      auth: { user: alice.name, pass: alice.password },
    });
    const marker = `relay-${Date.now()}`;
    const raw = Buffer.from(
      `From: <${addressOf(alice.name)}>\r\nTo: <${addressOf(bob.name)}>\r\nSubject: ${marker}\r\n` +
        'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n' +
        'grüße, ✓\r\n.a line starting with a dot\r\n',
    );
    const envelope = { from: addressOf(alice.name), to: [addressOf(bob.name)], use8BitMime: true };
    const info = await transport.sendMail({ envelope, raw });
    expect(info.response).toMatch(/^250 2\.6\.0 <bob@example\.test> \S+ Saved$/);
    transport.close();

    const relayed = dovecot.relaySink.received.find((m) => m.raw.includes(marker));
    expect(relayed).toMatchObject({ from: 'alice@example.test', to: ['bob@example.test'], bodyType: '8bitmime' });
    expect(relayed?.raw.subarray(0, 10).toString()).toBe('Received: ');
    expect(relayed?.raw.subarray(relayed.raw.length - raw.length).equals(raw)).toBe(true);

    const owner = imap({ user: bob.name, pass: bob.password });
    await owner.connect();
    const source = (await readInbox(owner)).find((s) => s.includes(marker));
    expect(source?.subarray(0, 36).toString()).toBe('Return-Path: <alice@example.test>\r\nR');
    expect(source && stripDeliveryTrace(source).equals(raw)).toBe(true);
    const returnPath = Buffer.from('Return-Path: <alice@example.test>\r\n');
    expect(source?.equals(Buffer.concat([returnPath, relayed!.raw]))).toBe(true);
  });

  it('refuses a recipient who is not a user with 550 5.1.1 at RCPT', async () => {
    const client = await submissionOverStartTls();
    client.write('EHLO test\r\n');
    const ehlo = await client.readUntil((l) => l.startsWith('250 '));
    expect(ehlo).toContain('250-8BITMIME');
    expect(ehlo.join('\n')).not.toContain('SMTPUTF8');
    const plain = Buffer.from(`\0${alice.name}\0${alice.password}`).toString('base64');
    client.write(`AUTH PLAIN ${plain}\r\n`);
    expect(await client.readLine()).toMatch(/^235 /);
    client.write(`MAIL FROM:<${addressOf(alice.name)}>\r\n`);
    expect(await client.readLine()).toMatch(/^250 /);
    client.write('RCPT TO:<nobody@example.test>\r\n');
    expect(await client.readLine()).toBe('550 5.1.1 <nobody@example.test> <nobody@example.test>: unknown user');
    client.write(`RCPT TO:<${addressOf(bob.name)}>\r\n`);
    expect(await client.readLine()).toMatch(/^250 2\.1\.5 /);
    client.write('QUIT\r\n');
    client.close();
  });

  it('Dovecot takes commands pipelined after STARTTLS as TLS bytes and drops the connection', async () => {
    const client = await connectLineClient({ host: dovecot.host, port: dovecot.imapPort });
    await client.readLine();
    client.write('a STARTTLS\r\nb CAPABILITY\r\n');
    expect(await client.readLine()).toMatch(/^a OK/);
    await expect(client.startTls({ ca: dovecot.caPem })).rejects.toThrow();
    expect(client.isClosed()).toBe(true);
  });

  it('line client: startTls returns the plaintext it discarded (scripted server, Dovecot cert)', async () => {
    const [key, cert] = await Promise.all([
      readFile(join(dovecot.dir, 'key.pem')),
      readFile(join(dovecot.dir, 'cert.pem')),
    ]);
    const server = await scriptedServer((socket) => {
      socket.write('* OK ready\r\n');
      socket.once('data', () => {
        socket.write('a OK begin TLS\r\n* INJECTED\r\n');
        const secure = new tls.TLSSocket(socket, { isServer: true, key, cert });
        secure.on('error', () => undefined);
        secure.write('* OK after TLS\r\n');
      });
    });
    const client = await connectLineClient({ host: '127.0.0.1', port: server.port });
    await client.readLine();
    client.write('a STARTTLS\r\n');
    expect(await client.readLine()).toBe('a OK begin TLS');
    await pause(50);
    const discarded = await client.startTls({ ca: dovecot.caPem, servername: 'localhost' });
    expect(discarded.toString()).toBe('* INJECTED\r\n');
    expect(await client.readLine()).toBe('* OK after TLS');
    client.close();
    server.close();
  });

  it('runs a second instance alongside, and stop() is idempotent and cleans up', async () => {
    const other = await startDovecot({ users: [{ name: 'carol', password: 'carol-secret' }] });
    expect(other.imapsPort).not.toBe(dovecot.imapsPort);
    const client = new ImapFlow({
      host: other.host,
      port: other.imapsPort,
      secure: true,
      tls: { ca: other.caPem },
      auth: { user: 'carol', pass: 'carol-secret' },
      logger: false,
    });
    await client.connect();
    await client.logout();
    expect(await readFile(other.logFile, 'utf8')).toContain('user=<carol>');
    await Promise.all([other.stop(), other.stop()]);
    await other.stop();
    expect(await exists(other.dir)).toBe(false);
    const still = imap({ user: alice.name, pass: alice.password });
    await still.connect();
  });
});

describe('radicale', () => {
  let radicale: RadicaleServer;
  beforeAll(async () => {
    radicale = await startRadicale({ users: [alice] });
  });
  afterAll(async () => {
    await radicale?.stop();
  });

  function propfind(path: string, password: string): Promise<Response> {
    const auth = Buffer.from(`${alice.name}:${password}`).toString('base64');
    return fetch(new URL(path, radicale.url), {
      method: 'PROPFIND',
      headers: { Authorization: `Basic ${auth}`, Depth: '0', 'Content-Type': 'application/xml' },
      body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>',
    });
  }

  it('answers PROPFIND on the principal with 207, and a wrong password with 401', async () => {
    const ok = await propfind('/alice/', alice.password);
    expect(ok.status).toBe(207);
    expect(await ok.text()).toContain('/alice/');
    const refused = await propfind('/alice/', 'wrong');
    expect(refused.status).toBe(401);
    await refused.arrayBuffer();
    expect(await readFile(radicale.logFile, 'utf8')).toContain('PROPFIND');
  });

  it('keeps its files in its own dir; a second instance runs alongside and stop() removes them', async () => {
    expect(await exists(join(radicale.dir, 'config'))).toBe(true);
    expect(radicale.url).toBe(`http://127.0.0.1:${radicale.port}/`);
    const other = await startRadicale({ users: [bob] });
    expect(other.port).not.toBe(radicale.port);
    const auth = Buffer.from(`${bob.name}:${bob.password}`).toString('base64');
    const headers = { Authorization: `Basic ${auth}`, Depth: '0' };
    const response = await fetch(new URL('/bob/', other.url), { method: 'PROPFIND', headers });
    expect(response.status).toBe(207);
    await response.arrayBuffer();
    await Promise.all([other.stop(), other.stop()]);
    expect(await exists(other.dir)).toBe(false);
  });
});

describe('global setup', () => {
  it('finds every upstream dependency, and provides a PostgreSQL server only on the PostgreSQL pass', async () => {
    const provided: Record<string, unknown> = {};
    const project = { provide: (key: string, value: unknown) => void (provided[key] = value) } as unknown as TestProject;
    const teardown = await setup(project);
    try {
      if (engine === 'sqlite') expect(provided).toEqual({ postgresUrl: null });
      else expect(provided.postgresUrl).toMatch(/^postgres:\/\/\w+@127\.0\.0\.1:\d+\/postgres$/);
    } finally {
      await teardown?.();
    }
  });
});
