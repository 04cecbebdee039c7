// Invariants pinned here for the PROXY protocol parser: every valid v1 and v2 header, with any
// bytes after it, parses to its source and exact length, and every shorter prefix of it is
// `incomplete` (the gate feeds what has arrived so far, so this is the split at every byte);
// nothing after the header is ever consumed; LOCAL / UNKNOWN / UNSPEC carry no source; v2 TLVs
// are skipped but must be framed inside the declared length; anything else is refused, never
// thrown, and a stream that cannot become a header is refused from its first wrong byte.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseProxyHeader } from './proxy-protocol.js';

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function v2(opts: { command?: number; family?: number; transport?: number; address: Buffer; tlvs?: Buffer; declared?: number }): Buffer {
  const body = Buffer.concat([opts.address, opts.tlvs ?? Buffer.alloc(0)]);
  const head = Buffer.alloc(4);
  head[0] = 0x20 | (opts.command ?? 1);
  head[1] = ((opts.family ?? 1) << 4) | (opts.transport ?? 1);
  head.writeUInt16BE(opts.declared ?? body.length, 2);
  return Buffer.concat([SIGNATURE, head, body]);
}

function inet4(source: number[], sourcePort: number, destination = [10, 0, 0, 1], destinationPort = 993): Buffer {
  const b = Buffer.alloc(12);
  Buffer.from(source).copy(b, 0);
  Buffer.from(destination).copy(b, 4);
  b.writeUInt16BE(sourcePort, 8);
  b.writeUInt16BE(destinationPort, 10);
  return b;
}

function inet6(source: Buffer, sourcePort: number): Buffer {
  const b = Buffer.alloc(36);
  source.copy(b, 0);
  b.writeUInt16BE(sourcePort, 32);
  b.writeUInt16BE(443, 34);
  return b;
}

function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

/** Every prefix shorter than the header is incomplete; the whole, with `after`, parses to `expected`. */
function expectAtEveryByte(header: Buffer, after: Buffer, expected: unknown) {
  for (let n = 0; n < header.length; n++) expect(parseProxyHeader(header.subarray(0, n))).toEqual({ kind: 'incomplete' });
  expect(parseProxyHeader(Buffer.concat([header, after]))).toEqual(expected);
}

describe('PROXY v1', () => {
  it('parses TCP4 and TCP6 lines, leaving what follows', () => {
    const line = Buffer.from('PROXY TCP4 192.0.2.7 10.0.0.1 51234 993\r\n');
    expectAtEveryByte(line, Buffer.from('a1 CAPABILITY\r\n'), { kind: 'header', version: 1, length: line.length, source: { address: '192.0.2.7', port: 51234 } });
    const six = Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n');
    expectAtEveryByte(six, Buffer.alloc(0), { kind: 'header', version: 1, length: six.length, source: { address: '2001:db8::7', port: 1 } });
  });

  it('takes UNKNOWN (a health check) as no source, whatever follows on its line', () => {
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({ kind: 'header', version: 1, length: 15, source: null });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nX'))).toMatchObject({ kind: 'header', length: 35, source: null });
  });

  it('refuses wrong families, addresses, ports, spacing and case', () => {
    for (const line of [
      'PROXY TCP4 2001:db8::7 10.0.0.1 1 2', 'PROXY TCP6 192.0.2.7 2001:db8::1 1 2', 'PROXY TCP4 192.0.2.7 10.0.0.1 65536 2',
      'PROXY TCP4 192.0.2.7 10.0.0.1 01 2', 'PROXY TCP4 192.0.2.7  10.0.0.1 1 2', 'PROXY tcp4 192.0.2.7 10.0.0.1 1 2',
      'PROXY UDP4 192.0.2.7 10.0.0.1 1 2', 'PROXY TCP4 192.0.2.7 10.0.0.1 1', 'PROXY TCP4 192.0.2.7 10.0.0.1 1 2 3',
      'PROXY TCP4 192.0.2.777 10.0.0.1 1 2', 'PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n',
    ]) expect(parseProxyHeader(Buffer.from(`${line}\r\n`)), line).toMatchObject({ kind: 'refused' });
  });

  it('refuses a line that has no CRLF within 107 bytes instead of waiting for more', () => {
    const long = Buffer.from(`PROXY TCP6 ${'f'.repeat(120)}`);
    expect(parseProxyHeader(long.subarray(0, 106))).toEqual({ kind: 'incomplete' });
    expect(parseProxyHeader(long.subarray(0, 107))).toEqual({ kind: 'refused', reason: 'v1 header longer than 107 bytes' });
  });
});

