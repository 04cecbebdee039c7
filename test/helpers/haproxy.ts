/**
 * A real HAProxy (Debian's `haproxy`) in TCP mode in front of postern, as a deployment has it:
 * one frontend per postern listener, each forwarding to it with the PROXY protocol (v1, v2) or,
 * to show what postern does with a balancer set up without it, with none. HAProxy connects to
 * postern from 127.0.0.1; clients connect to HAProxy from other loopback addresses, so the address
 * postern records tells the two apart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { hasExited, once, stopChild } from './child.js';
import { freePort } from './free-port.js';
import { makeTempDir, removeTempDir } from './tmp.js';

export interface HaproxyRoute {
  name: string;
  /** The postern port this frontend forwards to (on 127.0.0.1). */
  backendPort: number;
  /**
   * Several postern instances behind this frontend (round robin, health-checked, a refused
   * connection re-dispatched to another): replaces backendPort.
   */
  backendPorts?: readonly number[];
  proxy: 'v1' | 'v2' | 'none';
}

export interface HaproxyServer {
  /** The HAProxy port clients connect to for each route (by name). */
  port(name: string): number;
  stop(): Promise<void>;
}

const SEND_PROXY = { v1: ' send-proxy', v2: ' send-proxy-v2', none: '' } as const;

export async function startHaproxy(routes: readonly HaproxyRoute[]): Promise<HaproxyServer> {
  const dir = await makeTempDir('postern-haproxy-');
  const ports = new Map<string, number>();
  for (const route of routes) ports.set(route.name, await freePort());
  const sections = routes.map((route) => [
    `frontend ${route.name}`,
    `  bind 127.0.0.1:${ports.get(route.name)}`,
    `  default_backend ${route.name}_backend`,
    `backend ${route.name}_backend`,
    ...(route.backendPorts
      ? ['  balance roundrobin', '  option redispatch', '  retries 3',
          // A plain TCP check: HAProxy's own connects carry no PROXY header (check-send-proxy would).
          ...route.backendPorts.map((port, i) => `  server postern${i + 1} 127.0.0.1:${port}${SEND_PROXY[route.proxy]} check inter 300ms fall 1 rise 2${route.proxy === 'none' ? '' : ' check-send-proxy'}`)]
      : [`  server postern 127.0.0.1:${route.backendPort}${SEND_PROXY[route.proxy]}`]),
  ].join('\n'));
  const config = [
    'global',
    '  maxconn 256',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    ...sections,
    '',
  ].join('\n');
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  // -db: stay in the foreground, log to stderr; -W is not needed for one process.
  const child: ChildProcess = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await Promise.all([...ports.values()].map((port) => waitForPort(port, child, () => stderr)));
  } catch (err) {
    await stopChild(child);
    await removeTempDir(dir);
    throw err;
  }
  return {
    port(name) {
      const port = ports.get(name);
      if (port === undefined) throw new Error(`no HAProxy route ${name}`);
      return port;
    },
    stop: once(async () => {
      await stopChild(child);
      await removeTempDir(dir);
    }),
  };
}

/**
 * Waits until HAProxy holds the port, by trying to bind it (EADDRINUSE = it does): probing with a
 * connection would reach postern through HAProxy and put a refusal in the logs the tests read.
 */
export async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (hasExited(child)) throw new Error(`haproxy exited: ${stderr()}`);
    const taken = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(true));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(false)));
    });
    if (taken) return;
    if (Date.now() > deadline) throw new Error(`haproxy did not listen on ${port}: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
