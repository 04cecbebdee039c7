/**
 * Client addresses: the one form every listener, connection limiter, throttle, log line and
 * history row sees (clientAddressOf), which networks are trusted (exempt from throttling, from
 * config `auth.trustedNetworks`), and which key an address is counted under. Before this was one
 * function, DAV's limiter and authenticator could see two forms of one dual-stack client.
 *
 * IPv4-mapped IPv6 (`::ffff:192.0.2.1`, what a dual-stack listener reports) counts as the IPv4
 * address, or one client could be counted twice. Native IPv6 is counted per /64: one subscriber
 * line gets a whole /64 (RFC 6177), so per-address counting would let one attacker rotate through
 * 2^64 fresh addresses. Anything that is not an IP (it should not happen) is used as it is.
 *
 * Behind a load balancer speaking the PROXY protocol (src/net/proxy-gate.ts) the client's address
 * is the one the header carried, recorded against the accepted TCP socket; clientAddressOf finds
 * it from any socket layered on that one (the TLS socket of implicit TLS, STARTTLS, https), so no
 * protocol has to know whether a balancer is in front.
 */
import { BlockList, isIP, isIPv6 } from 'node:net';
import { badNetworkMessage, parseNetwork } from '../config/networks.js';
import { PosternError } from '../errors.js';

const V4_MAPPED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/**
 * A connected client's address as all of postern names it: a socket's, an http request's socket's
 * or smtp-server's session's `remoteAddress`, plain (below). A socket already torn down has none.
 */
export function clientAddressOf(peer: { readonly remoteAddress?: string | undefined }): string {
  return plainAddress(carriedAddressOf(peer) ?? peer.remoteAddress ?? 'unknown');
}

const carried = new WeakMap<object, string>();

/** The PROXY gate's one write: `socket`'s client is `address`, whatever the socket says. */
export function recordCarriedAddress(socket: object, address: string): void {
  carried.set(socket, address);
}

/**
 * A TLS socket built on an accepted socket keeps it as `_parent` (node's tls.TLSSocket, stable
 * since Node 0.11; pinned by src/net/proxy-gate.test.ts): the one place postern reads it. A few
 * steps at most: TLS in TLS does not happen, the bound only guards against a cycle.
 */
function carriedAddressOf(peer: object): string | undefined {
  let layer: object | undefined = peer;
  for (let depth = 0; layer && depth < 4; depth++) {
    const found = carried.get(layer);
    if (found !== undefined) return found;
    layer = (layer as { _parent?: object })._parent;
  }
  return undefined;
}

/** The address without IPv4 mapping or an IPv6 zone id. */
export function plainAddress(address: string): string {
  const noZone = address.replace(/%.*$/, '');
  const mapped = V4_MAPPED.exec(noZone);
  return mapped ? mapped[1]! : noZone;
}

/** The key failures are counted under: the IPv4 address, or the IPv6 /64 prefix. */
export function throttleKey(address: string): string {
  // Without ':' or '%' it is IPv4 (neither mapped nor zoned): as it is, with no regex (every login asks).
  if (!address.includes(':') && !address.includes('%')) return address;
  const plain = plainAddress(address);
  if (!isIPv6(plain)) return plain;
  return `${expandIPv6(plain).slice(0, 4).join(':')}::/64`;
}

function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  // A trailing dotted quad (::1.2.3.4) is two hextets.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = text.slice(0, quad.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...fill, ...right].map((h) => h.replace(/^0+(?=.)/, ''));
}

export interface TrustedNetworks {
  has(address: string): boolean;
}

/**
 * Parses `auth.trustedNetworks` (CIDRs or single addresses). The config schema has refused a wrong
 * entry already; this check stays for callers that build a throttle without the loader: a typo
 * must not silently leave a monitoring host throttled, or worse, trust too much.
 */
export function parseTrustedNetworks(entries: readonly string[]): TrustedNetworks {
  // The usual case, and on every login's path twice: BlockList.check builds a SocketAddress per call.
  if (entries.length === 0) return { has: () => false };
  const list = new BlockList();
  entries.forEach((entry, i) => {
    const subnet = parseNetwork(entry);
    if (!subnet) throw new PosternError('CONFIG_INVALID', `auth.trustedNetworks.${i}: ${badNetworkMessage(entry)}`);
    list.addSubnet(subnet.address, subnet.prefix, subnet.family);
  });
  return {
    has(address) {
      const plain = plainAddress(address);
      const family = isIP(plain);
      return family !== 0 && list.check(plain, family === 6 ? 'ipv6' : 'ipv4');
    },
  };
}