describe('PROXY v2', () => {
  it('parses INET and INET6 with TLVs skipped, leaving what follows', () => {
    const header = v2({ address: inet4([198, 51, 100, 9], 40000), tlvs: Buffer.concat([tlv(0x01, Buffer.from('imap')), tlv(0x04, Buffer.alloc(0))]) });
    expectAtEveryByte(header, Buffer.from([0x16, 0x03, 0x01]), { kind: 'header', version: 2, length: header.length, source: { address: '198.51.100.9', port: 40000 } });
    const six = v2({ family: 2, address: inet6(Buffer.from('20010db8000000000000000000000007', 'hex'), 7) });
    expectAtEveryByte(six, Buffer.alloc(0), { kind: 'header', version: 2, length: six.length, source: { address: '2001:db8::7', port: 7 } });
  });

  it('takes LOCAL (the balancer\'s health check), UNSPEC and UNIX as no source', () => {
    const local = v2({ command: 0, family: 0, transport: 0, address: Buffer.alloc(0) });
    expect(parseProxyHeader(local)).toEqual({ kind: 'header', version: 2, length: 16, source: null });
    // LOCAL may still carry an address block; it is skipped, not used.
    expect(parseProxyHeader(v2({ command: 0, address: inet4([1, 2, 3, 4], 1) }))).toMatchObject({ kind: 'header', source: null, length: 28 });
    expect(parseProxyHeader(v2({ family: 3, address: Buffer.alloc(216) }))).toMatchObject({ kind: 'header', source: null, length: 232 });
  });

  it('refuses a wrong version or command, unknown families, datagrams, short blocks and broken TLVs', () => {
    const cases: Array<[string, Buffer]> = [
      ['version 1', Buffer.concat([SIGNATURE, Buffer.from([0x11, 0x11, 0, 12]), inet4([1, 2, 3, 4], 1)])],
      ['command 2', v2({ command: 2, address: inet4([1, 2, 3, 4], 1) })],
      ['family 4', v2({ family: 4, address: inet4([1, 2, 3, 4], 1) })],
      ['datagram', v2({ transport: 2, address: inet4([1, 2, 3, 4], 1) })],
      ['short INET6 block', v2({ family: 2, address: inet4([1, 2, 3, 4], 1) })],
      ['truncated TLV', v2({ address: inet4([1, 2, 3, 4], 1), tlvs: Buffer.from([0x01, 0x00]) })],
      ['TLV past the end', v2({ address: inet4([1, 2, 3, 4], 1), tlvs: Buffer.from([0x01, 0x00, 0x09, 0x61]) })],
    ];
    for (const [name, bytes] of cases) expect(parseProxyHeader(bytes), name).toMatchObject({ kind: 'refused' });
  });

  it('judges a wrong version from the 13th byte, without waiting for the rest', () => {
    expect(parseProxyHeader(Buffer.concat([SIGNATURE, Buffer.from([0x31])]))).toMatchObject({ kind: 'refused' });
  });
});

describe('no header', () => {
  it('refuses a protocol\'s first bytes (a client that reached the port directly) at once', () => {
    for (const start of ['a', 'a1 LOGIN x y\r\n', 'EHLO x\r\n', 'GET / HTTP/1.1\r\n', 'PROXX', '\r\n\r\n\x01']) {
      expect(parseProxyHeader(Buffer.from(start, 'latin1')), start).toEqual({ kind: 'refused', reason: 'no PROXY header' });
    }
    expect(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01, 0x02]))).toEqual({ kind: 'refused', reason: 'no PROXY header' });
  });
});

describe('properties', () => {
  const octet = fc.integer({ min: 0, max: 255 });
  const port = fc.integer({ min: 0, max: 65535 });
  const after = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));

  it('any v2 INET header with any TLVs parses to its source at its length, and not before', () => {
    fc.assert(fc.property(fc.array(octet, { minLength: 4, maxLength: 4 }), port,
      fc.array(fc.tuple(octet, fc.uint8Array({ maxLength: 40 })), { maxLength: 4 }), after,
      (address, sourcePort, tlvs, rest) => {
        const header = v2({ address: inet4(address, sourcePort), tlvs: Buffer.concat(tlvs.map(([t, v]) => tlv(t, Buffer.from(v)))) });
        expectAtEveryByte(header, rest, { kind: 'header', version: 2, length: header.length, source: { address: address.join('.'), port: sourcePort } });
      }));
  });

  it('any v1 TCP4 line parses to its source at its length, and not before', () => {
    fc.assert(fc.property(fc.array(octet, { minLength: 4, maxLength: 4 }), port, port, after, (address, sourcePort, destinationPort, rest) => {
      const line = Buffer.from(`PROXY TCP4 ${address.join('.')} 203.0.113.255 ${sourcePort} ${destinationPort}\r\n`);
      expectAtEveryByte(line, rest, { kind: 'header', version: 1, length: line.length, source: { address: address.join('.'), port: sourcePort } });
    }));
  });

  it('any bytes after the signature are parsed or refused, never thrown, never longer than given', () => {
    fc.assert(fc.property(fc.boolean(), fc.uint8Array({ maxLength: 300 }), (isV2, tail) => {
      const input = Buffer.concat([isV2 ? SIGNATURE : Buffer.from('PROXY '), Buffer.from(tail)]);
      const parsed = parseProxyHeader(input);
      if (parsed.kind === 'header') expect(parsed.length).toBeLessThanOrEqual(input.length);
    }));
  });
});
