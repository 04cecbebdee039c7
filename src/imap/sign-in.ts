/**
 * LOGIN/AUTHENTICATE after the client's credentials are parsed: ask the Authenticator, then log
 * in upstream with the account's real credentials. Returns either a relay-ready upstream or the
 * one line to answer; sockets and session state stay with the session. Reports upstream
 * acceptance/refusal of the stored credentials to the Authenticator (which flags the account).
 */
import type { AcceptedAuth, Authenticator } from '../auth/types.js';
import { isPosternError } from '../errors.js';
import type { Logger } from '../log.js';
import type { IdPairs, LoggedIn } from '../upstream/imap/client.js';
import { internalErrorReply, refusalReply, upstreamFaultReply } from './replies.js';
import type { UpstreamSlot } from './upstream-slot.js';

export type SignInResult =
  | { kind: 'signed-in'; accepted: AcceptedAuth; upstream: LoggedIn }
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
  const { tag } = request;
  let outcome;
  try {
    outcome = await deps.auth.authenticate({ login: request.login, password: request.password, protocol: 'imap', clientAddress: request.clientAddress });
  } catch (err) {
    deps.log.error({ event: 'imap.internal_error', err }, 'authentication failed with an internal error');
    return { kind: 'refused', line: internalErrorReply(tag), failure: false };
  }
  if (outcome.kind !== 'accepted') {
    return { kind: 'refused', line: refusalReply(tag, outcome), failure: outcome.kind !== 'credential-unusable' };
  }
  return loginUpstream(deps, request, outcome);
}

async function loginUpstream(deps: SignInDeps, request: SignInRequest, accepted: AcceptedAuth): Promise<SignInResult> {
  try {
    const upstream = await deps.upstream.take();
    const loggedIn = await upstream.login({ credential: accepted.credential, id: request.clientId, clientAddress: request.clientAddress });
    deps.auth.reportUpstreamAccepted(accepted);
    return { kind: 'signed-in', accepted, upstream: loggedIn };
  } catch (err) {
    if (isPosternError(err, 'UPSTREAM_AUTH_REJECTED')) {
      deps.auth.reportUpstreamRejected(accepted, 'imap');
    } else {
      const code = isPosternError(err) ? err.code : 'INTERNAL';
      deps.log.error({ event: 'upstream.fault', code, user: accepted.login, detail: err instanceof Error ? err.message : String(err) }, 'could not log in to the upstream IMAP server');
    }
    deps.upstream.open(); // a fresh early connection for the client's next attempt
    return { kind: 'refused', line: upstreamFaultReply(request.tag, err), failure: false };
  }
}
