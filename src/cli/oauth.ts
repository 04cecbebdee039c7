/**
 * The terminal side of authorising an account (`user add --oauth`, `user reauth`): which
 * configured provider, and how the flow talks to the admin. Everything goes to stderr (stdout
 * carries the command's result); the redirected URL, which carries an authorization code, is read
 * like a secret (hidden on a terminal, or the next line of stdin with --password-stdin).
 */
import type { ResolvedConfig } from '../config/load.js';
import { oauth2Clients, type OAuth2Client } from '../oauth2/index.js';
import { authorize } from '../oauth2/authorize.js';
import type { TokenSet } from '../oauth2/token-set.js';
import { refused, usage } from './errors.js';
import type { CliIo } from './io.js';
import type { SecretReader } from './secrets.js';

export interface OAuthFlowOptions {
  /** Paste the redirected URL instead of listening on loopback (headless server, browser elsewhere). */
  paste?: boolean;
  redirectPort?: string;
}

export function oauthClient(config: ResolvedConfig, provider: string): OAuth2Client {
  const client = oauth2Clients(config).get(provider);
  if (!client) {
    const known = Object.keys(config.oauth2?.providers ?? {});
    throw refused(`no OAuth2 provider "${provider}" in the config (oauth2.providers${known.length ? `: ${known.join(', ')}` : ' is empty'})`);
  }
  return client;
}

export async function runAuthorization(client: OAuth2Client, io: CliIo, reader: SecretReader, opts: OAuthFlowOptions): Promise<TokenSet> {
  const port = opts.redirectPort === undefined ? 0 : Number(opts.redirectPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw usage('--redirect-port must be a port number');
  const tokens = await authorize(client, {
    showDeviceCode: (device) => {
      io.stderr.write(`To authorise postern, open ${device.verificationUri} and enter the code ${device.userCode}\n`);
      if (device.verificationUriComplete) io.stderr.write(`(or open ${device.verificationUriComplete} directly)\n`);
      io.stderr.write(`waiting for the approval (the code is valid until ${new Date(device.expiresAt).toISOString()})...\n`);
    },
    redirected: async (start, caught) => {
      io.stderr.write(`To authorise postern, open this URL in a browser and sign in:\n\n${start.url}\n\n`);
      if (caught) {
        io.stderr.write(`waiting for the browser to come back to ${start.redirectUri} (browser on another machine? run again with --paste)...\n`);
        return caught;
      }
      io.stderr.write('The browser then fails to open a 127.0.0.1 page: copy the whole URL from its address bar and paste it here.\n');
      return reader.read({ name: 'redirected URL' });
    },
  }, { loopback: opts.paste ? false : { port } });
  io.stderr.write('authorised\n');
  return tokens;
}
