/**
 * HTTP(S) client toward the real CalDAV/CardDAV provider: one keep-alive agent per upstream
 * origin, certificates verified by default (src/upstream/tls-options.ts), and transport failures
 * turned into typed PosternErrors (UPSTREAM_UNAVAILABLE / _TIMEOUT / _TLS_FAILED) that the DAV
 * replies module maps to 502/504.
 *
 * It sends exactly the method, path, headers and body it is given: which headers may cross (hop-by-
 * hop, credentials, X-Forwarded-*) is DAV policy and lives in src/dav/. Nothing here logs.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { PosternError, type ErrorCode } from '../errors.js';
import { upstreamTlsOptions } from './tls-options.js';

export interface HttpUpstreamSettings {
  caFile?: string | undefined;
  rejectUnauthorized: boolean;
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

export class HttpUpstream {
  private readonly agents = new Map<string, http.Agent>();

  constructor(private readonly settings: HttpUpstreamSettings) {}

  /** Resolves when the response head has arrived (body still streaming); rejects with a PosternError. */
  async send(request: UpstreamRequest): Promise<IncomingMessage> {
    try {
      return await this.attempt(request);
    } catch (err) {
      const stale = (err as { reusedSocket?: boolean }).reusedSocket === true;
      if (!stale || !RETRYABLE.has(request.method) || isStream(request.body)) throw classify(err);
      return this.attempt(request).catch((again: unknown) => Promise.reject(classify(again)));
    }
  }

  /** Closes idle upstream sockets; idempotent. */
  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  private attempt(request: UpstreamRequest): Promise<IncomingMessage> {
    const url = new URL(request.path, request.origin);
    const secure = url.protocol === 'https:';
    const options: https.RequestOptions = {
      method: request.method,
      headers: request.headers,
      agent: this.agentFor(url, secure),
      signal: request.signal,
    };
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(url, options);
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

  private agentFor(url: URL, secure: boolean): http.Agent {
    let agent = this.agents.get(url.origin);
    if (!agent) {
      const common = { keepAlive: true, maxSockets: 64, scheduling: 'lifo' as const, timeout: IDLE_SOCKET_MS };
      agent = secure
        ? new https.Agent({ ...common, ...upstreamTlsOptions({ host: url.hostname.replace(/^\[|\]$/g, ''), caFile: this.settings.caFile, rejectUnauthorized: this.settings.rejectUnauthorized }) })
        : new http.Agent(common);
      this.agents.set(url.origin, agent);
    }
    return agent;
  }
}

function isStream(body: UpstreamRequest['body']): body is Readable {
  return body !== null && !Buffer.isBuffer(body);
}

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|ERR_OSSL_)/;

/** Transport failure → the catalogue; the original error stays as `cause` for the log. */
export function classify(err: unknown): PosternError {
  if (err instanceof PosternError) return err;
  const code = String((err as { code?: unknown })?.code ?? '');
  let mapped: ErrorCode = 'UPSTREAM_UNAVAILABLE';
  if (code === 'ETIMEDOUT') mapped = 'UPSTREAM_TIMEOUT';
  else if (TLS_CODES.test(code) || /certificate|SSL routines|TLS/i.test(String((err as Error)?.message ?? ''))) mapped = 'UPSTREAM_TLS_FAILED';
  else if (code === 'HPE_INVALID_CONSTANT' || code.startsWith('HPE_')) mapped = 'UPSTREAM_PROTOCOL';
  return new PosternError(mapped, undefined, { cause: err });
}
