// COMPRESS=DEFLATE (RFC 4978) through the relay, with a raw client that deflates and inflates
// itself, against a real Dovecot with imap_zlib. Pins: postern's own last line on a compressed
// session (a revocation during IDLE) reaches the client as deflated text the client's inflater
// accepts, then the connection closes; a LOGOUT on a compressed session — after real traffic —
// gives the client the upstream's own BYE and tagged OK, nothing of postern's, and logs no
// `upstream.lost`. (Revocation on an uncompressed session, BYE in clear, is pinned in
// revocation-master.test.ts.)
import tls from 'node:tls';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import { imapConfig, message, quoted, sleep } from './support.js';

const DANA = { name: 'dana', password: 'dana-real-Secret-6' };
const DANA_PRIMARY = 'dana-primary-Secret-7';
const UPSTREAM_LOST_TEXT = 'Connection to the mail server was lost.';

let dovecot: DovecotServer;
let postern: PosternHarness;

beforeAll(async () => {
  dovecot = await startDovecot({ users: [DANA], extraConfig: 'protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\n' });
  postern = await startPostern({ config: { imap: imapConfig(dovecot, 'tls') }, secrets: [DANA.password] });
  await postern.addUser('dana', DANA_PRIMARY, { mode: 'password', secret: DANA.password });
});

afterAll(async () => {
  await postern?.stop();
  await dovecot?.stop();
});

/**
 * A raw IMAP client that reads lines in clear until `compress()`, then deflates what it sends
 * (a sync flush per command, as real clients do) and inflates what it receives.
 */
class CompressedClient {
  readonly closed: Promise<void>;
  /** Text received (inflated once compressed) and not yet read as lines. */
  private text: Buffer = Buffer.alloc(0);
  /** Every byte of text ever received, for assertions on what never arrived. */
  transcript = '';
  inflateError: Error | null = null;
  private deflater: zlib.DeflateRaw | null = null;
  private inflater: zlib.InflateRaw | null = null;
  private wake: (() => void) | null = null;
  private ended = false;

