// The transport classifier against the errors Node and OpenSSL really raise, each produced by a
// real socket on 127.0.0.1 (only ETIMEDOUT, which needs a black-holed route, is built by hand in
// Node's shape). Invariants: a refused or reset connection is UPSTREAM_UNAVAILABLE; an untrusted
// certificate, a hostname mismatch, a plaintext server on a TLS port and a hang-up mid-handshake
// are UPSTREAM_TLS_FAILED; an upstream that does not speak HTTP is UPSTREAM_PROTOCOL; the OS
// timeout is UPSTREAM_TIMEOUT; a PosternError passes untouched; the Node code stays findable.
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PosternError } from '../errors.js';
import { generateSelfSigned, type GeneratedCert } from '../net/certs.js';
import { classifyTransportError, transportCause } from './classify.js';

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

async function listen(server: net.Server): Promise<number> {
  servers.push(server);
  server.on('connection', (socket: net.Socket) => (sockets.add(socket), socket.on('error', () => undefined)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The first error the socket emits (it must emit one). */
function firstError(socket: net.Socket): Promise<Error> {
  return new Promise((resolve, reject) => {
    socket.once('error', (err) => (socket.destroy(), resolve(err)));
    socket.once('secureConnect', () => (socket.destroy(), reject(new Error('handshake unexpectedly succeeded'))));
  });
}

function tlsTo(port: number, options: tls.ConnectionOptions = {}): tls.TLSSocket {
  return tls.connect({ host: '127.0.0.1', port, servername: 'localhost', minVersion: 'TLSv1.2', ...options });
}

describe('classifyTransportError with real errors', () => {
  it('a closed port is UPSTREAM_UNAVAILABLE, with ECONNREFUSED kept as the cause', async () => {
    const err = await firstError(net.connect({ host: '127.0.0.1', port: await closedPort() }));
    const classified = classifyTransportError(err);
    expect(classified.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(classified.cause).toBe(err);
    expect(classified.message).toBe('upstream connection failed: ECONNREFUSED');
    expect(transportCause(classified)).toBe('ECONNREFUSED');
  });

  it('a connection reset after it was established is UPSTREAM_UNAVAILABLE', async () => {
    const port = await listen(net.createServer((s) => s.resetAndDestroy()));
    const err = await firstError(net.connect({ host: '127.0.0.1', port }));
    expect(classifyTransportError(err).code).toBe('UPSTREAM_UNAVAILABLE');
    expect(transportCause(classifyTransportError(err))).toBe('ECONNRESET');
  });

  it('an untrusted (self-signed) certificate is UPSTREAM_TLS_FAILED', async () => {
    const port = await listen(tls.createServer({ key: cert.keyPem, cert: cert.certPem }));
    const err = await firstError(tlsTo(port));
    expect((err as { code?: string }).code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect(classifyTransportError(err).code).toBe('UPSTREAM_TLS_FAILED');
  });

  it('a trusted certificate for another host name is UPSTREAM_TLS_FAILED', async () => {
    const port = await listen(tls.createServer({ key: cert.keyPem, cert: cert.certPem }));
    const err = await firstError(tlsTo(port, { ca: cert.certPem, servername: 'imap.example.org' }));
    expect((err as { code?: string }).code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(classifyTransportError(err).code).toBe('UPSTREAM_TLS_FAILED');
  });

  it('a plaintext server on the TLS port is UPSTREAM_TLS_FAILED', async () => {
    const port = await listen(net.createServer((s) => s.write('* OK plaintext IMAP here\r\n')));
    const err = await firstError(tlsTo(port));
    expect((err as { code?: string }).code).toMatch(/^ERR_SSL_/);
    expect(classifyTransportError(err).code).toBe('UPSTREAM_TLS_FAILED');
  });

  it('a server hanging up mid-handshake is UPSTREAM_TLS_FAILED, though Node says ECONNRESET', async () => {
    const port = await listen(net.createServer((s) => s.once('data', () => s.destroy())));
    const err = await firstError(tlsTo(port));
    expect((err as { code?: string }).code).toBe('ECONNRESET');
    expect(classifyTransportError(err).code).toBe('UPSTREAM_TLS_FAILED');
  });

  it('an upstream that does not speak HTTP is UPSTREAM_PROTOCOL', async () => {
    const port = await listen(net.createServer((s) => s.once('data', () => s.end('* OK this is IMAP\r\n'))));
    const err = await new Promise<Error>((resolve) => http.get({ host: '127.0.0.1', port, path: '/' }).once('error', resolve));
    expect((err as { code?: string }).code).toMatch(/^HPE_/);
    expect(classifyTransportError(err, 'upstream HTTP request').code).toBe('UPSTREAM_PROTOCOL');
  });

  it('the OS connect timeout is UPSTREAM_TIMEOUT', () => {
    // Node's shape for it (net.js exceptionWithHostPort); a real one needs an unroutable address.
    const err = Object.assign(new Error('connect ETIMEDOUT 192.0.2.1:993'), { code: 'ETIMEDOUT', errno: -110, syscall: 'connect' });
    expect(classifyTransportError(err).code).toBe('UPSTREAM_TIMEOUT');
  });

  it('leaves a PosternError as it is, and finds no Node code in one without a cause', () => {
    const already = new PosternError('UPSTREAM_PROTOCOL', 'upstream greeting was not * OK');
    expect(classifyTransportError(already)).toBe(already);
    expect(transportCause(already)).toBe('');
  });
});
