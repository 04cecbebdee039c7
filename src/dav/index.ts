/**
 * The CalDAV/CardDAV listener: HTTPS (HTTP/1.1, keep-alive) in front of the provider's DAV
 * server(s). Builds the routing table and upstream client from config, then hands every request
 * to handler.ts. Certificates renew on SIGHUP without dropping connections (setSecureContext).
 * Connections are capped in total and per address (dav.limits), as on the mail listeners, and so
 * are requests per connection, in total and unanswered (pipelining.ts).
 *
 * Module map: request-target.ts (the one canonical path, judged and forwarded), routes.ts (path →
 * upstream and scope), basic-auth.ts (Authorization parsing), handler.ts (per-request flow),
 * scope-check.ts and collection-kind.ts (scope on a shared root), forward.ts (relay and streaming rewrite), headers.ts (what
 * crosses), origin-rewrite.ts (absolute URL rewriting), replies.ts (postern's own answers),
 * slow-clients.ts (deadlines for bodies postern does not forward), pipelining.ts (requests per
 * connection), connections.ts (revocation
 * closes keep-alive connections), src/upstream/http.ts (upstream client).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { DavConfig } from '../config/schema.js';
import type { ProtocolDeps, ProtocolService } from '../net/service.js';
import { clientAddressOf } from '../auth/client-address.js';
import { warnIfInsecureUpstream } from '../net/insecure-upstream.js';
import { ConnectionLimiter } from '../net/connection-limiter.js';
import { bind } from '../net/listener.js';
import { HttpUpstream } from '../upstream/http.js';
import { CollectionKinds } from './collection-kind.js';
import { ConnectionWatches } from './connections.js';
import { createDavHandler } from './handler.js';
import { normalizeOrigin } from './public-origin.js';
import { PipelineGate } from './pipelining.js';
import { sendTooManyConnections, sendTooManyRequests } from './replies.js';
import { DavRoutes } from './routes.js';

/** Idle keep-alive connections are kept this long (DAV clients sync in bursts). */
const KEEP_ALIVE_TIMEOUT_MS = 30_000;
/** On shutdown, requests in flight get this long to finish. */
const DRAIN_MS = 5_000;
/** The whole request head must arrive within this (slowloris, RFC 9112 has no limit of its own). */
const HEADERS_TIMEOUT_MS = 20_000;
/** A connection over the caps gets 503 for its first request; one that sends none is cut after this. */
const REFUSED_GRACE_MS = 5_000;

