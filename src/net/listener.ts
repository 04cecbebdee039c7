/**
 * Listeners. bind() is how every protocol's server (net, tls, https, smtp-server's) takes its
 * configured address, so a port already taken or not allowed is the same named config error
 * everywhere (`imap.implicitTls: cannot listen on 127.0.0.1:993: address already in use`), not a
 * raw EADDRINUSE for some and a message for others, and a bound server's later errors are logged
 * as `listener.error` by all.
 *
 * bind() is also where a listener configured for the PROXY protocol gets its gate (proxy-gate.ts),
 * before TLS and before any protocol handler sees the connection.
 *
 * listen() is the TCP listener of the mail protocols: implicit TLS (RFC 8314) or plaintext for
 * STARTTLS (port 0 reports the port the kernel picked). The TLS context follows TlsMaterial
 * reloads (SIGHUP) via setSecureContext, so renewed certificates apply to new connections while
 * live ones keep theirs. No bundled fallback certificate, ever.
 */
import net from 'node:net';
import tls from 'node:tls';
import { PosternError } from '../errors.js';
import type { Logger } from '../log.js';
import { acceptProxyProtocol, type ProxyProtocolPolicy } from './proxy-gate.js';
import { reportDescriptorsExhausted } from './descriptors.js';
import type { BoundAddress } from './service.js';
import type { TlsMaterial } from './tls-material.js';

export interface ListenerSpec {
  name: string;
  host: string;
  port: number;
  /** Inbound PROXY protocol from a load balancer (config `<listener>.proxyProtocol`). */
  proxyProtocol?: ProxyProtocolPolicy | undefined;
  /** Implicit TLS from the first byte when set. */
  implicitTls: TlsMaterial | null;
  /** Called with each accepted socket (already past the TLS handshake when implicit). */
  onConnection(socket: net.Socket, secure: boolean): void;
  log: Logger;
  /** TLS handshake bound for implicit TLS. */
  handshakeTimeoutMs?: number;
}

export interface Listener {
  address: BoundAddress;
  /** Stops accepting; live connections are the protocol's to end. */
  close(): Promise<void>;
}

export async function listen(spec: ListenerSpec): Promise<Listener> {
  const { implicitTls } = spec;
  let server: net.Server;
  let unsubscribe = () => {};
  if (implicitTls) {
    const tlsServer = tls.createServer({ ...implicitTls.secureContextOptions(), handshakeTimeout: spec.handshakeTimeoutMs ?? 30_000 });
    tlsServer.on('secureConnection', (socket) => spec.onConnection(socket, true));
    // Failed handshakes (scanners, wrong port, old TLS) are routine: debug, not error.
    tlsServer.on('tlsClientError', (err) => spec.log.debug({ event: 'tls.handshake_failed', listener: spec.name, code: (err as NodeJS.ErrnoException).code }, 'TLS handshake failed'));
    const off = implicitTls.onReload((options) => tlsServer.setSecureContext(options));
    unsubscribe = () => void off();
    server = tlsServer;
  } else {
    server = net.createServer((socket) => spec.onConnection(socket, false));
  }
  let bound: net.AddressInfo;
  try {
    bound = await bind(server, { key: spec.name, host: spec.host, port: spec.port, proxyProtocol: spec.proxyProtocol, log: spec.log });
  } catch (err) {
    unsubscribe();
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    address: { name: spec.name, host: spec.host, port: bound.port },
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        unsubscribe();
        server.close(() => resolve());
      })),
  };
}

export interface BindSpec {
  /** The config key of the listener, e.g. `imap.implicitTls`, `dav.listener`: what errors name. */
  key: string;
  host: string;
  port: number;
  /** When set, every connection must first pass the PROXY header check (proxy-gate.ts). */
  proxyProtocol?: ProxyProtocolPolicy | undefined;
  log: Logger;
}

/** Why the kernel refused a bind, in words that say what to change. */
const BIND_FAILURES: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this machine',
  ENOTFOUND: 'host name does not resolve',
  EAI_AGAIN: 'host name does not resolve',
};

/**
 * Binds a server to its configured address; resolves with the address bound (port 0 → the
 * kernel's pick), rejects with PosternError CONFIG_INVALID naming the listener and address.
 */
export async function bind(server: net.Server, spec: BindSpec): Promise<net.AddressInfo> {
  // Here, so that no listener (mail, DAV, the portal's HTTP) can be bound without it.
  if (spec.proxyProtocol) acceptProxyProtocol(server, spec.proxyProtocol, spec.key, spec.log);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(bindFailure(spec, err));
    server.once('error', onError);
    server.listen(spec.port, spec.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err: NodeJS.ErrnoException) => {
    // EMFILE at accept: libuv has already closed the connection it could not give a descriptor (net/descriptors.ts).
    if (err.code === 'EMFILE' || err.code === 'ENFILE') reportDescriptorsExhausted(spec.log, 'accept', err.code);
    else spec.log.error({ event: 'listener.error', listener: spec.key, err }, 'listener error');
  });
  return server.address() as net.AddressInfo;
}

function bindFailure(spec: BindSpec, err: NodeJS.ErrnoException): PosternError {
  const where = net.isIPv6(spec.host) ? `[${spec.host}]:${spec.port}` : `${spec.host}:${spec.port}`;
  const why = (err.code && BIND_FAILURES[err.code]) ?? err.message;
  return new PosternError('CONFIG_INVALID', `${spec.key}: cannot listen on ${where}: ${why}`, { cause: err });
}

/** A server-side TLS context for STARTTLS upgrades that follows TlsMaterial reloads. */
export function reloadableSecureContext(material: TlsMaterial): { current: () => tls.SecureContext; dispose(): void } {
  let context = tls.createSecureContext(material.secureContextOptions());
  const off = material.onReload((options) => (context = tls.createSecureContext(options)));
  return { current: () => context, dispose: () => void off() };
}
