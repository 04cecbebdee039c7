/**
 * A listener that cannot bind, in every protocol, through the real CLI (`node bin/postern.js
 * serve` as a subprocess): the port is already taken by another process's socket. Pinned:
 *  - `serve` ends with the config error's exit status (1) and exactly one stderr line naming the
 *    listener's config key and the address (`imap.implicitTls: cannot listen on 127.0.0.1:N:
 *    address already in use`), the same for IMAP, SMTP and DAV; before src/net/listener.ts
 *    bind(), IMAP and SMTP said "unexpected error: listen EADDRINUSE ...";
 *  - nothing is started: the taken port is still the other process's, and stdout says nothing
 *    was listening.
 */
import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createWorkspace, type Workspace } from '../helpers/cli.js';

let occupier: net.Server;
let port: number;
let workspaces: Workspace[] = [];

beforeAll(async () => {
  occupier = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => occupier.listen(0, '127.0.0.1', resolve));
  port = (occupier.address() as net.AddressInfo).port;
});
afterAll(async () => {
  workspaces.forEach((ws) => ws.cleanup());
  workspaces = [];
  await new Promise<void>((resolve) => occupier.close(() => resolve()));
});

const taken = () => ({ host: '127.0.0.1', port });
const upstream = { host: '127.0.0.1', port: 9 };

it.each([
  ['imap.implicitTls', () => ({ imap: { implicitTls: taken(), upstream } })],
  ['imap.starttls', () => ({ imap: { starttls: taken(), upstream } })],
  ['smtp.implicitTls', () => ({ smtp: { implicitTls: taken(), upstream } })],
  ['smtp.starttls', () => ({ smtp: { starttls: taken(), upstream } })],
  ['dav.listener', () => ({ dav: { listener: taken(), caldavUpstream: 'https://127.0.0.1:9/' } })],
])('%s on a port already in use: serve exits 1 with one line naming the listener and address', async (key, config) => {
  const ws = await createWorkspace(config());
  workspaces.push(ws);
  const r = await ws.run(['serve'], { timeoutMs: 30_000 });
  expect(r.stderr).toBe(`postern: ${key}: cannot listen on 127.0.0.1:${port}: address already in use\n`);
  expect(r.code).toBe(1);
  expect(r.stdout).not.toMatch(/listener\.started/);
  // The other process still has its port: postern took nothing over.
  expect(occupier.listening).toBe(true);
}, 40_000);
