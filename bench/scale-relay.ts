/**
 * The scale section's floor (bench/scale.ts): a bare Node TLS relay in its own process, the least
 * any Node proxy with TLS on both sides can cost. It accepts TLS with postern's certificate,
 * connects TLS to the same minimal upstream (resuming the upstream's session, as postern does),
 * pipes both ways, and nothing else: no protocol, no timers, no logger, no database. Whatever
 * postern costs above this is postern's own; what this costs is Node's (OpenSSL state on two
 * legs, libuv handles, stream objects).
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { commonOp, unknownOp, type Handler } from './child-ops.js';



/**
 * The client side of one upstream TLS handshake, full against resumed (issue 15: is resumption
 * worth its `setSession`, the parse of the kept session, on every connection?). Sequential
 * connects to the upstream with this relay's client context, each destroyed once secure; the
 * two kinds interleaved in rounds, so load changes hit both alike. A full handshake includes
 * Node's name check (`getPeerCertificate(true)` + checkServerIdentity), which it skips on a resumed one.
 */
async function handshakeCpu(secureContext: tls.SecureContext, port: number, n: number, rounds: number): Promise<Record<string, unknown>> {
  let session: Buffer | undefined;
  const once = (resume: boolean) => new Promise<boolean>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, secureContext, servername: 'localhost', ...(resume && session ? { session } : {}) });
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      const reused = socket.isSessionReused();
      // TLS 1.3 sends its tickets after the handshake: the first resumable connection waits for one.
      if (!resume || session) return void (socket.destroy(), resolve(reused));
      socket.once('session', (s: Buffer) => {
        session = s;
        socket.destroy();
        resolve(reused);
      });
    });
  });
  for (let i = 0; i < 20; i++) await once(i % 2 === 0);
  const sums = { full: 0, resumed: 0, reused: 0 };
  for (let r = 0; r < rounds; r++) {
    for (const kind of ['full', 'resumed'] as const) {
      const t0 = process.cpuUsage();
      for (let i = 0; i < n / rounds; i++) if (await once(kind === 'resumed')) sums.reused++;
      const t1 = process.cpuUsage(t0);
      sums[kind] += (t1.user + t1.system) / 1000;
    }
  }
  return { full: sums.full / n, resumed: sums.resumed / n, reused: sums.reused };
}

export function serve(register: (handler: Handler) => void): void {
  const cert = readFileSync(process.env.BENCH_CERT!);
  let upstreamPort = 0;
  let session: Buffer | undefined;
  // One client context for every upstream connection (as postern's connector keeps one): `ca` on
  // each connect would build a new context, certificate store and all, per connection.
  const upstreamContext = tls.createSecureContext({ ca: cert });
  const server = tls.createServer({ cert, key: readFileSync(process.env.BENCH_KEY!) }, (client) => {
    client.pause();
    const upstream = tls.connect({ host: '127.0.0.1', port: upstreamPort, secureContext: upstreamContext, servername: 'localhost', ...(session ? { session } : {}) });
    upstream.once('session', (s: Buffer) => (session = s));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    upstream.once('secureConnect', () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  register(async (m) => {
    switch (m.op) {
      case 'listen':
        upstreamPort = Number(m.upstreamPort);
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', 4096, resolve));
        return { port: (server.address() as AddressInfo).port };
      case 'handshake-cpu': return handshakeCpu(upstreamContext, upstreamPort, Number(m.n), Number(m.rounds));
      default: return (await commonOp(m)) ?? unknownOp(m);
    }
  });
}
