/**
 * HTTPS client helpers for the DAV tests: a plain request function over node:https that trusts
 * postern's self-signed certificate (and reports which socket it used, for keep-alive tests), and
 * a `fetch` built on it for tsdav (Node's global fetch cannot be told about an extra CA per call).
 */
import https from 'node:https';
import type { OutgoingHttpHeaders, IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  socket: Socket;
}

export interface RequestSpec {
  method?: string;
  path: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer | Readable;
}

export interface DavTestClient {
  request(spec: RequestSpec): Promise<RawResponse>;
  fetch: typeof globalThis.fetch;
  agent: https.Agent;
  close(): void;
}

export function basic(login: string, password: string): string {
  return `Basic ${Buffer.from(`${login}:${password}`, 'utf8').toString('base64')}`;
}

export function davClient(port: number, caPem: string, host = '127.0.0.1'): DavTestClient {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: caPem });
  const request = (spec: RequestSpec) =>
    new Promise<RawResponse>((resolve, reject) => {
      const req = https.request({ host, port, method: spec.method ?? 'GET', path: spec.path, headers: spec.headers, agent, ca: caPem, servername: 'localhost' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8'), socket: req.socket as Socket });
        });
      });
      req.on('error', reject);
      const body = spec.body;
      if (body === undefined) req.end();
      else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
      else body.pipe(req);
    });
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, name) => (headers[name] = value));
    headers.host = url.host;
    const body = init?.body === undefined || init.body === null ? undefined : (init.body as string);
    const raw = await request({ method: init?.method ?? 'GET', path: url.pathname + url.search, headers, body });
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(raw.headers)) {
      if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const noBody = raw.status === 204 || raw.status === 304 || raw.status < 200;
    const response = new Response(noBody ? null : raw.body, { status: raw.status, headers: responseHeaders });
    Object.defineProperty(response, 'url', { value: url.href });
    return response;
  }) as typeof globalThis.fetch;
  return { request, fetch: fetchImpl, agent, close: () => agent.destroy() };
}
