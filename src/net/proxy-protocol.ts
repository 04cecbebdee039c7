/**
 * The PROXY protocol header (HAProxy's spec, versions 1 and 2,
 * https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt): how a TCP load balancer tells the
 * server behind it the client's address. Sans-I/O: bytes in, one of incomplete / refused / header
 * out; src/net/proxy-gate.ts owns the socket, the timer and the policy of who may send one.
 *
 * Hand-written because the npm parsers are unmaintained (proxy-protocol-js, proxy-protocol-v2:
 * no release in years, no v2 TLV bounds checks); the grammar is small and every limit is here:
 * v1 is one line of at most 107 bytes (spec §2.1); v2 is a 16-byte prefix and a declared length
 * (§2.2), so a header is never read beyond what it declares and nothing after it is consumed.
 * A header that is not exactly the grammar is refused: a balancer never sends one, so it is an
 * attack or a misconfiguration, and guessing would put a wrong address into history and throttle.
 */
import { isIPv4, isIPv6, SocketAddress } from 'node:net';

/** The client endpoint a header carries; null for LOCAL (health checks) and UNKNOWN/UNSPEC. */
export interface ProxiedSource {
  address: string;
  port: number;
}

export type ProxyParse =
  | { kind: 'incomplete' }
  | { kind: 'refused'; reason: string }
  | { kind: 'header'; version: 1 | 2; length: number; source: ProxiedSource | null };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Spec §2.1: "a 108-byte buffer is always enough" (107 plus a NUL). */
const V1_MAX_BYTES = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED_BYTES = 16;

const INCOMPLETE: ProxyParse = { kind: 'incomplete' };
const refused = (reason: string): ProxyParse => ({ kind: 'refused', reason });

/** Parses the header at the start of `input` (everything received so far). */
export function parseProxyHeader(input: Uint8Array): ProxyParse {
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (startsLike(bytes, V2_SIGNATURE)) return bytes.length < V2_SIGNATURE.length ? INCOMPLETE : parseV2(bytes);
  if (startsLike(bytes, V1_PREFIX)) return bytes.length < V1_PREFIX.length ? INCOMPLETE : parseV1(bytes);
  return refused('no PROXY header');
}

/** True when `bytes` (perhaps shorter) agrees with `prefix` as far as both go. */
function startsLike(bytes: Buffer, prefix: Buffer): boolean {
  const n = Math.min(bytes.length, prefix.length);
  return bytes.subarray(0, n).equals(prefix.subarray(0, n));
}

const V1_LINE = /^PROXY (TCP4|TCP6) (\S+) (\S+) (\d{1,5}) (\d{1,5})$/;
const V1_PORT = /^(?:0|[1-9]\d{0,4})$/;

function parseV1(bytes: Buffer): ProxyParse {
  const end = bytes.subarray(0, V1_MAX_BYTES).indexOf('\r\n', 0, 'latin1');
  if (end < 0) return bytes.length >= V1_MAX_BYTES ? refused('v1 header longer than 107 bytes') : INCOMPLETE;
  const line = bytes.toString('latin1', 0, end);
  const length = end + 2;
  // §2.1: UNKNOWN is for a balancer that cannot tell (e.g. its own health check); the rest of
  // the line is to be ignored and the socket's own address used.
  if (line === 'PROXY UNKNOWN' || line.startsWith('PROXY UNKNOWN ')) return { kind: 'header', version: 1, length, source: null };
  const fields = V1_LINE.exec(line);
  if (!fields) return refused('malformed v1 header');
  const [, family, source, destination, sourcePort, destinationPort] = fields as unknown as [string, string, string, string, string, string];
  const isFamily = family === 'TCP4' ? isIPv4 : isIPv6;
  if (!isFamily(source) || !isFamily(destination)) return refused(`v1 ${family} header with an address that is not ${family === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  if (!validPort(sourcePort) || !validPort(destinationPort)) return refused('v1 header with an invalid port');
  return { kind: 'header', version: 1, length, source: { address: source, port: Number(sourcePort) } };
}

function validPort(text: string): boolean {
  return V1_PORT.test(text) && Number(text) <= 65535;
}

/** §2.2: address block sizes of AF_INET, AF_INET6 and AF_UNIX (source, destination, ports). */
const V2_ADDRESS_BYTES: Record<number, number> = { 0x1: 12, 0x2: 36, 0x3: 216 };

function parseV2(bytes: Buffer): ProxyParse {
  if (bytes.length < V2_FIXED_BYTES) {
    // Judge what has come already, so a wrong version does not wait for the timeout.
    if (bytes.length > 12 && bytes[12]! >> 4 !== 2) return refused('v2 header with an unknown version');
    return INCOMPLETE;
  }
  const versionCommand = bytes[12]!;
  if (versionCommand >> 4 !== 2) return refused('v2 header with an unknown version');
  const command = versionCommand & 0x0f;
  if (command > 1) return refused('v2 header with an unknown command');
  const family = bytes[13]! >> 4;
  const transport = bytes[13]! & 0x0f;
  const declared = bytes.readUInt16BE(14);
  const length = V2_FIXED_BYTES + declared;
  if (family > 3 || transport > 2) return refused('v2 header with an unknown address family or transport');
  const addressBytes = V2_ADDRESS_BYTES[family] ?? 0;
  if (declared < addressBytes) return refused('v2 header shorter than its address block');
  if (bytes.length < length) return INCOMPLETE;
  const tlvs = checkTlvs(bytes.subarray(V2_FIXED_BYTES + addressBytes, length));
  if (tlvs) return refused(tlvs);
  // §2.2: LOCAL is the balancer's own connection (health check): use the socket's address, and
  // so does a PROXY header for UNSPEC or a UNIX socket: nothing an IP throttle could count.
  if (command === 0 || (family !== 0x1 && family !== 0x2)) return { kind: 'header', version: 2, length, source: null };
  if (transport !== 0x1) return refused('v2 header for a datagram connection on a stream listener');
  const body = bytes.subarray(V2_FIXED_BYTES);
  const source = family === 0x1 ? ipv4(body.subarray(0, 4)) : ipv6(body.subarray(0, 16));
  const port = body.readUInt16BE(family === 0x1 ? 8 : 32);
  return { kind: 'header', version: 2, length, source: { address: source, port } };
}

/**
 * TLVs (§2.2.1) are not used (no ALPN, authority, SSL or unique-id decision hangs on them) but
 * their framing is checked: each type-length-value must end inside the declared length.
 */
function checkTlvs(block: Buffer): string | null {
  let at = 0;
  while (at < block.length) {
    if (block.length - at < 3) return 'v2 header with a truncated TLV';
    const valueBytes = block.readUInt16BE(at + 1);
    at += 3 + valueBytes;
    if (at > block.length) return 'v2 header with a TLV running past its end';
  }
  return null;
}

function ipv4(bytes: Buffer): string {
  return [...bytes].join('.');
}

/** Canonical text (RFC 5952, as node writes addresses: `2001:db8::1`, `::ffff:192.0.2.1`). */
function ipv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}
