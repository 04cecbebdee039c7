/**
 * The admin listener (config `admin`, loopback by default): what a load balancer, an orchestrator
 * and Prometheus ask of one instance.
 *  - `GET /healthz`: the process answers (liveness; nothing else is checked, so a database outage
 *    does not get a healthy process restarted in a loop);
 *  - `GET /readyz`: 200 while it should be sent traffic: every listener bound, the database
 *    answers a query, not draining; 503 with the failing check otherwise;
 *  - `GET /metrics`: Prometheus text format (src/metrics/).
 * Plain node:http: three fixed GET routes, no body, no auth (it must not be exposed: bind it to
 * loopback or a management network). Anything else is 404/405. Never logs request details.
 */
import http from 'node:http';
import type { Logger } from '../log.js';
import { bind } from '../net/listener.js';
import type { BoundAddress } from '../net/service.js';
import type { Metrics } from '../metrics/index.js';

export interface ReadinessChecks {
  /** Rejects (or resolves false) when the database cannot be read. */
  database(): boolean | Promise<boolean>;
  listenersBound(): boolean;
  draining(): boolean;
}

export interface AdminSpec {
  host: string;
  port: number;
  metrics: Metrics;
  readiness: ReadinessChecks;
  log: Logger;
}

export interface AdminServer {
  address: BoundAddress;
  close(): Promise<void>;
}

export async function startAdmin(spec: AdminSpec): Promise<AdminServer> {
  const server = http.createServer((req, res) => void answer(spec, req, res));
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  const bound = await bind(server, { key: 'admin', host: spec.host, port: spec.port, log: spec.log });
  let closing: Promise<void> | null = null;
  return {
    address: { name: 'admin', host: spec.host, port: bound.port },
    close: () => (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    })),
  };
}

async function answer(spec: AdminSpec, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics') return send(404, 'not found\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(405, 'method not allowed\n');
  }
  if (path === '/healthz') return send(200, 'ok\n');
  if (path === '/readyz') {
    const failing = await notReady(spec.readiness);
    return failing ? send(503, `not ready: ${failing}\n`) : send(200, 'ready\n');
  }
  try {
    send(200, await spec.metrics.registry.metrics(), spec.metrics.registry.contentType);
  } catch (err) {
    spec.log.error({ event: 'internal.error', err }, 'could not render metrics');
    send(500, 'metrics unavailable\n');
  }
}

async function notReady(checks: ReadinessChecks): Promise<string | null> {
  if (checks.draining()) return 'draining';
  if (!checks.listenersBound()) return 'listeners not bound';
  let database = false;
  try {
    database = await checks.database();
  } catch {
    database = false;
  }
  return database ? null : 'database unreachable';
}