  private constructor(private readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => (this.inflater ? this.inflater.write(chunk) : this.received(chunk)));
    socket.on('error', () => undefined);
    // Inflation is asynchronous: the close counts only once the last bytes have been inflated.
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        const done = () => {
          this.ended = true;
          this.wake?.();
          resolve();
        };
        if (this.inflater && !this.inflater.destroyed) this.inflater.flush(zlib.constants.Z_SYNC_FLUSH, done);
        else done();
      }),
    );
  }

  static async connect(p: PosternHarness): Promise<CompressedClient> {
    const socket = tls.connect({ host: '127.0.0.1', port: p.port('imap.implicitTls'), ca: p.caPem, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const client = new CompressedClient(socket);
    expect(await client.readLine()).toMatch(/^\* OK /);
    return client;
  }

  async login(password: string): Promise<void> {
    this.send(`a LOGIN dana ${quoted(password)}\r\n`);
    expect(await this.readLine()).toMatch(/^a OK \[CAPABILITY [^\]]*COMPRESS=DEFLATE[^\]]*\] Logged in\.$/);
  }

  /** `c1 COMPRESS DEFLATE`; from the byte after the OK line, both directions are raw DEFLATE. */
  async compress(): Promise<void> {
    this.send('c1 COMPRESS DEFLATE\r\n');
    expect(await this.readLine()).toMatch(/^c1 OK /);
    const rest = this.text;
    this.text = Buffer.alloc(0);
    this.inflater = zlib.createInflateRaw();
    this.inflater.on('data', (chunk: Buffer) => this.received(chunk));
    this.inflater.on('error', (err) => {
      this.inflateError = err;
      this.wake?.();
    });
    if (rest.length) this.inflater.write(rest);
    this.deflater = zlib.createDeflateRaw();
    this.deflater.on('data', (chunk: Buffer) => this.socket.write(chunk));
  }

  send(text: string): void {
    if (!this.deflater) return void this.socket.write(text);
    this.deflater.write(text);
    this.deflater.flush(zlib.constants.Z_SYNC_FLUSH);
  }

  async readLine(timeoutMs = 5_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.text.indexOf('\r\n');
      if (end >= 0) {
        const line = this.text.subarray(0, end).toString('latin1');
        this.text = this.text.subarray(end + 2);
        return line;
      }
      if (this.inflateError) throw new Error(`inflate failed: ${this.inflateError.message}`);
      if (this.ended) throw new Error(`connection closed; unread: ${JSON.stringify(this.text.toString('latin1'))}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for a line; unread: ${JSON.stringify(this.text.toString('latin1'))}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  async readUntil(predicate: (line: string) => boolean, timeoutMs = 5_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    const lines: string[] = [];
    for (;;) {
      const line = await this.readLine(Math.max(1, deadline - Date.now()));
      lines.push(line);
      if (predicate(line)) return lines;
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private received(chunk: Buffer): void {
    this.text = this.text.length ? Buffer.concat([this.text, chunk]) : chunk;
    this.transcript += chunk.toString('latin1');
    this.wake?.();
  }
}

async function compressedSession(label: string): Promise<{ client: CompressedClient; publicId: string }> {
  const { password, publicId } = await postern.newPassword('dana', DANA_PRIMARY, { label });
  const client = await CompressedClient.connect(postern);
  await client.login(password);
  await client.compress();
  return { client, publicId };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('a compressed session', () => {
  it('gets a revocation BYE it can inflate, during IDLE, and is closed', async () => {
    const { client, publicId } = await compressedSession('compressed idle');
    client.send('b SELECT INBOX\r\n');
    await client.readUntil((l) => l.startsWith('b OK'));
    client.send('c IDLE\r\n');
    expect(await client.readLine()).toMatch(/^\+ /);
    await postern.accounts.revokePassword('dana', publicId);
    const lines = await client.readUntil((l) => l.startsWith('* BYE'), 3_000);
    expect(lines.at(-1)).toBe('* BYE This app-specific password has been revoked; signing out.');
    await client.closed;
    expect(client.inflateError).toBeNull();
    await postern.logs.waitForEvent('session.revoked');
  });

  it('logs out with the upstream\'s own BYE and OK, after real traffic, and no upstream.lost', async () => {
    const closedBefore = postern.logs.events('session.closed').length;
    const lostBefore = postern.logs.events('upstream.lost').length;
    const { client } = await compressedSession('compressed logout');
    // Enough traffic both ways that the inflater has work queued, and literals in both directions.
    const body = `${'compressible line of mail text '.repeat(4)}\r\n`.repeat(3_000);
    const mail = message('compressed big one', body);
    client.send(`d APPEND INBOX {${mail.length}+}\r\n${mail}\r\n`);
    await client.readUntil((l) => l.startsWith('d OK'));
    client.send('e SELECT INBOX\r\nf FETCH * BODY.PEEK[]\r\n');
    const fetched = await client.readUntil((l) => l.startsWith('f OK'));
    expect(fetched.join('\r\n')).toContain(body.slice(0, 2_000));
    client.send('z LOGOUT\r\n');
    const goodbye = await client.readUntil((l) => l.startsWith('z '));
    expect(goodbye.at(-2)).toMatch(/^\* BYE /);
    expect(goodbye.at(-1)).toMatch(/^z OK /);
    await client.closed;
    await waitFor(() => postern.logs.events('session.closed').length > closedBefore, 'session.closed');
    await sleep(100);
    expect(client.inflateError).toBeNull();
    expect(client.transcript).not.toContain(UPSTREAM_LOST_TEXT);
    expect(postern.logs.events('session.closed').at(-1)?.why).toBe('relay ended by upstream');
    expect(postern.logs.events('upstream.lost').length).toBe(lostBefore);
  });
});
