// Named hosts for the provider-shaped DAV upstreams (Cyrus, Xandikos behind HAProxy, the iCloud-like
// front). Providers are reached by name (`caldav.fastmail.test`, `p07-caldav.icloud.test`), and the
// shapes under test depend on those names: a certificate for the name, Host and SNI, absolute hrefs
// that name another host. The tests cannot edit /etc/hosts, so each harness binds its own loopback
// addresses and exports a HostMap; `hostLookup(map)` turns it into a resolver for Node's `lookup`
// socket option (net, tls, http(s) Agent), which is how a test points postern or a client at them.
// Names come from the reserved `.test` TLD (RFC 2606), so a lookup that escapes the map can never
// reach a real provider: unknown names fail with ENOTFOUND instead of falling back to DNS.
import { execFile } from 'node:child_process';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { readFile } from 'node:fs/promises';
import { createServer, isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Host name (lower case) → the IPv4 loopback address its harness listens on. */
export type HostMap = Readonly<Record<string, string>>;

/** The signature of dns.lookup that net.connect / tls.connect / http.Agent accept as `lookup`. */
export type LookupFunction = (
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void;

/** A resolver that answers only from `hosts`; IP literals resolve to themselves. */
export function hostLookup(...maps: HostMap[]): LookupFunction {
  const hosts: Record<string, string> = Object.assign({}, ...maps);
  return (hostname, options, callback) => {
    const name = hostname.toLowerCase();
    const address = isIP(name) ? name : hosts[name];
    if (address === undefined) {
      const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname} (not in the test host map)`);
      err.code = 'ENOTFOUND';
      process.nextTick(callback, err, '', 0);
      return;
    }
    const family = isIP(address);
    if (options.all) process.nextTick(callback, null, [{ address, family }]);
    else process.nextTick(callback, null, address, family);
  };
}

export interface HostCertificate {
  certFile: string;
  keyFile: string;
  /** The certificate itself: it is self-signed, so trusting it is trusting the CA. */
  caPem: string;
}

/**
 * A self-signed P-256 certificate whose subjectAltName lists every name and address of one harness
 * (one certificate per harness; SNI then only picks the name the server answers as).
 */
export async function makeHostCertificate(dir: string, names: string[], addresses: string[]): Promise<HostCertificate> {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const san = [...names.map((n) => `DNS:${n}`), ...addresses.map((a) => `IP:${a}`)].join(',');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '7',
    '-subj', `/CN=${names[0] ?? 'localhost'}`, '-addext', `subjectAltName=${san}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=digitalSignature,keyCertSign',
  ]);
  return { certFile, keyFile, caPem: await readFile(certFile, 'utf8') };
}

/**
 * A TCP port free on every one of `addresses` when probed, so that one harness can serve several
 * host names on the same port (as providers do on 443). Not reserved: a caller that loses the race
 * sees EADDRINUSE from its server and retries.
 */
export async function portFreeOnAll(addresses: string[]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await probe(addresses[0]!, 0);
    const others = await Promise.all(addresses.slice(1).map((a) => probe(a, port).then(() => true, () => false)));
    if (others.every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${addresses.join(', ')}`);
}

function probe(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : 0;
      server.close((err) => (err || bound === 0 ? reject(err ?? new Error('no port assigned')) : resolve(bound)));
    });
  });
}
