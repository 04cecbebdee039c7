// A `fetch` for tsdav that reaches named test hosts: Node's global fetch cannot be given a resolver or
// an extra CA per call, so this one is built on node:https with the harness's HostMap lookup and CA.
// It routes by the URL's own host (unlike test/dav/support/client.ts, which pins one socket address),
// because the provider shapes hand the client absolute URLs on other hosts. Redirects are returned,
// not followed: discovery (RFC 6764 §5) reads the Location itself.
import http from 'node:http';
import https from 'node:https';
import { hostLookup, type HostMap } from './dav-hosts.js';

export interface HostFetchOptions {
  caPem: string;
  hosts: HostMap;
}

export interface RecordedRequest {
  method: string;
  url: string;
  status: number;
}

export interface HostFetch {
  fetch: typeof globalThis.fetch;
  /** Every request made, in order, with the status it got (to check which host discovery used). */
  requests: RecordedRequest[];
  close(): void;
}

export function hostFetch(options: HostFetchOptions): HostFetch {
  const lookup = hostLookup(options.hosts);
  const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: options.caPem, lookup });
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 4, lookup });
  const requests: RecordedRequest[] = [];
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const method = init?.method ?? 'GET';
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, name) => (headers[name] = value));
    const body = init?.body === undefined || init.body === null ? undefined : String(init.body as string);
    const secure = url.protocol === 'https:';
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = (secure ? https : http).request(url, { method, headers, agent: secure ? httpsAgent : httpAgent }, resolve);
      req.on('error', reject);
      req.end(body);
    });
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    const status = response.statusCode ?? 0;
    requests.push({ method, url: url.href, status });
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(response.headers)) {
      if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const noBody = status === 204 || status === 304 || status < 200;
    const result = new Response(noBody ? null : Buffer.concat(chunks), { status, headers: responseHeaders });
    Object.defineProperty(result, 'url', { value: url.href });
    return result;
  }) as typeof globalThis.fetch;
  return {
    fetch: fetchImpl,
    requests,
    close: () => {
      httpsAgent.destroy();
      httpAgent.destroy();
    },
  };
}
