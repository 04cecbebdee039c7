// The one connector for mail upstreams, against in-process servers on 127.0.0.1. Invariants: the
// connect timeout bounds the TCP connect and the implicit-TLS handshake; STARTTLS upgrades with
// the same verified options (an untrusted certificate fails it, a trusted one succeeds) and a
// stalled upgrade handshake is bounded by the same timeout; failures are classified PosternErrors.
// Resumption (upstream/tls-sessions.ts): a second connection to the same origin resumes the first's
// session; a session is never offered to another name, even on the same server with the same ticket
// keys (Node skips the name check on a resumed session, so that would leave a certificate unchecked).
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPosternError } from '../errors.js';
import { generateSelfSigned, type GeneratedCert } from '../net/certs.js';
import { openUpstreamSocket, upgradeToTls, type UpstreamEndpoint } from './connect.js';

let cert: GeneratedCert;
let otherCert: GeneratedCert;
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();

beforeAll(() => {
  cert = generateSelfSigned(['localhost', '127.0.0.1']);
  otherCert = generateSelfSigned(['other.test']);
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

/** One TLS server for every connection, so all share its ticket keys, as a real server's do. Writes a greeting. */
async function ticketingServer(pem: GeneratedCert, extra: tls.TlsOptions = {}): Promise<number> {
  const server = tls.createServer({ key: pem.keyPem, cert: pem.certPem, ...extra }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.write('hello\r\n');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** Connects, reads the greeting (TLS 1.3 tickets come before it), and reports whether the handshake was resumed. */
async function connectAndGreet(target: UpstreamEndpoint): Promise<boolean> {
  const socket = (await openUpstreamSocket(target)) as tls.TLSSocket;
  await new Promise((resolve) => socket.once('data', resolve));
  await new Promise((resolve) => setImmediate(resolve));
  const reused = socket.isSessionReused();
  socket.destroy();
  return reused;
}

describe('TLS session resumption toward the upstream', () => {
  it('resumes the session of the same origin, and verifies the certificate on every full handshake', async () => {
    const port = await ticketingServer(cert);
    const target = endpoint(port, 'tls', true);
    expect(await connectAndGreet(target)).toBe(false);
    expect(await connectAndGreet(target)).toBe(true);
    expect(await connectAndGreet(target)).toBe(true);
    // Another verification setting (no CA for this self-signed certificate) gets no session: full handshake, refused.
    const untrusted: unknown = await openUpstreamSocket(endpoint(port, 'tls', false)).catch((e: unknown) => e);
    expect(isPosternError(untrusted, 'UPSTREAM_TLS_FAILED')).toBe(true);
  });

  it('never offers a session verified for one upstream name to another name on the same server (name check skipped)', async () => {
    const port = await ticketingServer(cert);
    const trusted: tls.ConnectionOptions = { minVersion: 'TLSv1.2', rejectUnauthorized: true, ca: [cert.certPem, otherCert.certPem] };
    const hostA: UpstreamEndpoint = { host: '127.0.0.1', port, security: 'tls', tls: { ...trusted, servername: 'localhost' }, connectTimeoutMs: 500 };
    const hostB: UpstreamEndpoint = { host: '127.0.0.1', port, security: 'tls', tls: { ...trusted, servername: 'other.test' }, connectTimeoutMs: 500 };
    expect(await connectAndGreet(hostA)).toBe(false);
    // The server's certificate names localhost only: B must get a full handshake, and fail its name check.
    const err: unknown = await openUpstreamSocket(hostB).catch((e: unknown) => e);
    expect(isPosternError(err, 'UPSTREAM_TLS_FAILED')).toBe(true);
    expect(await connectAndGreet(hostA)).toBe(true);
  });

  it('does not resume, unchecked, a session from a handshake refused for a certificate of another name (TLS 1.2 ticket before the check)', async () => {
    // A certificate from a trusted CA, for another name: the chain verifies, the name does not.
    // In TLS 1.2 the server's ticket arrives inside the handshake, before Node checks the name.
    const port = await ticketingServer(otherCert, { maxVersion: 'TLSv1.2' });
    const target: UpstreamEndpoint = { host: '127.0.0.1', port, security: 'tls', tls: { minVersion: 'TLSv1.2', rejectUnauthorized: true, servername: 'localhost', ca: otherCert.certPem }, connectTimeoutMs: 500 };
    for (let attempt = 0; attempt < 3; attempt++) {
      const err: unknown = await openUpstreamSocket(target).catch((e: unknown) => e);
      expect(isPosternError(err, 'UPSTREAM_TLS_FAILED')).toBe(true);
    }
  });

  it('resumes a STARTTLS upgrade too, per origin', async () => {
    const context = tls.createSecureContext({ key: cert.keyPem, cert: cert.certPem });
    const port = await listen((socket) => {
      const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: context });
      secure.on('error', () => undefined);
      secure.on('secure', () => secure.write('hello\r\n'));
    });
    const target = endpoint(port, 'starttls', true);
    const upgrade = async () => {
      const secure = await upgradeToTls(await openUpstreamSocket(target), target);
      await new Promise((resolve) => secure.once('data', resolve));
      await new Promise((resolve) => setImmediate(resolve));
      const reused = secure.isSessionReused();
      secure.destroy();
      return reused;
    };
    expect(await upgrade()).toBe(false);
    expect(await upgrade()).toBe(true);
  });
});
