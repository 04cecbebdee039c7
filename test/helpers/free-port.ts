// Finds a TCP port nobody is listening on, for servers that cannot be told to bind port 0 and report
// back (Dovecot, Radicale). The port is free when returned, not reserved: a caller that loses the race
// sees EADDRINUSE and may retry.
import { createServer } from 'node:net';

/** Binds port 0 on `host`, reads the port the kernel picked, and releases it. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close((err) => (err || port === 0 ? reject(err ?? new Error('no port assigned')) : resolve(port)));
    });
  });
}
