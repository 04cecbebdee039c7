/**
 * HTTP(S) client toward the real CalDAV/CardDAV provider: one keep-alive agent per configured
 * upstream origin, certificates verified by default (src/upstream/tls-options.ts), and transport
 * failures turned into typed PosternErrors by upstream/classify.ts (UPSTREAM_UNAVAILABLE / _TIMEOUT /
 * _TLS_FAILED / _PROTOCOL) that the DAV replies module maps to 502/504.
 *
 * It sends exactly the method, path, headers and body it is given: which headers may cross (hop-by-
 * hop, credentials, X-Forwarded-*) is DAV policy and lives in src/dav/. Nothing here logs.
 *
 * Defence in depth against the origin escape of issue 9 (a client path read as another authority
 * carried real credentials to a host of the client's choosing): the origins it may talk to are
 * fixed at construction, each with its agent made then (plus sibling hosts a configured upstream
 * handed out, `allow`), so nothing a client sends can add one or grow the agent map; a request for any other origin, or a path that is not plain origin-form,
 * is refused before a socket is opened or a header written. The path is never resolved by a URL
 * parser: it goes into the request line as given.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { PosternError } from '../errors.js';
import { classifyTransportError } from './classify.js';
import { upstreamTlsOptions } from './tls-options.js';

export interface HttpUpstreamSettings {
  caFile?: string | undefined;
  rejectUnauthorized: boolean;
  /**
   * Name resolution for upstream hosts; the system resolver when absent. Tests reach provider-
   * shaped upstreams by name (`caldav.fastmail.test`) through a map of loopback addresses.
   */
  lookup?: import('node:net').LookupFunction | undefined;
  /** No byte from the upstream for this long (waiting for headers or mid-body) → UPSTREAM_TIMEOUT. */
  timeoutMs: number;
}

export interface UpstreamRequest {
  /** Upstream origin, e.g. `https://dav.example.org` (no path). */
  origin: string;
  /** Path and query exactly as they go upstream. */
  path: string;
  method: string;
  headers: OutgoingHttpHeaders;
  /** A buffered body (may be retried on a stale keep-alive socket) or a stream (never retried). */
  body: Buffer | Readable | null;
  /** Aborting (the client went away) destroys the upstream request, before or after the answer. */
  signal?: AbortSignal;
}


/**
 * Methods that may be sent again when a reused keep-alive socket turns out to be closed by the
 * upstream (the race RFC 9112 §9.3.1 describes): safe or idempotent, and only with a buffered body.
 */
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS', 'PROPFIND', 'REPORT', 'DELETE']);
/**
 * Idle pooled sockets are dropped after this, before common server keep-alive timeouts (Node and
 * Apache 5 s) close them under us, which keeps the stale-socket race above rare for PUTs too.
 */
const IDLE_SOCKET_MS = 4_000;

/** Origin-form (RFC 9112 §3.2.1) of visible ASCII: no `//` authority, no backslash, no fragment. */
const ORIGIN_FORM = /^\/(?!\/)[\x21-\x22\x24-\x5b\x5d-\x7e]*$/;

interface Destination {
  secure: boolean;
  hostname: string;
  port: number;
  agent: http.Agent;
}

export class HttpUpstream {
  private readonly destinations = new Map<string, Destination>();

  /** `origins`: every upstream origin requests may go to (`https://host[:port]`, no path). */
  constructor(
    private readonly settings: HttpUpstreamSettings,
    origins: readonly string[],
  ) {
    for (const origin of origins) {
      const url = new URL(origin);
      if (url.origin !== origin) throw new PosternError('CONFIG_INVALID', `upstream origin ${origin} is not in origin form`);
      this.destinations.set(origin, this.destinationFor(url));
    }
  }

  /**
   * Adds a sibling origin the DAV namespace learnt from a configured upstream's answer and the
   * admin's follow patterns allow (src/dav/routes.ts `learn`, bounded there); never from client input.
   */
  allow(origin: string): void {
    const url = new URL(origin);
    if (url.origin !== origin) throw new PosternError('CONFIG_INVALID', `upstream origin ${origin} is not in origin form`);
    if (!this.destinations.has(origin)) this.destinations.set(origin, this.destinationFor(url));
  }

  /** Resolves when the response head has arrived (body still streaming); rejects with a PosternError. */
  async send(request: UpstreamRequest): Promise<IncomingMessage> {
    if (!this.destinations.has(request.origin)) throw new PosternError('INPUT_INVALID', 'upstream origin is not a configured one');
    if (!ORIGIN_FORM.test(request.path)) throw new PosternError('INPUT_INVALID', 'upstream path is not in origin form');
    try {
      return await this.attempt(request);
    } catch (err) {
      const stale = (err as { reusedSocket?: boolean }).reusedSocket === true;
      if (!stale || !RETRYABLE.has(request.method) || isStream(request.body)) throw classifyTransportError(err, 'upstream HTTP request');
      return this.attempt(request).catch((again: unknown) => Promise.reject(classifyTransportError(again, 'upstream HTTP request')));
    }
  }

  /** Closes idle upstream sockets; idempotent. */
  close(): void {
    for (const destination of this.destinations.values()) destination.agent.destroy();
  }

  private attempt(request: UpstreamRequest): Promise<IncomingMessage> {
    const { secure, hostname, port, agent } = this.destinations.get(request.origin)!;
    const options: https.RequestOptions = {
      hostname, port, path: request.path, agent,
      method: request.method,
      headers: request.headers,
      signal: request.signal,
    };
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(options);
      let settled = false;
      req.setTimeout(this.settings.timeoutMs, () => req.destroy(new PosternError('UPSTREAM_TIMEOUT')));
      req.on('error', (err) => {
        if (settled) return;
        settled = true;
        reject(Object.assign(err, { reusedSocket: req.reusedSocket }));
      });
      req.on('response', (response) => {
        settled = true;
        resolve(response);
      });
      const body = request.body;
      if (body === null) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        body.on('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }

  private destinationFor(url: URL): Destination {
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') throw new PosternError('CONFIG_INVALID', `upstream origin ${url.origin} is not http or https`);
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    const common = { keepAlive: true, maxSockets: 64, scheduling: 'lifo' as const, timeout: IDLE_SOCKET_MS, ...(this.settings.lookup ? { lookup: this.settings.lookup } : {}) };
    const agent = secure
      ? new https.Agent({ ...common, ...upstreamTlsOptions({ host: hostname, caFile: this.settings.caFile, rejectUnauthorized: this.settings.rejectUnauthorized }) })
      : new http.Agent(common);
    return { secure, hostname, port: Number(url.port) || (secure ? 443 : 80), agent };
  }
}

function isStream(body: UpstreamRequest['body']): body is Readable {
  return body !== null && !Buffer.isBuffer(body);
}
