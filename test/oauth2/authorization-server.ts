// A real OAuth2 authorization server for the tests: oidc-provider on http://127.0.0.1:<free port>
// with the device flow (RFC 8628), authorization code + PKCE (RFC 7636), refresh-token rotation
// on every refresh, and token introspection (RFC 7662) for Dovecot's oauth2 passdb. In memory.
//
// What the tests steer:
// - approveDevice(userCode, accountId): what a user does on the verification page — done on the
//   server's own DeviceCode and Grant models (its HTML forms need a browser session to drive);
// - accessTtlSeconds: lifetime of the access tokens issued from now on (short: refresh at login);
// - revokeGrants(): the user revokes postern's access (every grant destroyed: refresh → invalid_grant);
// - counters of refresh-token grants and device polls, and every token issued (to scan for leaks);
// - a browser (Accept: text/html) gets a real sign-in-and-consent form at the interaction step, so
//   a Chromium test signs in and allows access the way a user does; fetch() (browse()) is answered at once.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

export interface AuthorizationServer {
  issuer: string;
  clientId: string;
  /** The key JWT access tokens are signed with (jwtAudience), as SPKI PEM. */
  publicKeyPem: string | null;
  /** Dovecot's credentials for introspection. */
  introspection: { url: string; clientId: string; clientSecret: string };
  accessTtlSeconds: number;
  /** refresh_token grants answered (successfully or not). */
  refreshGrants(): number;
  /** Every access and refresh token value issued so far. */
  issuedTokens(): string[];
  approveDevice(userCode: string, accountId: string): Promise<void>;
  /**
   * What a browser does with an authorization URL: follows the server's redirects (cookies kept),
   * signs in as `accountId` and consents at the interaction step, and finally requests the
   * client's redirect URI. Returns that last URL (what a user would paste).
   */
  browse(url: string, accountId: string): Promise<string>;
  revokeGrants(): Promise<void>;
  stop(): Promise<void>;
}

export interface AuthorizationServerOptions {
  /** More exact redirect URIs for the client (the account page's callback), beside loopback. */
  redirectUris?: string[];
  /**
   * Access tokens as JWTs (RFC 9068) for this resource (their `aud`), signed RS256 with a key of
   * the test's own whose public half is `publicKeyPem`: what a resource server such as HAProxy's
   * jwt_verify checks offline. Every grant then also holds the resource's scope `dav`.
   */
  jwtAudience?: string;
}

