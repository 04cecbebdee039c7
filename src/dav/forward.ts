/**
 * Relays one authenticated request to the upstream and its answer back. Sending it is DAV's
 * upstream login in the sign-in sequence (src/auth/sign-in.ts): a 401 means the upstream refused
 * the stored credentials, and the answer's head is all the sequence waits for, so streaming is
 * unchanged.
 *
 * Where it goes: the route's configured origin followed by the canonical path handler.ts judged
 * (`upstreamPath`, request-target.ts), never the raw target resolved by a URL parser; a
 * Destination is parsed as strictly and rewritten onto the same origin.
 *
 * Streaming: request bodies are piped to the upstream and response bodies to the client, with
 * back-pressure, so a large calendar or vCard PUT/GET never sits in memory. Two exceptions:
 * - XML request bodies (PROPFIND, REPORT, PROPPATCH, MKCOL, MKCALENDAR, LOCK…) may name postern's
 *   public origin in `<href>`s that the upstream must see as its own; they are small by nature,
 *   so they are buffered up to MAX_XML_REQUEST_BYTES (413 beyond), rewritten, and sent with an
 *   exact Content-Length (some DAV servers, Radicale among them, do not take chunked bodies).
 * - XML response bodies are rewritten upstream → public origin as a stream (origin-rewrite.ts);
 *   a compressed one is decompressed on the way and sent uncompressed.
 * Everything else (PUT of text/calendar or text/vcard included) passes byte for byte.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, type Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { logInUpstream, type Admitted } from '../auth/sign-in.js';
import type { Authenticator } from '../auth/types.js';
import type { DavCredential } from './headers.js';
import { PosternError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HttpUpstream } from '../upstream/http.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { toPublic, toUpstream } from './href-map.js';
import { bodyRewriter, rewriteUrl } from './origin-rewrite.js';
import { REPLY_TEXT, sendBadRequest, sendText, sendUpstreamFailure } from './replies.js';
import { parseDestination, safeTargetForLog } from './request-target.js';
import { upstreamPathOf, type DavRoutes, type DavScope, type Mount, type UpstreamTarget } from './routes.js';

/** Far above any real PROPFIND/REPORT body (a multiget of 10 000 hrefs is under 1 MiB). */
export const MAX_XML_REQUEST_BYTES = 4 * 1024 * 1024;

export interface ForwardContext {
  req: IncomingMessage;
  res: ServerResponse;
  target: UpstreamTarget;
  /** The mount the request path is under (routes.ts); answers are rewritten from it. */
  mount: Mount;
  /** The canonical path (client's encoding, mount prefix dropped) and query routing judged: all that goes upstream. */
  upstreamPath: string;
  scope: DavScope;
  /** The authenticated password and the credential this request is sent upstream with. */
  admitted: Admitted<DavCredential>;
  clientAddress: string;
  publicOrigin: string;
  trusted: boolean;
  routes: DavRoutes;
  upstream: HttpUpstream;
  /** A buffered XML body that pauses this long is abandoned with 408 (the upstream timeout). */
  bodyIdleMs: number;
  auth: Authenticator;
  /** Whether this request is the connection's first signed in with this password (one `session.started` per login). */
  firstSignIn(): boolean;
  log: Logger;
}

const XML = /^[^;]*[/+]xml\s*(?:;|$)/i;

export async function forward(ctx: ForwardContext): Promise<void> {
  const { req, res } = ctx;
  const destination = rewriteDestination(ctx);
  if (destination === 'bad') {
    ctx.log.info({ event: 'dav.target_refused', reason: 'bad-destination', method: req.method, target: safeTargetForLog(String(req.headers.destination)) }, 'Destination is not a plain URL on this server');
    return sendBadRequest(req, res);
  }
  if (destination === 'elsewhere') return sendText(req, res, 502, REPLY_TEXT.destinationElsewhere);
  const body = await requestBody(ctx);
  if (body === 'client-gone') return;
  if (body === 'too-large') return sendText(req, res, 413, REPLY_TEXT.tooLarge);
  if (body === 'too-slow') {
    res.shouldKeepAlive = false;
    return sendText(req, res, 408, REPLY_TEXT.requestTimeout);
  }
  const client = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) client.abort();
  });
  // The forwarded request is DAV's upstream login: a 401 is the stored credentials refused.
  const result = await logInUpstream({ auth: ctx.auth, log: ctx.log }, ctx.admitted, {
    protocol: ctx.scope,
    login: (credential) => send(ctx, credential, { body, destination, signal: client.signal }),
    cancelled: () => req.destroyed || res.destroyed,
    announce: () => ctx.firstSignIn(),
    logFields: { upstream: ctx.mount.origin },
  });
  if (result.kind === 'signed-in') return relayResponse(ctx, result.upstream);
  // The client went away first (its aborted upload destroyed the upstream request).
  if (result.kind === 'cancelled') ctx.log.debug({ event: 'dav.client_aborted' }, 'client closed the connection mid-request');
  sendUpstreamFailure(req, res, result);
}

async function send(ctx: ForwardContext, credential: DavCredential, request: { body: Body; destination: UpstreamDestination | undefined; signal: AbortSignal }): Promise<IncomingMessage> {
  const { req } = ctx;
  const headers = upstreamRequestHeaders(req.headers, {
    credential,
    clientAddress: ctx.clientAddress,
    trusted: ctx.trusted,
    bodyLength: Buffer.isBuffer(request.body) ? request.body.length : undefined,
  });
  if (request.destination) headers.destination = request.destination.url;
  const response = await ctx.upstream.send({ origin: ctx.mount.origin, path: ctx.upstreamPath, method: req.method ?? 'GET', headers, body: request.body, signal: request.signal });
  if (response.statusCode === 401) {
    response.resume();
    throw new PosternError('UPSTREAM_AUTH_REJECTED', 'upstream answered 401 to the stored credentials');
  }
  return response;
}

