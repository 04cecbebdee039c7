/**
 * RSS of postern holding 2,000 idle pre-auth IMAP connections (issue 9, item 5). Postern runs in
 * this process in front of a real Dovecot; the clients run in a child process (so their memory is
 * not counted), 200 TLS connections from each of ten loopback addresses, each reading the greeting
 * and then sitting idle. Also prints how many upstream connections are open meanwhile (counted by
 * a relay in front of Dovecot): at most imap.limits.preConnectTotal.
 * Not part of `npm run bench`; run it with
 *   node --expose-gc --import tsx bench/preauth-rss.ts [connections=2000]
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { startDovecot } from '../test/helpers/dovecot.js';
import { startPostern } from '../test/helpers/postern.js';

const ADDRESSES = 10;

async function clients(port: number, count: number, ca: string): Promise<void> {
  const sockets: tls.TLSSocket[] = [];
  for (let i = 0; i < count; i++) {
    sockets.push(await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', localAddress: `127.0.1.${(i % ADDRESSES) + 1}` } as tls.ConnectionOptions);
      s.once('error', reject);
      s.once('data', () => resolve(s));
    }));
  }
  process.stdout.write(`ready ${sockets.length}\n`);
  setInterval(() => undefined, 60_000); // hold them until killed
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function rss(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss;
}

async function main(count: number): Promise<void> {
  const user = { name: 'bench', password: 'bench-real-Secret-1' };
  const dovecot = await startDovecot({ users: [user] });
  // Upstream connections are counted on their way to Dovecot by a relay in this process.
  let upstreamOpen = 0;
  const relay = net.createServer((c) => {
    upstreamOpen++;
    const u = net.connect({ host: dovecot.host, port: dovecot.imapsPort });
    c.pipe(u).pipe(c);
    const done = () => { c.destroy(); u.destroy(); };
    c.on('error', done).on('close', () => { upstreamOpen--; done(); });
    u.on('error', done).on('close', done);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const postern = await startPostern({
    config: {
      log: { level: 'warn' },
      imap: {
        implicitTls: { port: 0 },
        upstream: { host: '127.0.0.1', port: (relay.address() as net.AddressInfo).port, security: 'tls', caFile: dovecot.caFile, servername: 'localhost' },
        limits: { preAuthIdleMs: 600_000 },
      },
    },
    secrets: [user.password],
  });
  try {
    await new Promise((r) => setTimeout(r, 500));
    const before = rss();
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), 'clients', String(postern.port('imap.implicitTls')), String(count)], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, BENCH_CA: postern.caPem } });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().startsWith('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`clients exited with ${code}`)));
    });
    await new Promise((r) => setTimeout(r, 1_000));
    const after = rss();
    process.stdout.write(`postern RSS: ${mib(before)} idle → ${mib(after)} with ${count} pre-auth TLS connections (+${mib(after - before)}, ${Math.round((after - before) / count / 1024)} KiB each); upstream connections open: ${upstreamOpen}\n`);
    child.kill();
  } finally {
    await postern.stop();
    relay.close();
    await dovecot.stop();
  }
}

if (process.argv[2] === 'clients') {
  const [port, count] = process.argv.slice(3).map(Number);
  void clients(port!, count!, process.env.BENCH_CA ?? '');
} else {
  main(Number(process.argv[2] ?? 2000)).then(() => process.exit(0), (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
