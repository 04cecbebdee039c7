/**
 * LOGIN/AUTHENTICATE after the client's credentials are parsed: runs the one sign-in sequence
 * (src/auth/sign-in.ts) with IMAP's upstream leg — take the early upstream connection (or a fresh
 * one) and log in on it. Returns either a relay-ready upstream or the one line to answer; sockets
 * and session state stay with the session.
 */
import type { Authenticator, UpstreamCredential } from '../auth/types.js';
import { countsAsFailure, signIn as runSignIn, type SignedIn, type UpstreamLeg } from '../auth/sign-in.js';
import type { Logger } from '../log.js';
import type { IdPairs, LoggedIn } from '../upstream/imap/client.js';
import { internalErrorReply, signInFailureReply } from './replies.js';
import type { UpstreamSlot } from './upstream-slot.js';

export type SignInResult =
  | SignedIn<LoggedIn, UpstreamCredential>
  /** `failure`: counts towards the per-connection limit of failed logins. */
  | { kind: 'refused'; line: string; failure: boolean };

export interface SignInRequest {
  tag: string;
  login: string;
  password: string;
  clientAddress: string;
  clientId: IdPairs | null;
}

export interface SignInDeps {
  auth: Authenticator;
  log: Logger;
  upstream: UpstreamSlot;
}

export async function signIn(deps: SignInDeps, request: SignInRequest): Promise<SignInResult> {
  let result;
  try {
    result = await runSignIn(deps, { login: request.login, password: request.password, protocol: 'imap', clientAddress: request.clientAddress }, imapLeg(deps, request));
  } catch (err) {
    deps.log.error({ event: 'internal.error', err }, 'authentication failed with an internal error');
    return { kind: 'refused', line: internalErrorReply(request.tag), failure: false };
  }
  if (result.kind === 'signed-in') return result;
  // The upstream connection was used up: a fresh early one for the client's next attempt.
  if (result.kind === 'upstream-rejected' || result.kind === 'upstream-refused' || result.kind === 'upstream-fault') deps.upstream.open();
  return { kind: 'refused', line: signInFailureReply(request.tag, result), failure: countsAsFailure(result) };
}

function imapLeg(deps: SignInDeps, request: SignInRequest): UpstreamLeg<LoggedIn> {
  return {
    protocol: 'imap',
    sendable: imapCanSend,
    login: async (credential) => {
      const upstream = await deps.upstream.take();
      return upstream.login({ credential, id: request.clientId, clientAddress: request.clientAddress });
    },
  };
}

/**
 * IMAP sends a password with LOGIN, a master login with AUTHENTICATE PLAIN (RFC 4616) and an
 * OAuth2 token with AUTHENTICATE OAUTHBEARER or XOAUTH2 (RFC 7628).
 */
function imapCanSend(credential: UpstreamCredential): credential is UpstreamCredential {
  switch (credential.kind) {
    case 'password':
    case 'master':
    case 'bearer':
      return true;
  }
}
