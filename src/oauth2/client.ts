/**
 * The client side of OAuth2 for one configured provider, on oauth4webapi (a spec-conformant
 * client: response validation, PKCE, state, RFC 9207 `iss` checks are its job, not ours). Three
 * uses: the device authorization grant (RFC 8628) and authorization code + PKCE (RFC 7636, loopback
 * or pasted redirect per RFC 8252) when an account is authorised, and the refresh grant (RFC 6749
 * §6) at login. Errors become PosternError: `OAUTH2_GRANT_REJECTED` for invalid_grant (the one
 * answer that means a human must authorise again), `OAUTH2_FAILED` for everything else. No error
 * message, log field or `cause` carries a token or a provider's response body.
 */
import * as oauth from 'oauth4webapi';
import { PosternError } from '../errors.js';
import type { OAuth2Flow, OAuth2Provider } from './providers.js';
import type { TokenSet } from './token-set.js';

export interface DeviceAuthorization {
  userCode: string;
  verificationUri: string;
  verificationUriComplete: string | null;
  /** Milliseconds since the epoch after which the code is void. */
  expiresAt: number;
  /** Internal: what polling sends. */
  readonly deviceCode: string;
  intervalMs: number;
}

export interface PkceStart {
  /** Open this in a browser. */
  url: string;
  readonly redirectUri: string;
  readonly state: string;
  readonly verifier: string;
}

export interface ClientOptions {
  timeoutMs: number;
  clock?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Error codes a provider may put in its answer that are safe to name in a message. */
const SAFE_ERROR_CODE = /^[a-z_]{1,64}$/;

export class OAuth2Client {
  private server: Promise<oauth.AuthorizationServer> | null = null;
  private readonly client: oauth.Client;
  private readonly auth: oauth.ClientAuth;
  private readonly clock: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(readonly provider: OAuth2Provider, private readonly options: ClientOptions) {
    this.client = { client_id: provider.clientId };
    this.auth = provider.clientSecret ? oauth.ClientSecretBasic(provider.clientSecret) : oauth.None();
    this.clock = options.clock ?? Date.now;
    this.sleep = options.sleep ?? abortableSleep;
  }

  /** The flow `user add --oauth` runs: the configured one, else device when the server has a device endpoint. */
  async flow(): Promise<OAuth2Flow> {
    if (this.provider.flow) return this.provider.flow;
    return (await this.authorizationServer()).device_authorization_endpoint ? 'device' : 'pkce';
  }

  async startDevice(): Promise<DeviceAuthorization> {
    return this.guard('device authorization', async () => {
      const as = await this.authorizationServer();
      const response = await oauth.deviceAuthorizationRequest(as, this.client, this.auth, { scope: this.provider.scopes.join(' ') }, this.requestOptions());
      const answer = await oauth.processDeviceAuthorizationResponse(as, this.client, response);
      return {
        userCode: answer.user_code, verificationUri: answer.verification_uri,
        verificationUriComplete: answer.verification_uri_complete ?? null,
        expiresAt: this.clock() + answer.expires_in * 1000, deviceCode: answer.device_code,
        intervalMs: (answer.interval ?? 5) * 1000,
      };
    });
  }

  /** Polls until the user approved (RFC 8628 §3.4-3.5: authorization_pending, slow_down), denied, or the code expired. */
  async pollDevice(device: DeviceAuthorization, signal?: AbortSignal): Promise<TokenSet> {
    let interval = device.intervalMs;
    for (;;) {
      if (this.clock() >= device.expiresAt) throw new PosternError('OAUTH2_FAILED', 'the device code expired before it was approved');
      await this.sleep(interval, signal);
      try {
        return await this.guard('device code grant', async () => {
          const as = await this.authorizationServer();
          const response = await oauth.deviceCodeGrantRequest(as, this.client, this.auth, device.deviceCode, this.requestOptions());
          return this.tokenSet(await oauth.processDeviceCodeResponse(as, this.client, response), null);
        }, (err) => err.error === 'authorization_pending' || err.error === 'slow_down');
      } catch (err) {
        if (!(err instanceof oauth.ResponseBodyError)) throw err;
        if (err.error === 'slow_down') interval += 5000;
      }
    }
  }

  /**
   * Whether code + PKCE is possible at all (the provider has an authorization endpoint): the
   * account page's "Connect your account" needs it, whatever flow the CLI uses.
   */
  async offersRedirect(): Promise<boolean> {
    return this.guard('discovery', async () => Boolean((await this.authorizationServer()).authorization_endpoint));
  }

  /** The authorization URL for code + PKCE (S256) with a fresh state; `redirectUri` is the loopback listener's or the account page's callback. */
  async startPkce(redirectUri: string): Promise<PkceStart> {
    return this.guard('authorization request', async () => {
      const as = await this.authorizationServer();
      if (!as.authorization_endpoint) throw new PosternError('OAUTH2_FAILED', `provider ${this.provider.name} has no authorization endpoint`);
      const verifier = oauth.generateRandomCodeVerifier();
      const state = oauth.generateRandomState();
      const url = new URL(as.authorization_endpoint);
      const params = {
        ...this.provider.authorizationParams,
        client_id: this.provider.clientId, response_type: 'code', redirect_uri: redirectUri,
        scope: this.provider.scopes.join(' '), state,
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
      };
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
      return { url: url.href, redirectUri, state, verifier };
    });
  }

