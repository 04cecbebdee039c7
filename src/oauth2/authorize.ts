/**
 * Authorising an account: the service function the CLI (`user add --oauth`, `user reauth`) calls
 * and the account page's "Connect your account" can call later, with its own UI callbacks. It
 * runs the provider's flow and returns the token set; sealing it is AccountService's job
 * (addOAuth2Account, replaceOAuth2Grant).
 *
 * - Device grant (RFC 8628): show the code and URL, poll until approved.
 * - Code + PKCE (RFC 7636) with a loopback redirect (RFC 8252 §7.3: http://127.0.0.1:<port>/, any
 *   port): on a desktop the browser lands on our listener; on a headless server the browser's
 *   redirect fails and the user pastes the URL from its address bar instead. Either way the state
 *   and the code verifier bind the answer to this request.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PosternError } from '../errors.js';
import type { DeviceAuthorization, OAuth2Client, PkceStart } from './client.js';
import type { TokenSet } from './token-set.js';

export interface AuthorizeUi {
  /** Device flow: tell the user where to go and which code to enter. */
  showDeviceCode(device: Pick<DeviceAuthorization, 'userCode' | 'verificationUri' | 'verificationUriComplete' | 'expiresAt'>): void;
  /**
   * PKCE: show `start.url`; resolve with the URL the browser was redirected to. `caught` resolves
   * when the loopback listener got it (null when none listens): a UI may offer pasting meanwhile.
   */
  redirected(start: Pick<PkceStart, 'url' | 'redirectUri'>, caught: Promise<string> | null): Promise<string>;
}

export interface AuthorizeOptions {
  signal?: AbortSignal;
  /** Listen for the redirect on 127.0.0.1 (port 0: any). False: the redirect is pasted back. */
  loopback?: { port: number } | false;
}

export async function authorize(client: OAuth2Client, ui: AuthorizeUi, options: AuthorizeOptions = {}): Promise<TokenSet> {
  if ((await client.flow()) === 'device') {
    const device = await client.startDevice();
    ui.showDeviceCode(device);
    return client.pollDevice(device, options.signal);
  }
  const listener = options.loopback === false ? null : await listenForRedirect(options.loopback?.port ?? 0);
  try {
    // Without a listener the URI still names loopback: the browser's failed redirect shows the URL to paste.
    const start = await client.startPkce(listener?.redirectUri ?? 'http://127.0.0.1/');
    return await client.finishPkce(start, await ui.redirected(start, listener?.caught ?? null));
  } finally {
    listener?.close();
  }
}

interface RedirectListener {
  redirectUri: string;
  caught: Promise<string>;
  close(): void;
}

/** One-shot loopback listener: the first request carrying `code` or `error` is the answer. */
async function listenForRedirect(port: number): Promise<RedirectListener> {
  let deliver!: (url: string) => void;
  const caught = new Promise<string>((resolve) => (deliver = resolve));
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    if (!url.searchParams.has('code') && !url.searchParams.has('error')) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end('postern received the answer; you can close this window.\n');
    deliver(url.href);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new PosternError('OAUTH2_FAILED', `cannot listen for the redirect on 127.0.0.1:${port}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)));
    server.listen(port, '127.0.0.1', () => resolve());
  });
  server.on('error', () => undefined);
  const bound = (server.address() as AddressInfo).port;
  return { redirectUri: `http://127.0.0.1:${bound}/`, caught, close: () => {
    server.close();
    server.closeAllConnections();
  } };
}
