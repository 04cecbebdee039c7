// Shared set-up for the upstream-OAuth2 tests: a real authorization server (oidc-provider), a real
// Dovecot whose oauth2 passdb validates access tokens by introspection (RFC 7662) for IMAP and
// submission, and a postern in front of it with an account in upstream mode `oauth2`.
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { startDovecot, type DovecotServer } from '../helpers/dovecot.js';
import { startInProcess, type CliResult } from '../helpers/cli.js';
import { startPostern, type PosternHarness } from '../helpers/postern.js';
import type { AuthorizationServer } from './authorization-server.js';

export const UPSTREAM_USER = 'alice';
export const LOGIN = 'alice@example.test';
export const PRIMARY = 'Alice-primary-passw0rd-for-oauth';

/**
 * Dovecot with XOAUTH2 and OAUTHBEARER, and an oauth2 passdb that asks the authorization server
 * whether a token is active and whose `sub` it is (the upstream user). Dovecot reaches the
 * server over http on loopback, which is enough for a test.
 */
export async function startOAuthDovecot(as: AuthorizationServer): Promise<DovecotServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'postern-dovecot-oauth2-'));
  await chmod(dir, 0o755);
  const ext = path.join(dir, 'oauth2.conf.ext');
  const url = new URL(as.introspection.url);
  url.username = as.introspection.clientId;
  url.password = as.introspection.clientSecret;
  await writeFile(ext, [
    'introspection_mode = post',
    `introspection_url = ${url.href}`,
    'force_introspection = yes',
    'username_attribute = sub',
    'active_attribute = active',
    'active_value = true',
    '',
  ].join('\n'), { mode: 0o644 });
  return startDovecot({
    // alice's own password is never used: postern only ever sends her tokens.
    users: [{ name: UPSTREAM_USER, password: 'unused-upstream-password-of-alice' }],
    extraConfig: `auth_mechanisms = plain login xoauth2 oauthbearer
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = ${ext}
}
`,
  });
}

/**
 * `dovecot` null: no mail listeners (a DAV-only postern). `extra`: more top-level config for the
 * proxy (the account page's `portal`, `dav`), not for the CLI.
 */
export async function startOAuthPostern(as: AuthorizationServer, dovecot: DovecotServer | null, oauth2: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<PosternHarness & { configPath: string }> {
  const oauth2Config = {
    providers: {
      test: { preset: 'generic', issuer: as.issuer, clientId: as.clientId, scopes: ['openid', 'offline_access', 'mail'], allowInsecureHttp: true },
      // The same server, authorised by code + PKCE instead of the device flow it also offers.
      'test-pkce': { preset: 'generic', issuer: as.issuer, clientId: as.clientId, scopes: ['openid', 'offline_access', 'mail'], flow: 'pkce', allowInsecureHttp: true },
    },
    ...oauth2,
  };
  const postern = await startPostern({
    config: {
      oauth2: oauth2Config,
      ...(dovecot ? mailListeners(dovecot) : {}),
      ...extra,
    },
    secrets: [PRIMARY],
  });
  // The same database and key for the CLI, as an admin's `postern -c` would have them.
  const configPath = path.join(postern.dir, 'postern.yaml');
  await writeFile(configPath, stringify({
    database: postern.database, keyFile: postern.keyFile,
    tls: { cert: path.join(postern.dir, 'postern.crt'), key: path.join(postern.dir, 'postern-key.pem') },
    oauth2: oauth2Config,
  }));
  return Object.assign(postern, { configPath });
}

/**
 * Runs a CLI command that authorises by the device flow and approves the code the way a user
 * would: reads the code the command printed, approves it at the authorization server.
 */
export async function authoriseByDevice(postern: { configPath: string }, as: AuthorizationServer, args: string[], input: string): Promise<CliResult> {
  const run = startInProcess(['-c', postern.configPath, ...args], { input });
  let code: string | undefined;
  for (let i = 0; i < 200 && !code; i++) {
    code = /enter the code (\S+)/.exec(run.stderr())?.[1];
    if (!code) await new Promise((r) => setTimeout(r, 50));
  }
  if (!code) throw new Error(`no user code printed; stderr: ${run.stderr()}`);
  await as.approveDevice(code, UPSTREAM_USER);
  return run.done;
}

function mailListeners(dovecot: DovecotServer): Record<string, unknown> {
  return {
    imap: {
      implicitTls: { port: 0 },
      upstream: { host: dovecot.host, port: dovecot.imapsPort, security: 'tls', caFile: dovecot.caFile, connectTimeoutMs: 3000, greetingTimeoutMs: 3000 },
    },
    smtp: {
      implicitTls: { port: 0 },
      upstream: { host: dovecot.host, port: dovecot.submissionsPort, security: 'tls', caFile: dovecot.caFile },
    },
  };
}
