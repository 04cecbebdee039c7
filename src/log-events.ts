/**
 * The catalogue of log events: every `event` field postern writes is a key of LOG_EVENTS, and the
 * Logger type (log.ts) accepts no other, so a misspelt event is a compile error rather than an
 * alert or fail2ban rule that silently never fires. One name per moment, whichever protocol it
 * happens in (the protocol is in the `protocol` binding); the README's "Log events" table is
 * checked against this list by log-events.test.ts.
 *
 * Renaming an event breaks people's alerts: do it only to merge two names for one moment, and say
 * so in the README. `auth.refused`, `auth.primary_refused` and `auth.blocked` are what the shipped
 * fail2ban filter (config/fail2ban) matches and must never change.
 */

export type LogLevelName = 'debug' | 'info' | 'warn' | 'error';

export interface LogEventInfo {
  level: LogLevelName;
  /** When it is written (one line, for the README table). */
  when: string;
  /** Fields beyond the bindings every line carries (`protocol`, `listener`, `conn`/`cid`, `ip`). */
  fields: readonly string[];
}

export const LOG_EVENTS = {
  'postern.started': { level: 'info', when: '`serve` has opened every listener (in every worker)', fields: ['listeners', 'workers'] },
  'postern.stopping': { level: 'info', when: 'a stop signal arrived; listeners and sessions are closing', fields: [] },
  'postern.draining': { level: 'info', when: 'drain: readiness is false and listeners stopped accepting; sessions end after the grace period', fields: ['graceMs'] },
  'postern.stopped': { level: 'info', when: 'everything is closed; the process exits', fields: [] },
  'postern.forced_stop': { level: 'warn', when: 'a second stop signal: exiting without waiting', fields: [] },
  'worker.exited': { level: 'error', when: 'a worker process died while serving; a new one is started after `restartInMs`', fields: ['worker', 'code', 'signal', 'restartInMs'] },
  'worker.replaced': { level: 'info', when: 'the new worker in place of one that died is serving', fields: ['worker', 'pid'] },
  'worker.start_failed': { level: 'error', when: 'the worker replacing a dead one could not start; tried again later', fields: ['worker', 'reason'] },
  'listener.started': { level: 'info', when: 'a listener is bound', fields: ['listener', 'host', 'port'] },
  'listener.error': { level: 'error', when: 'a bound listener reported an error', fields: ['listener', 'err'] },
  'proxy.accepted': { level: 'debug', when: 'a PROXY protocol header from a configured load balancer was accepted', fields: ['listener', 'peer', 'ip', 'version'] },
  'proxy.refused': { level: 'warn', when: 'a connection to a PROXY protocol listener was cut: not from a configured load balancer, no or malformed header, or too slow', fields: ['listener', 'peer', 'reason'] },
  'net.descriptor_budget': { level: 'warn', when: 'at start: the connection caps need more file descriptors (2 per session) than the process may open (info: the limit cannot be read here)', fields: ['needed', 'limit'] },
  'net.descriptors_exhausted': { level: 'error', when: 'out of file descriptors at accept or upstream connect; at most once a minute, with the count since', fields: ['stage', 'code', 'count', 'limit'] },
  'tls.handshake_failed': { level: 'debug', when: 'a client\'s TLS handshake failed (scanners, wrong port, old TLS)', fields: ['listener', 'code'] },
  'tls.reloaded': { level: 'info', when: 'SIGHUP: certificate and key reloaded', fields: [] },
  'tls.reload_failed': { level: 'error', when: 'SIGHUP: the new certificate or key is unusable; the old one stays', fields: ['code', 'reason'] },
  'connection.limit': { level: 'warn', when: 'a connection was refused by the connection caps (at most once per 10 s per listener)', fields: ['ip', 'limit'] },
  'client.socket_error': { level: 'debug', when: 'a client connection failed (reset, broken pipe)', fields: ['code', 'err'] },
  'internal.error': { level: 'error', when: 'a bug or unexpected failure inside postern; the client got a temporary error', fields: ['err', 'hook'] },
  'auth.ok': { level: 'debug', when: 'an app-specific password was verified (every DAV request, every mail login); the login\'s info line is `session.started`', fields: ['protocol', 'ip', 'user', 'passwordId'] },
  'auth.refused': { level: 'warn', when: 'a login was refused: wrong or unknown password, unknown user, revoked, expired, out of scope, throttled', fields: ['protocol', 'ip', 'user', 'reason'] },
  'auth.primary_refused': { level: 'warn', when: 'a client sent the account\'s primary password', fields: ['protocol', 'ip', 'user', 'reason'] },
  'auth.blocked': { level: 'warn', when: 'an address (IPv6: its /64) is blocked after too many failed logins', fields: ['ip', 'failures', 'blockMs'] },
  'auth.malformed': { level: 'info', when: 'a DAV Authorization header could not be parsed', fields: ['ip', 'reason'] },
  'auth.unseal_failed': { level: 'error', when: 'a stored upstream credential could not be decrypted (wrong key file?)', fields: ['user', 'passwordId', 'code'] },
  'auth.primary_check_unavailable': { level: 'warn', when: 'the primary-password check could not run; answered as a wrong password', fields: ['err'] },
  'auth.shared_throttle_unavailable': { level: 'warn', when: 'the throttle counts shared through the database could not be read; this process\'s own counts still apply', fields: ['err'] },
  'auth.revocation_poll_failed': { level: 'warn', when: 'the revocation watcher could not read the database (at most once a minute); it retries at the next poll, live sessions continue', fields: ['code', 'err'] },
  'auth.store_unavailable': { level: 'warn', when: 'a login could not read the database (at most once a minute): the client gets a temporary failure, never a wrong password; live sessions continue', fields: ['err'] },
  'session.started': { level: 'info', when: 'a login was accepted upstream: the one info line per login (DAV: the first request per connection and password; not SMTP\'s reconnects)', fields: ['protocol', 'ip', 'user', 'passwordId'] },
  'session.revoked': { level: 'info', when: 'the session\'s app-specific password was revoked or expired; the session ends', fields: ['user', 'passwordId', 'reason'] },
  'session.closed': { level: 'info', when: 'an IMAP connection ended', fields: ['why', 'relayed', 'bytesIn', 'bytesOut', 'ms'] },
  'upstream.plaintext': { level: 'warn', when: 'at start: an upstream is configured without TLS', fields: ['protocol', 'upstream'] },
  'upstream.unverified': { level: 'warn', when: 'at start: an upstream\'s certificate is not verified', fields: ['protocol', 'upstream'] },
  'upstream.fault': { level: 'warn', when: 'the upstream could not be reached or failed mid-session', fields: ['protocol', 'stage', 'code', 'user', 'err'] },
  'upstream.login_refused': { level: 'warn', when: 'the upstream refused a login for a reason other than the credentials (LIMIT, INUSE, 454, 429…), relayed to the client; info when it is temporary; the account is not flagged', fields: ['protocol', 'stage', 'user', 'code', 'text', 'temporary'] },
  'upstream.credentials_rejected': { level: 'error', when: 'the upstream refused the account\'s stored credentials; the account is flagged', fields: ['protocol', 'user'] },
  'upstream.mode_unsupported': { level: 'error', when: 'the account\'s upstream login kind cannot be used by this protocol', fields: ['protocol', 'user', 'mode'] },
  'upstream.lost': { level: 'warn', when: 'the IMAP upstream closed a relayed session without BYE', fields: ['code'] },
  'upstream.preconnect_failed': { level: 'debug', when: 'an early IMAP upstream connection failed; retried at login', fields: ['code'] },
  'upstream.stream_aborted': { level: 'debug', when: 'a DAV upstream response ended early', fields: ['code'] },
  'imap.output_backpressure': { level: 'debug', when: 'an IMAP client stopped reading; input paused', fields: [] },
  'smtp.data_aborted': { level: 'info', when: 'the client stream ended before the message was complete', fields: ['err'] },
  'smtp.message_oversized': { level: 'info', when: 'a message went over the size limit; the upstream transaction was aborted', fields: ['bytes'] },
  'smtp.message_relayed': { level: 'info', when: 'the upstream accepted a message', fields: ['code', 'bytes'] },
  'smtp.message_refused': { level: 'info', when: 'the upstream refused a message', fields: ['code', 'bytes'] },
  'dav.request': { level: 'debug', when: 'a DAV request was answered', fields: ['method', 'status', 'ms'] },
  'dav.target_refused': { level: 'info', when: 'a request target or Destination is not a plain path on this server (400)', fields: ['reason', 'method', 'target', 'ip'] },
  'dav.scope_refused': { level: 'info', when: 'the app password lacks the scope for the collection (401)', fields: ['user', 'passwordId', 'method'] },
  'dav.pipeline_limit': { level: 'info', when: 'too many pipelined requests on one connection; it is closed', fields: ['ip'] },
  'dav.client_error': { level: 'debug', when: 'malformed HTTP from a client (400/408/431)', fields: ['code'] },
  'dav.host_followed': { level: 'info', when: 'a DAV upstream handed out a sibling host its `follow` patterns allow (iCloud); postern now follows it', fields: ['upstream', 'host', 'mount'] },
  'dav.client_aborted': { level: 'debug', when: 'the client closed the connection mid-request', fields: [] },
  'store.status_failed': { level: 'warn', when: 'the upstream status of an account could not be read', fields: ['err'] },
  'store.write_dropped': { level: 'warn', when: 'queued writes (history, last use) were dropped', fields: ['dropped', 'droppedTotal', 'kind', 'reason', 'err'] },
  'store.writes_waiting': { level: 'warn', when: 'the database is locked by another process; writes wait', fields: ['queued', 'code', 'err'] },
  'store.writes_resumed': { level: 'info', when: 'the waiting writes went through', fields: ['waitedMs', 'queued'] },
  'store.change_feed_lost': { level: 'warn', when: 'PostgreSQL: the connection that listens for revocations from other instances failed (once per outage); it reconnects, revocations are polled meanwhile', fields: ['code', 'reason'] },
  'store.change_feed_restored': { level: 'info', when: 'PostgreSQL: the revocation listener is connected again after `downMs`; every watched password is re-read', fields: ['downMs'] },
  'history.pruned': { level: 'info', when: 'history older than `history.keepDays` was deleted', fields: ['deleted', 'keepDays'] },
  'history.prune_failed': { level: 'warn', when: 'the history could not be pruned; retried later', fields: ['err'] },
  'throttle.prune_failed': { level: 'warn', when: 'throttle counts older than the window could not be deleted; retried later', fields: ['err'] },
  'password.expired': { level: 'info', when: 'app-specific passwords reached their expiry', fields: ['count'] },
  'password.expiry_sweep_failed': { level: 'warn', when: 'expired passwords could not be recorded; retried later', fields: ['err'] },
  'upstream.grant_rejected': { level: 'error', when: 'the OAuth2 provider refused the account\'s grant (invalid_grant: revoked, expired, password changed); the account is flagged until `postern user reauth`', fields: ['protocol', 'user', 'provider'] },
  'oauth2.refreshed': { level: 'info', when: 'an account\'s access token was refreshed at login (once for concurrent logins) and its tokens sealed again; `stored` false when another process wrote a newer grant first', fields: ['user', 'provider', 'rotated', 'stored'] },
  'oauth2.refresh_failed': { level: 'warn', when: 'the OAuth2 provider could not be asked for a fresh access token; the login got a temporary failure', fields: ['protocol', 'user', 'provider', 'code', 'err'] },
  'oauth2.reseal_failed': { level: 'error', when: 'refreshed OAuth2 tokens could not be stored (database locked too long); a rotated refresh token may be lost', fields: ['user', 'code'] },
  'portal.signed_in': { level: 'info', when: 'a user completed both steps of the account page\'s sign-in (password failures are `auth.refused`, protocol `portal`)', fields: ['ip', 'user', 'via'] },
  'portal.csrf_refused': { level: 'info', when: 'a form was posted to the account page without a valid CSRF token (403)', fields: ['ip', 'path'] },
  'portal.primary_changed': { level: 'info', when: 'an account flagged REJECTED signed in with a new password the provider accepted: primary password changed, app-specific passwords revoked', fields: ['user', 'revoked'] },
  'portal.code_refused': { level: 'warn', when: 'a wrong or replayed second-factor code on the account page; the session ends after 5', fields: ['ip', 'user', 'failures'] },
  'portal.self_enrolled': { level: 'info', when: 'a login postern did not know, in `portal.enrol.domains`, that the provider accepted became an account on the account page (it must set up two-factor authentication next)', fields: ['user'] },
  'portal.connected': { level: 'info', when: 'an account in mode oauth2 was connected again on the account page (authorization code + PKCE): the new grant is sealed, the REJECTED flag cleared', fields: ['ip', 'user', 'provider'] },
  'portal.connect_refused': { level: 'info', when: 'a "Connect your account" callback was refused (`reason`: no_session, state_mismatch — forged, replayed or expired —, provider_error, exchange_failed, provider_unreachable)', fields: ['ip', 'user', 'reason', 'code'] },
  'portal.profile_downloaded': { level: 'info', when: 'the one-time Apple profile of a new app-specific password was downloaded (`signed` false: the certificate key is not RSA)', fields: ['ip', 'user', 'password', 'signed'] },
  'portal.profile_refused': { level: 'info', when: 'a one-time profile download was refused (410): `reason` gone (used or unknown), expired, or revoked', fields: ['ip', 'reason'] },
  'profile.prune_failed': { level: 'warn', when: 'expired one-time profile downloads could not be deleted; retried later', fields: ['err'] },
  'portal.box_sweep_failed': { level: 'warn', when: "stale account-page session boxes (recent-auth password, pending Connect) could not be cleared; retried later", fields: ['err'] },
} as const satisfies Record<string, LogEventInfo>;

export type LogEvent = keyof typeof LOG_EVENTS;
