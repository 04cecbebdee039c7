/**
 * The one way to open a connection to a mail upstream (IMAP or SMTP): a TCP or implicit-TLS
 * socket within the connect timeout, and the STARTTLS upgrade over an existing socket with the
 * same verified TLS options. Failures arrive as PosternErrors named by upstream/classify.ts.
 *
 * TLS sessions are resumed per origin (upstream/tls-sessions.ts): most handshakes are abbreviated.
 *
 * It knows no protocol: the greeting, the STARTTLS command and what to do with bytes that came
 * in clear (RFC 3207 §6, RFC 9051 §6.2.1: discard them) are the caller's. It never falls back to
 * plaintext or to an unverified certificate: the options it is given are the ones it uses.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { MailUpstreamConfig } from '../config/schema.js';
import { PosternError } from '../errors.js';
import { classifyTransportError } from './classify.js';
import { upstreamTlsOptions } from './tls-options.js';
import { keepSessions, sessionFor } from './tls-sessions.js';

export interface UpstreamEndpoint {
  host: string;
  port: number;
  security: 'tls' | 'starttls' | 'plain';
  /** Verified client options (see upstreamTls); unused for `plain`. */
  tls: tls.ConnectionOptions;
  /** Bounds the TCP connect and, for `tls`, the handshake; also each STARTTLS handshake. */
  connectTimeoutMs: number;
}

/**
 * TLS options per upstream config object, so a CA file is read and its secure context built once
 * per config (upstream/tls-options.ts caches the context per file); a changed CA file needs a restart.
 */
const tlsCache = new WeakMap<MailUpstreamConfig, tls.ConnectionOptions>();

export function upstreamTls(config: MailUpstreamConfig): tls.ConnectionOptions {
  let options = tlsCache.get(config);
  if (!options) tlsCache.set(config, (options = upstreamTlsOptions(config)));
  return options;
}

export function mailEndpoint(config: MailUpstreamConfig): UpstreamEndpoint {
  const tlsOptions = config.security === 'plain' ? {} : upstreamTls(config);
  return { host: config.host, port: config.port, security: config.security, tls: tlsOptions, connectTimeoutMs: config.connectTimeoutMs };
}

/**
 * Resolves once the socket is connected (for `tls`: handshake done, certificate verified). The
 * socket it returns has no error listener: the caller attaches its own before the next tick.
 */
export function openUpstreamSocket(endpoint: UpstreamEndpoint, what = 'upstream connection'): Promise<net.Socket> {
  const implicit = endpoint.security === 'tls';
  const socket = implicit ? secureConnect(endpoint, { port: endpoint.port }) : net.connect({ host: endpoint.host, port: endpoint.port });
  return settle(socket, implicit ? 'secureConnect' : 'connect', endpoint.connectTimeoutMs, what).then(() => {
    socket.setNoDelay(true);
    return socket;
  });
}

/**
 * Upgrades `plain` (after the upstream's "go ahead") to TLS with the endpoint's options. The
 * caller must have stopped reading `plain`: whatever it still holds arrived in clear.
 */
export async function upgradeToTls(plain: net.Socket, endpoint: UpstreamEndpoint, what = 'upstream STARTTLS'): Promise<tls.TLSSocket> {
  plain.on('error', () => undefined); // the TLS socket reports the plain one's errors from here on
  // `host` as for an implicit-TLS connect: the certificate is checked against it (not whatever
  // name the plain socket happened to record) when `servername` is absent, i.e. for an IP address.
  const secure = secureConnect(endpoint, { socket: plain });
  try {
    await settle(secure, 'secureConnect', endpoint.connectTimeoutMs, what);
  } catch (err) {
    plain.destroy();
    throw err;
  }
  return secure;
}

/** A TLS client socket with the endpoint's verified options, resuming a session of this very origin if one is kept. */
function secureConnect(endpoint: UpstreamEndpoint, over: { port: number } | { socket: net.Socket }): tls.TLSSocket {
  const origin = { tls: endpoint.tls, host: endpoint.host, port: endpoint.port };
  const socket = tls.connect({ ...endpoint.tls, host: endpoint.host, ...over, session: sessionFor(origin) });
  keepSessions(socket, origin);
  return socket;
}

/** Waits for `ready`, the first error, or the timeout; on failure the socket is destroyed. */
function settle(socket: net.Socket, ready: 'connect' | 'secureConnect', timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new PosternError('UPSTREAM_TIMEOUT', `${what} took longer than ${timeoutMs} ms`)), timeoutMs);
    const onError = (err: Error) => fail(classifyTransportError(err, what));
    function fail(err: PosternError): void {
      clearTimeout(timer);
      socket.off(ready, onReady);
      socket.destroy();
      // A late error from the destroyed socket must not become an uncaught exception.
      socket.off('error', onError).on('error', () => undefined);
      reject(err);
    }
    function onReady(): void {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve();
    }
    socket.once('error', onError);
    socket.once(ready, onReady);
  });
}
