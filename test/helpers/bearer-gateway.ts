/**
 * A real DAV server that takes OAuth2 Bearer tokens only (RFC 6750), as Google's CalDAV/CardDAV
 * does: Debian's HAProxy (2.6: the jwt_verify converter) in HTTP mode verifies each request's JWT
 * access token (RFC 9068) offline with the authorization server's public key — signature (RS256
 * only; `alg: none` or an HMAC made with the public key is refused), `exp` against the clock,
 * `aud` — and answers 401 with `WWW-Authenticate: Bearer error="invalid_token"` otherwise; a
 * valid token's `sub` goes to Radicale (auth type http_x_remote_user) as X-Remote-User, the
 * Authorization header and any X-Remote-User the client sent are dropped. Radicale listens on
 * loopback behind it and is reached only through it by the tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { once, stopChild } from './child.js';
import { freePort } from './free-port.js';
import { waitForPort } from './haproxy.js';
import { startRadicale, type RadicaleServer } from './radicale.js';
import { makeTempDir, removeTempDir } from './tmp.js';

export interface BearerGatewayOptions {
  /** The authorization server's signing key (SPKI PEM). */
  publicKeyPem: string;
  /** The `aud` an access token must carry. */
  audience: string;
  /** DAV users (their Radicale trees are created on first use). */
  users: string[];
}

export interface BearerGateway {
  /** Base URL with trailing slash, what postern's DAV upstream points to. */
  url: string;
  radicale: RadicaleServer;
  /** Requests HAProxy refused with 401 so far (read from its log). */
  refusals(): number;
  stop(): Promise<void>;
}

export async function startBearerGateway(options: BearerGatewayOptions): Promise<BearerGateway> {
  if (!/^[\x21-\x7e]+$/.test(options.audience) || options.audience.includes('"')) throw new Error('unsupported audience');
  const radicale = await startRadicale({ users: options.users.map((name) => ({ name, password: 'unused-behind-the-gateway' })), auth: 'remote-user' });
  const dir = await makeTempDir('postern-bearer-gateway-');
  const keyFile = path.join(dir, 'as-public.pem');
  writeFileSync(keyFile, options.publicKeyPem);
  const config = (port: number) => [
    'global',
    '  maxconn 256',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  log stderr format raw local0 info',
    'frontend dav',
    `  bind 127.0.0.1:${port}`,
    '  log global',
    '  log-format "gateway %ST %HM %HU"',
    '  http-request set-var(txn.alg) http_auth_bearer,jwt_header_query(\'$.alg\')',
    '  http-request set-var(txn.exp) http_auth_bearer,jwt_payload_query(\'$.exp\',int)',
    '  http-request set-var(txn.now) date',
    '  http-request set-var(txn.aud) http_auth_bearer,jwt_payload_query(\'$.aud\')',
    '  acl rs256 var(txn.alg) -m str RS256',
    `  acl signed http_auth_bearer,jwt_verify(txn.alg,"${keyFile}") -m int 1`,
    '  acl live var(txn.exp),sub(txn.now) gt 0',
    `  acl for_us var(txn.aud) -m str ${options.audience}`,
    '  http-request return status 401 content-type text/plain string "invalid token" hdr WWW-Authenticate "Bearer error=\\"invalid_token\\"" unless rs256 signed live for_us',
    '  http-request set-header X-Remote-User %[http_auth_bearer,jwt_payload_query(\'$.sub\')]',
    '  http-request del-header Authorization',
    '  default_backend radicale',
    'backend radicale',
    `  server radicale ${radicale.host}:${radicale.port}`,
    '',
  ].join('\n');
  // A port from freePort() may be taken by another test before HAProxy binds it: try another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    writeFileSync(path.join(dir, 'haproxy.cfg'), config(port));
    const child: ChildProcess = spawn('haproxy', ['-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const stop = once(async () => {
      await stopChild(child);
      await removeTempDir(dir);
      await radicale.stop();
    });
    try {
      await waitForPort(port, child, () => stderr);
    } catch (err) {
      if (attempt < 3 && stderr.includes('Address already in use')) {
        await stopChild(child);
        continue;
      }
      await stop();
      throw err;
    }
    return {
      url: `http://127.0.0.1:${port}/`,
      radicale,
      refusals: () => stderr.split('\n').filter((l) => l.startsWith('gateway 401 ')).length,
      stop,
    };
  }
}