function relayResponse(ctx: ForwardContext, response: IncomingMessage): void {
  const { req, res } = ctx;
  const map = toPublic(ctx.routes, ctx.mount, ctx.publicOrigin);
  const decoder = bodyMayBeRewritten(req, response) ? decoderFor(response.headers['content-encoding']) : null;
  const headers = clientResponseHeaders(response.headers, { url: (v) => rewriteUrl(v, map), bodyRewritten: decoder !== null });
  res.writeHead(response.statusCode ?? 502, response.statusMessage, headers);
  const stages: Transform[] = decoder ? [...(decoder === 'identity' ? [] : [decoder]), bodyRewriter(map).stream()] : [];
  pipeline([response, ...stages, res], (err) => {
    if (err && !res.writableFinished) {
      ctx.log.debug({ event: 'upstream.stream_aborted', code: (err as { code?: string }).code }, 'DAV response stream ended early');
      res.destroy();
    }
  });
}

function bodyMayBeRewritten(req: IncomingMessage, response: IncomingMessage): boolean {
  const status = response.statusCode ?? 0;
  if (req.method === 'HEAD' || status === 204 || status === 304 || status < 200) return false;
  return XML.test(String(response.headers['content-type'] ?? ''));
}

/** A decoder for the body's Content-Encoding, 'identity' for none, null when we cannot decode it. */
function decoderFor(encoding: string | undefined): Transform | 'identity' | null {
  switch ((encoding ?? 'identity').trim().toLowerCase()) {
    case 'identity':
    case '':
      return 'identity';
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate':
      return createInflate();
    case 'br':
      return createBrotliDecompress();
    default:
      return null;
  }
}

type Body = Buffer | IncomingMessage | null;

type BodyFailure = 'too-large' | 'too-slow' | 'client-gone';

async function requestBody(ctx: ForwardContext): Promise<Body | BodyFailure> {
  const { req } = ctx;
  const length = req.headers['content-length'];
  const hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody) return null;
  if (req.method === 'PUT' || !XML.test(String(req.headers['content-type'] ?? ''))) return req;
  if (length !== undefined && Number(length) > MAX_XML_REQUEST_BYTES) return 'too-large';
  const read = await readCapped(req, MAX_XML_REQUEST_BYTES, ctx.bodyIdleMs);
  if (!Buffer.isBuffer(read)) return read;
  const text = read.toString('latin1');
  return Buffer.from(bodyRewriter(toUpstream(ctx.routes, ctx.mount, ctx.publicOrigin)).text(text), 'latin1');
}

/**
 * Reads a whole body of at most `cap` bytes. On overflow, or a pause of `idleMs` (nothing else
 * bounds a body trickled into this buffer: the listener has no request timeout), it stops reading
 * (the 413 or 408 that follows closes the connection) rather than destroying the request, so the
 * client still gets an answer.
 */
function readCapped(req: IncomingMessage, cap: number, idleMs: number): Promise<Buffer | BodyFailure> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onIdle = () => {
      req.pause();
      finish('too-slow');
    };
    const idle = setTimeout(onIdle, idleMs);
    const finish = (result: Buffer | BodyFailure) => {
      clearTimeout(idle);
      req.off('data', onData).off('end', onEnd).off('error', onGone).off('aborted', onGone);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      idle.refresh();
      total += chunk.length;
      if (total <= cap) chunks.push(chunk);
      else {
        req.pause();
        finish('too-large');
      }
    };
    const onEnd = () => finish(Buffer.concat(chunks));
    const onGone = () => finish('client-gone');
    req.on('data', onData).on('end', onEnd).on('error', onGone).on('aborted', onGone);
  });
}

/**
 * MOVE/COPY name their target in Destination (RFC 4918 §10.3), absolute or as a path, parsed as
 * strictly as the request target (request-target.ts) and placed in the namespace (routes.ts) like
 * it. A destination on another server, under another mount (another upstream origin), or on an
 * upstream other than the source's, is refused with 502 as RFC 4918 §9.9.4 prescribes; naming the
 * upstream's own origin is accepted on the root mount only, where its paths are postern's. The
 * scope needed at the destination is checked before this (handler.ts).
 */
/** The Destination to send upstream (an absolute URL on the source's upstream origin). */
type UpstreamDestination = { url: string };

function rewriteDestination(ctx: ForwardContext): UpstreamDestination | undefined | 'bad' | 'elsewhere' {
  const raw = ctx.req.headers.destination;
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string') return 'bad';
  const parsed = parseDestination(raw);
  if (typeof parsed === 'string') return parsed;
  const onUpstream = parsed.origin === ctx.mount.origin && ctx.mount.prefix === '';
  if (parsed.origin !== null && parsed.origin !== ctx.publicOrigin && !onUpstream) return 'elsewhere';
  const placed = ctx.routes.resolve(parsed.path);
  // Moving from a calendar tree into an address-book tree would need a scope not checked here.
  if (!placed || placed.mount !== ctx.mount || !placed.scopes.includes(ctx.scope)) return 'elsewhere';
  return { url: ctx.mount.origin + upstreamPathOf(parsed.upstreamPath, placed.prefixed) };
}
