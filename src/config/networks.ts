/**
 * The grammar of a network in the config (`auth.trustedNetworks`): a CIDR or a single address.
 * It lives beside the schema so every command validates it when the config is loaded, not only
 * `serve` (an admin command must not accept a typo the proxy will refuse). The throttle parses
 * the same entries with the same function (src/auth/client-address.ts), so the two cannot drift.
 */
import { isIP } from 'node:net';

export interface Subnet {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** The subnet an entry names, or null when it is not an IP address or CIDR. */
export function parseNetwork(entry: string): Subnet | null {
  const [address = '', bits, extra] = entry.trim().split('/');
  const version = isIP(address);
  if (version === 0 || extra !== undefined) return null;
  const max = version === 6 ? 128 : 32;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return null;
  return { address, prefix, family: version === 6 ? 'ipv6' : 'ipv4' };
}

/** Why an entry was refused; the loader puts its key path (auth.trustedNetworks.N) in front. */
export function badNetworkMessage(entry: string): string {
  return `"${entry}" is not an IP address or CIDR (e.g. 192.0.2.0/24, 2001:db8::/32)`;
}
