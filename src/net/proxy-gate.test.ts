// Invariants pinned here for the PROXY gate in front of a server's connection handling: the
// address a balancer's header carries is what clientAddressOf() gives for the accepted socket and
// for a TLS socket built on it (implicit TLS: the header in clear, then the handshake, even in one
// TCP segment); the bytes after the header reach the server intact; a connection from an address
// that is not a configured balancer, one without a header, one with a malformed header and one
// whose header does not arrive in time are cut with a `proxy.refused` line and never reach the
// server; LOCAL keeps the socket's own address.
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogSink, type LogSink } from '../../test/helpers/log-sink.js';
import { clientAddressOf } from '../auth/client-address.js';
import { generateSelfSigned, type GeneratedCert } from './certs.js';
import { acceptProxyProtocol, type ProxyProtocolPolicy } from './proxy-gate.js';

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function v2Inet4(source: string, port: number, command = 1): Buffer {
  const b = Buffer.alloc(28);
  SIGNATURE.copy(b);
  b[12] = 0x20 | command;
  b[13] = 0x11;
  b.writeUInt16BE(12, 14);
  Buffer.from(source.split('.').map(Number)).copy(b, 16);
  Buffer.from([127, 0, 0, 1]).copy(b, 20);
  b.writeUInt16BE(port, 24);
  b.writeUInt16BE(993, 26);
  return b;
}

let cert: GeneratedCert;
let sink: LogSink;
const servers: net.Server[] = [];

beforeAll(() => {
  cert = generateSelfSigned(['localhost', '127.0.0.1']);
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

interface Accepted {
  address: string;
  firstBytes: string;
}

/** A server behind the gate; `accepted` settles with what the server saw of its first connection. */
async function gated(server: net.Server, policy: Partial<ProxyProtocolPolicy>, event: 'connection' | 'secureConnection') {
  sink = createLogSink();
  const accepted = new Promise<Accepted>((resolve) => {
    server.on(event, (socket: net.Socket) => {
      socket.on('error', () => undefined);
      socket.once('data', (data: Buffer) => {
        resolve({ address: clientAddressOf(socket), firstBytes: data.toString('latin1') });
        socket.end('bye');
      });
    });
  });
  // After the server's own handlers, as bind() installs it.
  acceptProxyProtocol(server, { from: ['127.0.0.1'], timeoutMs: 5_000, ...policy }, 'test.listener', sink.logger);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, accepted };
}

function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => socket.on('close', () => resolve()).on('error', () => undefined));
}

describe('addresses carried', () => {
  it('gives the header\'s address to a plain server, with the bytes after the header in the same segment', async () => {
    const { port, accepted } = await gated(net.createServer(), {}, 'connection');
    const client = net.connect(port, '127.0.0.1');
    client.write(Buffer.concat([Buffer.from('PROXY TCP4 198.51.100.9 127.0.0.1 40000 143\r\n'), Buffer.from('a1 CAPABILITY\r\n')]));
    expect(await accepted).toEqual({ address: '198.51.100.9', firstBytes: 'a1 CAPABILITY\r\n' });
    client.destroy();
  });

  it('gives it to the TLS socket of implicit TLS, header and ClientHello in one segment', async () => {
    const { port, accepted } = await gated(tls.createServer({ key: cert.keyPem, cert: cert.certPem }), {}, 'secureConnection');
    const raw = net.connect(port, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    raw.cork();
    raw.write(v2Inet4('203.0.113.5', 40001));
    const client = tls.connect({ socket: raw, rejectUnauthorized: false });
    process.nextTick(() => raw.uncork());
    client.on('secureConnect', () => client.write('hello over TLS'));
    const reply = new Promise<string>((r) => client.once('data', (d: Buffer) => r(d.toString())));
    expect(await accepted).toEqual({ address: '203.0.113.5', firstBytes: 'hello over TLS' });
    expect(await reply).toBe('bye');
    client.destroy();
  });

  it('keeps the socket\'s own address for LOCAL (the balancer\'s health check)', async () => {
    const { port, accepted } = await gated(net.createServer(), {}, 'connection');
    const client = net.connect(port, '127.0.0.1');
    client.write(Buffer.concat([v2Inet4('203.0.113.5', 1, 0), Buffer.from('ping')]));
    expect(await accepted).toEqual({ address: '127.0.0.1', firstBytes: 'ping' });
    client.destroy();
  });
});

describe('refusals', () => {
  async function refusedWith(policy: Partial<ProxyProtocolPolicy>, send: Buffer | null): Promise<Record<string, unknown>> {
    let reached = false;
    const server = net.createServer();
    server.on('connection', () => (reached = true));
    const { port } = await gated(server, policy, 'connection');
    const client = net.connect(port, '127.0.0.1');
    if (send) client.write(send);
    await closed(client);
    expect(reached).toBe(false);
    const [line] = sink.events('proxy.refused');
    expect(line).toMatchObject({ listener: 'test.listener', peer: '127.0.0.1' });
    return line!;
  }

  it('spoofed address from a host that is not a balancer: cut, header or not', async () => {
    const line = await refusedWith({ from: ['192.0.2.0/24'] }, Buffer.from('PROXY TCP4 198.51.100.9 127.0.0.1 1 2\r\n'));
    expect(line.reason).toBe('source is not a configured load balancer');
  });

  it('a connection without a header on a PROXY listener is cut at its first byte', async () => {
    expect((await refusedWith({}, Buffer.from('a1 LOGIN alice secret\r\n'))).reason).toBe('no PROXY header');
  });

  it('a malformed header is cut', async () => {
    expect((await refusedWith({}, Buffer.from('PROXY TCP4 2001:db8::1 127.0.0.1 1 2\r\n'))).reason).toMatch(/not IPv4/);
  });

  it('a header that does not arrive in time is cut (no hang)', async () => {
    expect((await refusedWith({ timeoutMs: 200 }, null)).reason).toBe('no header in time');
    await new Promise((r) => setTimeout(r, 0));
    expect((await refusedWith({ timeoutMs: 200 }, Buffer.from('PROXY TCP4 198.51')))).toMatchObject({ reason: 'header incomplete in time' });
  });
});