export async function startAuthorizationServer(options: AuthorizationServerOptions = {}): Promise<AuthorizationServer> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dovecotSecret = randomBytes(16).toString('hex');
  const state = { accessTtlSeconds: 3600 };
  const grantIds = new Set<string>();
  const issued: string[] = [];
  let refreshGrants = 0;
  const audience = options.jwtAudience;
  const keys = audience ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : null;
  const jwt = audience && keys ? {
    jwks: { keys: [{ ...keys.privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' }] },
  } : {};
  const resourceIndicators = audience ? {
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({ scope: 'dav', audience, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
    },
  } : {};
  /** What a user consents to: the OIDC scopes asked for and, with a JWT resource, its scope. */
  const consent = (grant: { addOIDCScope(s: string): void; addResourceScope(r: string, s: string): void }, scope: string) => {
    grant.addOIDCScope(scope);
    if (audience) grant.addResourceScope(audience, 'dav');
  };
  const provider = new Provider(issuer, {
    ...jwt,
    clients: [
      {
        client_id: 'postern', application_type: 'native', token_endpoint_auth_method: 'none',
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token', 'authorization_code'],
        response_types: ['code'], redirect_uris: ['http://127.0.0.1/', ...(options.redirectUris ?? [])],
      },
      { client_id: 'dovecot', client_secret: dovecotSecret, grant_types: [], response_types: [], redirect_uris: [] },
    ],
    features: {
      devInteractions: { enabled: false },
      deviceFlow: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      ...resourceIndicators,
    },
    scopes: ['openid', 'offline_access', 'mail', 'dav'],
    findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
    ttl: {
      AccessToken: () => state.accessTtlSeconds,
      RefreshToken: 24 * 3600, DeviceCode: 600, Grant: 24 * 3600, Interaction: 600, Session: 3600,
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    // Rotation on every use (RFC 9700 §4.14.2): the spent refresh token no longer works.
    rotateRefreshToken: () => true,
  });
  provider.on('grant.success', (ctx: { oidc: { params?: { grant_type?: string } } }) => {
    if (ctx.oidc.params?.grant_type === 'refresh_token') refreshGrants++;
  });
  provider.on('grant.error', (ctx: { oidc: { params?: { grant_type?: string } } }) => {
    if (ctx.oidc.params?.grant_type === 'refresh_token') refreshGrants++;
  });
  for (const model of ['access_token', 'refresh_token']) {
    provider.on(`${model}.saved`, (token: { jti: string }) => issued.push(token.jti));
    provider.on(`${model}.issued`, (token: { jti: string }) => issued.push(token.jti));
  }
  const callback = provider.callback();
  let signInAs = '';
  server.on('request', (req, res) => {
    if (req.url === '/token') captureTokens(res, issued);
    if (!req.url?.startsWith('/interaction/')) return void callback(req, res);
    // The sign-in and consent pages, answered at once for `signInAs`.
    void (async () => {
      const details = await provider.interactionDetails(req, res);
      let accountId = signInAs;
      if (req.headers.accept?.includes('text/html')) {
        if (req.method !== 'POST') return void sendInteractionForm(res, String(details.params.scope ?? ''));
        const login = new URLSearchParams(await readBody(req)).get('login') ?? '';
        if (!/^[a-z0-9._-]{1,64}$/i.test(login)) return void sendInteractionForm(res, String(details.params.scope ?? ''));
        accountId = login;
      }
      const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
      consent(grant, String(details.params.scope ?? ''));
      const grantId = await grant.save();
      grantIds.add(grantId);
      await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
    })().catch(() => res.writeHead(500).end());
  });
  return {
    issuer,
    clientId: 'postern',
    publicKeyPem: keys ? keys.publicKey.export({ format: 'pem', type: 'spki' }).toString() : null,
    introspection: { url: `${issuer}/token/introspection`, clientId: 'dovecot', clientSecret: dovecotSecret },
    get accessTtlSeconds() {
      return state.accessTtlSeconds;
    },
    set accessTtlSeconds(v: number) {
      state.accessTtlSeconds = v;
    },
    refreshGrants: () => refreshGrants,
    issuedTokens: () => [...new Set(issued)],
    async approveDevice(userCode, accountId) {
      const code = await provider.DeviceCode.findByUserCode(userCode.replace(/[^A-Z]/gi, '').toUpperCase());
      if (!code) throw new Error(`no pending device code ${userCode}`);
      const grant = new provider.Grant({ accountId, clientId: code.clientId });
      // What the user consents to on the confirmation page: the scopes the device asked for.
      const scope: string = code.params?.scope ?? '';
      consent(grant, scope);
      const grantId = await grant.save();
      grantIds.add(grantId);
      // What the device was granted for (oidc-provider leaves a defaulted resource in params only).
      Object.assign(code, { accountId, grantId, scope, authTime: Math.floor(Date.now() / 1000) }, audience ? { resource: audience } : {});
      await code.save();
    },
    async browse(url, accountId) {
      signInAs = accountId;
      const cookies = new Map<string, string>();
      let next = url;
      for (let hop = 0; hop < 20; hop++) {
        if (!next.startsWith(issuer)) {
          await fetch(next); // the client's loopback listener
          return next;
        }
        const res = await fetch(next, { redirect: 'manual', headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } });
        for (const c of res.headers.getSetCookie()) {
          const [pair] = c.split(';');
          const eq = pair!.indexOf('=');
          cookies.set(pair!.slice(0, eq), pair!.slice(eq + 1));
        }
        const location = res.headers.get('location');
        if (!location) throw new Error(`the authorization server answered ${res.status} without a redirect: ${await res.text()}`);
        next = new URL(location, next).href;
      }
      throw new Error('too many redirects');
    },
    async revokeGrants() {
      for (const id of grantIds) {
        const grant = await provider.Grant.find(id);
        await grant?.destroy();
      }
      grantIds.clear();
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The provider's sign-in and consent step as a browser sees it: one form, login and "Allow". */
function sendInteractionForm(res: import('node:http').ServerResponse, scope: string): void {
  const escaped = scope.replace(/[^a-z0-9 _:.-]/gi, '');
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html><title>Test provider</title>
<form method="post"><p>postern asks for: ${escaped}</p><label for="login">Login</label><input id="login" name="login">
<button type="submit" id="allow">Sign in and allow</button></form>`);
}

function readBody(req: import('node:http').IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/**
 * The token endpoint's answers, read as they leave: a JWT access token's value is not its `jti`
 * (what the model events give), and the value is what must never reach a log or the database.
 */
function captureTokens(res: import('node:http').ServerResponse, issued: string[]): void {
  const end = res.end.bind(res) as (...args: unknown[]) => import('node:http').ServerResponse;
  (res as { end: unknown }).end = (...args: unknown[]) => {
    const body = args[0];
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      try {
        const answer = JSON.parse(body.toString()) as { access_token?: unknown; refresh_token?: unknown };
        for (const t of [answer.access_token, answer.refresh_token]) if (typeof t === 'string') issued.push(t);
      } catch {
        // not JSON: nothing issued
      }
    }
    return end(...args);
  };
}
