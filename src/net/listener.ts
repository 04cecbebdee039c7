/**
 * TCP listeners for the mail protocols: implicit TLS (RFC 8314) or plaintext for STARTTLS, bound
 * to the configured host and port (port 0 reports the port the kernel picked). The TLS context
 * follows TlsMaterial reloads (SIGHUP) via setSecureContext, so renewed certificates apply to new
 * connections while live ones keep theirs. No bundled fallback certificate, ever.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../log.js';
import type { BoundAddress } from './service.js';
import type { TlsMaterial } from './tls-material.js';

export interface ListenerSpec {
  name: string;
  host: string;
  port: number;
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
  server.on('error', (err) => spec.log.error({ event: 'listener.error', listener: spec.name, err }, 'listener error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(spec.port, spec.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as net.AddressInfo;
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

/** A server-side TLS context for STARTTLS upgrades that follows TlsMaterial reloads. */
export function reloadableSecureContext(material: TlsMaterial): { current(): tls.SecureContext; dispose(): void } {
  let context = tls.createSecureContext(material.secureContextOptions());
  const off = material.onReload((options) => (context = tls.createSecureContext(options)));
  return { current: () => context, dispose: () => void off() };
}
