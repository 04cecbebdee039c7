/**
 * The admin's allow-list of sibling hosts an upstream may hand out at discovery (`follow`, e.g.
 * `*.icloud.com`): iCloud answers on `caldav.icloud.com` with a principal on `p42-caldav.icloud.com`.
 *
 * A pattern is `host[:port]`. `*` stands for one or more characters of ONE DNS label
 * (`[a-z0-9-]+`), never a dot, so `*.icloud.com` matches `p42-caldav.icloud.com` but not
 * `icloud.com.evil.example` nor `a.b.icloud.com`; a bare `*` or a pattern of wildcards only is
 * refused (it would allow any host). Without a port only the scheme's default port matches;
 * `:*` allows any port (test rigs on loopback), `:8443` that one. Hosts compare in lowercase, as
 * WHATWG URL serialises them; IP literals match literally (`127.0.0.*` is allowed, for tests).
 */
import { PosternError } from '../errors.js';

export interface HostPattern {
  /** As the admin wrote it, for messages. */
  text: string;
  matches(origin: string): boolean;
}

const PATTERN = /^(?<host>[a-z0-9*.-]{1,253}|\[[0-9a-f:.*]{2,45}\])(?::(?<port>\*|\d{1,5}))?$/i;

export function parseHostPattern(text: string, where: string): HostPattern {
  const parts = PATTERN.exec(text)?.groups;
  if (!parts) throw new PosternError('CONFIG_INVALID', `${where}: "${text}" is not a host pattern (host[:port], * for one label)`);
  const host = parts.host!.toLowerCase();
  const labels = host.split('.');
  if (labels.some((label) => label === '') || labels.every((label) => /^\**$/.test(label))) {
    throw new PosternError('CONFIG_INVALID', `${where}: "${text}" would allow any host; name the provider's domain (e.g. *.icloud.com)`);
  }
  const hostRegExp = new RegExp(`^${host.split('*').map(escape).join('[a-z0-9-]+')}$`);
  const port = parts.port;
  return {
    text,
    matches(origin) {
      let url: URL;
      try {
        url = new URL(origin);
      } catch {
        return false;
      }
      if (!hostRegExp.test(url.hostname)) return false;
      if (port === '*') return true;
      return port === undefined ? url.port === '' : url.port === String(Number(port));
    },
  };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
