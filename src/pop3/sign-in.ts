/**
 * PASS/AUTH after the client's credentials are parsed: runs the one sign-in sequence
 * (src/auth/sign-in.ts) with POP3's upstream leg — connect and log in upstream with the account's
 * credential. Returns either a relay-ready upstream or the one line to answer; sockets and session
 * state stay with the session.
 */
import { countsAsFailure, signIn as runSignIn, type SignedIn, type UpstreamLeg } from '../auth/sign-in.js';
import type { Authenticator, PlainCredential, UpstreamCredential } from '../auth/types.js';
import type { Logger } from '../log.js';
import type { Pop3LoggedIn } from '../upstream/pop3/client.js';
import { reply, signInFailureReply } from './replies.js';

export type SignInResult =
  | SignedIn<Pop3LoggedIn, PlainCredential>
  /** `failure`: counts towards the per-connection limit of failed logins. */
  | { kind: 'refused'; line: string; failure: boolean };

export interface SignInRequest {
  login: string;
  password: string;
  clientAddress: string;
}

export interface SignInDeps {
  auth: Authenticator;
  log: Logger;
  loginUpstream(credential: PlainCredential): Promise<Pop3LoggedIn>;
  /** True once the client has gone: a failure then is not an upstream fault. */
  cancelled(): boolean;
}

export async function signIn(deps: SignInDeps, request: SignInRequest): Promise<SignInResult> {
  let result;
  try {
    result = await runSignIn(deps, { login: request.login, password: request.password, protocol: 'pop3', clientAddress: request.clientAddress }, pop3Leg(deps));
  } catch (err) {
    deps.log.error({ event: 'internal.error', err }, 'authentication failed with an internal error');
    return { kind: 'refused', line: reply.internal(), failure: false };
  }
  if (result.kind === 'signed-in') return result;
  return { kind: 'refused', line: signInFailureReply(result), failure: countsAsFailure(result) };
}

function pop3Leg(deps: SignInDeps): UpstreamLeg<Pop3LoggedIn, PlainCredential> {
  return { protocol: 'pop3', sendable: pop3CanSend, login: (credential) => deps.loginUpstream(credential), cancelled: () => deps.cancelled() };
}

/**
 * POP3 sends a password with USER/PASS or AUTH PLAIN, a master login with AUTH PLAIN (RFC 5034).
 * Not an OAuth2 token: neither Microsoft nor Google is configured with POP3 here, and XOAUTH2 over
 * POP3 is left for when someone needs it (the account gets `upstream.mode_unsupported`).
 */
function pop3CanSend(credential: UpstreamCredential): credential is PlainCredential {
  switch (credential.kind) {
    case 'password':
    case 'master':
      return true;
    case 'bearer':
      return false;
  }
}