  /** Completes code + PKCE with the URL the browser was redirected to (pasted, or caught on loopback). */
  async finishPkce(start: PkceStart, redirectedTo: string): Promise<TokenSet> {
    let callback: URL;
    try {
      callback = new URL(redirectedTo.trim());
    } catch {
      throw new PosternError('INPUT_INVALID', 'that is not the URL the browser was sent to (copy it whole from the address bar)');
    }
    return this.guard('authorization code grant', async () => {
      const as = await this.authorizationServer();
      const params = oauth.validateAuthResponse(as, this.client, callback, start.state);
      const response = await oauth.authorizationCodeGrantRequest(as, this.client, this.auth, params, start.redirectUri, start.verifier, this.requestOptions());
      return this.tokenSet(await oauth.processAuthorizationCodeResponse(as, this.client, response), null);
    });
  }

  /** RFC 6749 §6; a provider that rotates refresh tokens sends a new one, else the old one stays. */
  async refresh(refreshToken: string): Promise<TokenSet> {
    return this.guard('refresh', async () => {
      const as = await this.authorizationServer();
      const response = await oauth.refreshTokenGrantRequest(as, this.client, this.auth, refreshToken, this.requestOptions());
      return this.tokenSet(await oauth.processRefreshTokenResponse(as, this.client, response), refreshToken);
    });
  }

  private tokenSet(answer: oauth.TokenEndpointResponse, previousRefresh: string | null): TokenSet {
    if (answer.token_type !== 'bearer') throw new PosternError('OAUTH2_FAILED', `the provider issued a token of type ${SAFE_ERROR_CODE.test(answer.token_type) ? answer.token_type : '(unprintable)'}, not bearer`);
    const refreshToken = answer.refresh_token ?? previousRefresh;
    if (!refreshToken) {
      throw new PosternError('OAUTH2_FAILED', 'the provider issued no refresh token (Microsoft: add offline_access; Google: the preset asks for offline access; generic: check the scopes)');
    }
    return { refreshToken, accessToken: answer.access_token, expiresAt: answer.expires_in === undefined ? null : this.clock() + answer.expires_in * 1000 };
  }

  private authorizationServer(): Promise<oauth.AuthorizationServer> {
    this.server ??= this.loadServer().catch((err: unknown) => {
      this.server = null; // a failed discovery is retried by the next caller
      throw err;
    });
    return this.server;
  }

  private async loadServer(): Promise<oauth.AuthorizationServer> {
    const p = this.provider;
    if (p.issuer && !p.tokenEndpoint) {
      const issuer = new URL(p.issuer);
      const response = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...this.requestOptions() });
      return oauth.processDiscoveryResponse(issuer, response);
    }
    const tokenEndpoint = p.tokenEndpoint!;
    return {
      issuer: p.issuer ?? new URL(tokenEndpoint).origin,
      token_endpoint: tokenEndpoint,
      ...(p.authorizationEndpoint ? { authorization_endpoint: p.authorizationEndpoint } : {}),
      ...(p.deviceAuthorizationEndpoint ? { device_authorization_endpoint: p.deviceAuthorizationEndpoint } : {}),
    };
  }

  private requestOptions(): { signal: AbortSignal; [oauth.allowInsecureRequests]?: boolean } {
    return { signal: AbortSignal.timeout(this.options.timeoutMs), ...(this.provider.allowInsecureHttp ? { [oauth.allowInsecureRequests]: true } : {}) };
  }

  /**
   * Runs one exchange and maps what it throws. `passThrough` lets the device poll see the answers
   * that mean "ask again" as they are.
   */
  private async guard<T>(what: string, fn: () => Promise<T>, passThrough?: (err: oauth.ResponseBodyError) => boolean): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof PosternError) throw err;
      if (err instanceof oauth.ResponseBodyError) {
        if (passThrough?.(err)) throw err;
        const code = SAFE_ERROR_CODE.test(err.error) ? err.error : '(unprintable error code)';
        if (err.error === 'invalid_grant') throw new PosternError('OAUTH2_GRANT_REJECTED', `${what} at ${this.provider.name}: the provider answered invalid_grant`);
        throw new PosternError('OAUTH2_FAILED', `${what} at ${this.provider.name}: the provider answered ${code} (HTTP ${err.status})`);
      }
      if (err instanceof oauth.AuthorizationResponseError) {
        const code = SAFE_ERROR_CODE.test(err.error) ? err.error : '(unprintable error code)';
        throw new PosternError('OAUTH2_FAILED', `authorization at ${this.provider.name} ended with ${code}`);
      }
      const name = err instanceof Error ? (err.name === 'TimeoutError' ? 'timed out' : `${err.name}${'code' in err && typeof err.code === 'string' ? ` ${err.code}` : ''}`) : 'unknown error';
      // Only the name and code: oauth4webapi's messages and causes may quote a response body.
      throw new PosternError('OAUTH2_FAILED', `${what} at ${this.provider.name} failed: ${name}`);
    }
  }
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new PosternError('OAUTH2_FAILED', 'authorisation cancelled'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new PosternError('OAUTH2_FAILED', 'authorisation cancelled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
