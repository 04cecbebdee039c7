// The one connector for mail upstreams, against in-process servers on 127.0.0.1. Invariants: the
// connect timeout bounds the TCP connect and the implicit-TLS handshake; STARTTLS upgrades with
// the same verified options (an untrusted certificate fails it, a trusted one succeeds) and a
// stalled upgrade handshake is bounded by the same timeout; failures are classified PosternErrors.
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPosternError } from '../errors.js';
import { generateSelfSigned, type GeneratedCert } from '../net/certs.js';
import { openUpstreamSocket, upgradeToTls, type UpstreamEndpoint } from './connect.js';

let cert: GeneratedCert;
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();

beforeAll(() => {
  cert = generateSelfSigned(['localhost', '127.0.0.1']);
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

async function listen(onSocket: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer((socket) => (sockets.add(socket), socket.on('error', () => undefined), onSocket(socket)));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

function endpoint(port: number, security: UpstreamEndpoint['security'], trusted: boolean): UpstreamEndpoint {
  const options: tls.ConnectionOptions = { minVersion: 'TLSv1.2', rejectUnauthorized: true, servername: 'localhost', ...(trusted ? { ca: cert.certPem } : {}) };
  return { host: '127.0.0.1', port, security, tls: options, connectTimeoutMs: 500 };
}

/** A server that upgrades every connection to TLS as soon as it arrives (as after "go ahead"). */
function startTlsServer(socket: net.Socket): void {
  const secure = new tls.TLSSocket(socket, { isServer: true, key: cert.keyPem, cert: cert.certPem });
  secure.on('error', () => undefined);
  secure.on('data', (chunk: Buffer) => secure.write(chunk));
}

describe('openUpstreamSocket', () => {
  it('bounds a TLS handshake the server never answers by connectTimeoutMs', async () => {
    const port = await listen(() => undefined);
    const err: unknown = await openUpstreamSocket(endpoint(port, 'tls', true)).catch((e: unknown) => e);
    expect(isPosternError(err, 'UPSTREAM_TIMEOUT')).toBe(true);
  });

  it('verifies the certificate of an implicit-TLS upstream', async () => {
    const port = await listen(startTlsServer);
    const untrusted: unknown = await openUpstreamSocket(endpoint(port, 'tls', false)).catch((e: unknown) => e);
    expect(isPosternError(untrusted, 'UPSTREAM_TLS_FAILED')).toBe(true);
    const socket = await openUpstreamSocket(endpoint(port, 'tls', true));
    expect((socket as tls.TLSSocket).authorized).toBe(true);
    socket.destroy();
  });
});

describe('upgradeToTls', () => {
  it('upgrades with the endpoint options: an untrusted certificate fails, a trusted one works', async () => {
    const port = await listen(startTlsServer);
    const plain = await openUpstreamSocket(endpoint(port, 'starttls', false));
    const err: unknown = await upgradeToTls(plain, endpoint(port, 'starttls', false)).catch((e: unknown) => e);
    expect(isPosternError(err, 'UPSTREAM_TLS_FAILED')).toBe(true);
    expect(plain.destroyed).toBe(true);

    const again = await openUpstreamSocket(endpoint(port, 'starttls', true));
    const secure = await upgradeToTls(again, endpoint(port, 'starttls', true));
    expect(secure.authorized).toBe(true);
    const echoed = new Promise<string>((resolve) => secure.once('data', (b: Buffer) => resolve(b.toString())));
    secure.write('ping');
    expect(await echoed).toBe('ping');
    secure.destroy();
  });

  it('bounds a stalled upgrade handshake by connectTimeoutMs', async () => {
    const port = await listen(() => undefined);
    const plain = await openUpstreamSocket(endpoint(port, 'starttls', true));
    const err: unknown = await upgradeToTls(plain, endpoint(port, 'starttls', true)).catch((e: unknown) => e);
    expect(isPosternError(err, 'UPSTREAM_TIMEOUT')).toBe(true);
    expect(plain.destroyed).toBe(true);
  });
});
