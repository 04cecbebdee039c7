// A TCP relay on 127.0.0.1 that counts the connections it accepts and pipes each one, byte for
// byte, to a real server (e.g. Dovecot): what the tests put in front of an upstream to count how
// many connections postern opens to it. Without a target it is a "catcher": it accepts, counts and
// keeps what it is sent, for tests asserting that nothing ever connects to it.
import net from 'node:net';

export interface CountingRelay {
  host: string;
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  /** Connections open now. */
  open(): number;
  /** Bytes received from clients so far (all connections). */
  bytesIn(): number;
  /** Resolves once `accepted()` reaches `count`, rejects after `timeoutMs`. */
  waitForAccepted(count: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startCountingRelay(target?: { host: string; port: number }): Promise<CountingRelay> {
  let accepted = 0;
  let bytesIn = 0;
  const sockets = new Set<net.Socket>();
  const waiters = new Set<() => void>();
  const server = net.createServer((client) => {
    accepted++;
    sockets.add(client);
    client.on('error', () => undefined);
    client.on('data', (chunk: Buffer) => void (bytesIn += chunk.length));
    client.on('close', () => sockets.delete(client));
    for (const wake of [...waiters]) wake();
    if (!target) return;
    const upstream = net.connect(target);
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: '127.0.0.1',
    port,
    accepted: () => accepted,
    open: () => [...sockets].filter((s) => s.remotePort !== undefined && s.localPort === port).length,
    bytesIn: () => bytesIn,
    waitForAccepted(count, timeoutMs = 5_000) {
      if (accepted >= count) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`relay: ${accepted} connections accepted, waited for ${count}`));
        }, timeoutMs);
        const check = () => {
          if (accepted < count) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      });
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