export async function startDav(config: DavConfig, deps: ProtocolDeps): Promise<ProtocolService> {
  const log = deps.log.child({ listener: 'dav' });
  const routes = DavRoutes.fromConfig(config);
  const upstream = new HttpUpstream({ caFile: config.caFile, rejectUnauthorized: config.rejectUnauthorized, timeoutMs: config.upstreamTimeoutMs, lookup: deps.upstreamLookup }, routes.origins());
  for (const origin of routes.origins()) {
    warnIfInsecureUpstream(log, { protocol: 'dav', upstream: origin, plaintext: origin.startsWith('http:'), unverified: !config.rejectUnauthorized });
  }
  // A sibling host a configured upstream named and the admin's `follow` patterns allow (routes.ts).
  routes.onLearn = (mount, via) => {
    upstream.allow(mount.origin);
    log.info({ event: 'dav.host_followed', upstream: via.origin, host: mount.origin, mount: mount.prefix }, 'following a sibling host the upstream handed out');
  };
  const watches = new ConnectionWatches();
  const server = https.createServer({
    ...deps.tls.secureContextOptions(),
    keepAlive: true,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    headersTimeout: HEADERS_TIMEOUT_MS,
    // Long uploads are bounded by the upstream timeout (idle), not by a total request time; bodies
    // postern answers before reading, or buffers itself, have deadlines of their own
    // (slow-clients.ts, forward.ts readCapped).
    requestTimeout: 0,
  });
  let bound = { host: config.listener.host, port: config.listener.port };
  const handler = createDavHandler({
    auth: deps.auth,
    routes,
    upstream,
    watches,
    kinds: new CollectionKinds(upstream),
    log,
    realm: config.realm,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    publicOrigin: config.publicOrigin ? normalizeOrigin(config.publicOrigin) : undefined,
    fallbackOrigin: () => `https://${bound.host.includes(':') ? `[${bound.host}]` : bound.host}:${bound.port}`,
    trusted: config.trusted,
  });
  // Connection caps, as on the mail listeners: counted once the TLS handshake is done, so that a
  // refused client gets a real HTTP answer (503, Retry-After) instead of a reset it would retry.
  const limiter = new ConnectionLimiter(config.limits);
  const overLimit = new WeakSet<object>();
  server.on('secureConnection', (socket: TLSSocket) => {
    const ip = clientAddressOf(socket);
    const slot = limiter.acquire(ip);
    if ('refused' in slot) {
      overLimit.add(socket);
      setTimeout(() => socket.destroy(), REFUSED_GRACE_MS).unref();
      return limiter.logRefusal(log, ip, slot.refused);
    }
    socket.once('close', () => slot.release());
  });
  server.maxRequestsPerSocket = config.limits.maxRequestsPerConnection;
  const pipeline = new PipelineGate(config.limits.maxQueuedRequestsPerConnection);
  let draining = false;
  let open = 0;
  server.on('secureConnection', (socket: TLSSocket) => {
    open++;
    socket.once('close', () => open--);
  });
  const serve = (req: IncomingMessage, res: ServerResponse, expectsContinue = false) => {
    if (overLimit.has(req.socket)) return sendTooManyConnections(req, res);
    // Drain: answered as usual, then the connection closes (RFC 9112 §9.6), so the client's next
    // request opens a new connection, to another instance.
    if (draining) res.shouldKeepAlive = false;
    // Node only says `Connection: close` on the last allowed request and keeps the socket open
    // (answering 503 to any further one): close it after that answer instead.
    if ((res as { maxRequestsOnConnectionReached?: boolean }).maxRequestsOnConnectionReached) res.shouldKeepAlive = false;
    const admitted = pipeline.admit(req, res);
    if (admitted === 'serve') return void handler(req, res, expectsContinue);
    if (admitted === 'drop') return;
    log.info({ event: 'dav.pipeline_limit', ip: clientAddressOf(req.socket) }, 'too many pipelined requests on one connection; closing it');
    sendTooManyRequests(req, res);
  };
  server.on('request', (req, res) => serve(req, res));
  server.on('checkContinue', (req, res) => serve(req, res, true));
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    log.debug({ event: 'dav.client_error', code: err.code }, 'malformed HTTP from client');
    if (socket.writable && !(err.code === 'ECONNRESET')) {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    } else socket.destroy();
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => log.debug({ event: 'tls.handshake_failed', listener: 'dav', code: err.code }, 'TLS handshake with client failed'));
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.on('error', () => undefined);
    // Answers are written as head + body; Nagle would hold the body for the client's delayed ACK.
    socket.setNoDelay(true);
  });
  const stopReload = deps.tls.onReload((options) => server.setSecureContext(options));

  const address = await bind(server, { key: 'dav.listener', host: config.listener.host, port: config.listener.port, proxyProtocol: config.listener.proxyProtocol, log }).catch((err: unknown) => {
    stopReload();
    upstream.close();
    throw err;
  });
  bound = { host: address.address, port: address.port };

  let closing: Promise<void> | null = null;
  return {
    addresses: [{ name: 'dav', host: address.address, port: address.port }],
    connections: () => open,
    stopAccepting: () => {
      draining = true;
      // Stops accepting and closes idle keep-alive connections; drainAndClose() closes again later.
      server.close();
    },
    close: () => (closing ??= drainAndClose(server, () => {
      stopReload();
      watches.releaseAll();
      upstream.close();
    })),
  };
}

/**
 * Shutdown: stop accepting, close idle keep-alive connections at once, give requests in flight
 * (an upload, a long REPORT) up to DRAIN_MS to finish, then cut what is left.
 */
function drainAndClose(server: https.Server, release: () => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const deadline = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
    // A connection whose last request just finished is idle now: close it rather than wait for it.
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    server.close(() => {
      clearTimeout(deadline);
      clearInterval(sweep);
      release();
      resolve();
    });
    server.closeIdleConnections();
  });
}
