/**
 * SIGTERM drain of the built binary (`postern serve` as systemd runs it), watched by real clients:
 *  - readiness goes false first (/readyz 503 `draining`) while the process still answers /healthz;
 *  - the listeners stop accepting at once: a new IMAP connection is refused;
 *  - live sessions go on during `shutdown.graceMs` (an IMAP NOOP is answered), then end with
 *    their protocol's goodbye: IMAP `* BYE`, SMTP `421`;
 *  - the process exits 0.
 * The upstreams are a closed port: pre-auth sessions are enough to see the goodbyes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN, createWorkspace, type Workspace } from '../helpers/cli.js';
import { connectLineClient, type LineClient } from '../helpers/line-client.js';

const CLOSED = { host: '127.0.0.1', port: 9 };
const GRACE_MS = 1_500;

let ws: Workspace;
let child: ChildProcess | undefined;
const clients: LineClient[] = [];

beforeAll(async () => {
  ws = await createWorkspace({
    imap: { implicitTls: { host: '127.0.0.1', port: 0 }, upstream: CLOSED },
    smtp: { starttls: { host: '127.0.0.1', port: 0 }, upstream: CLOSED },
    admin: { listen: '127.0.0.1', port: 0 },
    shutdown: { graceMs: GRACE_MS },
  });
});

afterAll(() => {
  clients.forEach((c) => c.close());
  child?.kill('SIGKILL');
  ws?.cleanup();
});

/** Starts the binary; resolves the listener ports from its `listener.started` lines. */
function serve(): Promise<{ ports: Map<string, number>; lines: string[]; exited: Promise<number | null> }> {
  const proc = spawn(process.execPath, [BIN, '-c', ws.configPath, 'serve'], { cwd: ws.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  const lines: string[] = [];
  const ports = new Map<string, number>();
  // 'close', not 'exit': exit can come before the last lines are read from the pipe, and the test
  // reads the final postern.stopped line right after.
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let pending = '';
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.stdout.on('data', (d: Buffer) => {
      pending += d.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        lines.push(line);
        const entry = JSON.parse(line) as { event?: string; listener?: string; port?: number };
        if (entry.event === 'listener.started') ports.set(entry.listener!, entry.port!);
        if (entry.event === 'postern.started') resolve({ ports, lines, exited });
      }
    });
    void exited.then((code) => reject(new Error(`serve exited early (${code}): ${stderr}`)));
  });
}

async function line(port: number, tls: boolean): Promise<LineClient> {
  const c = await connectLineClient({ host: '127.0.0.1', port, tls: tls ? { rejectUnauthorized: false } : undefined, timeoutMs: 10_000 });
  clients.push(c);
  return c;
}

const refused = (port: number) => new Promise<string>((resolve) => {
  const socket = net.connect(port, '127.0.0.1');
  socket.once('connect', () => (socket.destroy(), resolve('connected')));
  socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
});

it('SIGTERM: not ready first, no new connections, sessions live through the grace period, then * BYE and 421, exit 0', async () => {
  const { ports, lines, exited } = await serve();
  const admin = `http://127.0.0.1:${ports.get('admin')}`;
  expect((await fetch(`${admin}/readyz`)).status).toBe(200);
  const imap = await line(ports.get('imap.implicitTls')!, true);
  expect(await imap.readLine()).toMatch(/^\* OK/);
  const smtp = await line(ports.get('smtp.starttls')!, false);
  expect(await smtp.readLine()).toMatch(/^220 /);
  smtp.write('EHLO client.example\r\n');
  await smtp.readUntil((l) => l.startsWith('250 '));

  child!.kill('SIGTERM');
  await expect.poll(async () => (await fetch(`${admin}/readyz`)).status).toBe(503);
  expect(await (await fetch(`${admin}/readyz`)).text()).toBe('not ready: draining\n');
  expect((await fetch(`${admin}/healthz`)).status).toBe(200);
  expect(await refused(ports.get('imap.implicitTls')!)).toBe('ECONNREFUSED');
  imap.write('n1 NOOP\r\n');
  expect((await imap.readUntil((l) => l.startsWith('n1 '))).at(-1)).toMatch(/^n1 OK/);
  smtp.write('NOOP\r\n');
  expect(await smtp.readLine()).toMatch(/^250 /);

  expect(await imap.readLine(GRACE_MS + 5_000)).toMatch(/^\* BYE /);
  expect(await smtp.readLine(GRACE_MS + 5_000)).toMatch(/^421 /);
  expect(await exited).toBe(0);
  const events = lines.map((l) => (JSON.parse(l) as { event?: string }).event);
  expect(events.indexOf('postern.draining')).toBeGreaterThan(events.indexOf('postern.stopping'));
  expect(events.at(-1)).toBe('postern.stopped');
});
