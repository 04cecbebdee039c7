/**
 * The sign-in sequence every protocol runs (sign-in.ts), against an in-memory Authenticator.
 * Pins: a refusal never reaches the upstream; a credential the protocol cannot send is refused
 * before anything is sent; every upstream acceptance and every refusal of the stored credentials
 * is reported, with the same events in every protocol; a fault is logged, never reported; a
 * client that went away is not a fault, but a refusal is still reported; the revocation watch
 * logs `session.revoked` and unsubscribes; no password or credential reaches a log line.
 */
import { Writable } from 'node:stream';
import type pino from 'pino';
import { describe, expect, it } from 'vitest';
import { PosternError } from '../errors.js';
import { createLogger } from '../log.js';
import type { Protocol } from '../store/types.js';
import { authenticate, countsAsFailure, logInUpstream, signIn, type SignInFailure, type UpstreamLeg } from './sign-in.js';
import type { AcceptedAuth, AuthOutcome, Authenticator, MasterCredential, PasswordCredential, RevocationListener, UpstreamCredential } from './types.js';

const PASSWORD_CREDENTIAL: PasswordCredential = { kind: 'password', username: 'erin@upstream', password: 'real-upstream-Secret-1' };
const MASTER_CREDENTIAL: MasterCredential = { kind: 'master', username: 'master', password: 'master-Secret-2', authzid: 'erin@upstream' };
const APP_PASSWORD = 'abcd-efgh-ijkl-mnop';

function accepted(credential: UpstreamCredential): AcceptedAuth {
  return { kind: 'accepted', accountId: 7, login: 'erin', passwordId: 42, publicId: 'pw-42', credential, scopes: ['imap', 'smtp', 'caldav'] };
}

function rig(outcome: AuthOutcome) {
  const reports: Array<{ what: 'accepted' | 'rejected'; protocol?: Protocol }> = [];
  const watchers = new Map<number, RevocationListener>();
  const auth: Authenticator = {
    authenticate: () => Promise.resolve(outcome),
    reportUpstreamAccepted: () => void reports.push({ what: 'accepted' }),
    reportUpstreamRejected: (_accepted, protocol) => void reports.push({ what: 'rejected', protocol }),
    watchRevocation: (passwordId, listener) => {
      watchers.set(passwordId, listener);
      return () => watchers.delete(passwordId);
    },
  };
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => done(void lines.push(...chunk.toString('utf8').split('\n').filter(Boolean))) });
  const log = createLogger({ level: 'debug', destination: sink as unknown as pino.DestinationStream });
  const events = (name?: string) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => name === undefined || e.event === name);
  return { deps: { auth, log }, reports, watchers, lines, events };
}

const attempt = (protocol: Protocol) => ({ login: 'erin', password: APP_PASSWORD, protocol, clientAddress: '192.0.2.7' });

/** An upstream leg that records what it was given and does what it is told. */
function leg<C extends UpstreamCredential = UpstreamCredential>(
  protocol: Protocol,
  behaviour: () => Promise<string>,
  options: { sendable?: (c: UpstreamCredential) => c is C; cancelled?: () => boolean } = {},
) {
  const sent: UpstreamCredential[] = [];
  const value: UpstreamLeg<string, C> = {
    protocol,
    sendable: options.sendable ?? ((_c: UpstreamCredential): _c is C => true),
    login: (credential) => {
      sent.push(credential);
      return behaviour();
    },
    ...(options.cancelled ? { cancelled: options.cancelled } : {}),
  };
  return { leg: value, sent };
}

const passwordOnly = (c: UpstreamCredential): c is PasswordCredential => c.kind === 'password';

describe('sign-in: refusals', () => {
  it.each(['failed', 'throttled'] as const)('a %s authentication never reaches the upstream and counts as a failure', async (kind) => {
    const r = rig({ kind });
    const { leg: l, sent } = leg('imap', () => Promise.resolve('upstream'));
    const result = await signIn(r.deps, attempt('imap'), l);
    expect(result).toEqual({ kind: 'refused', outcome: { kind } });
    expect(sent).toEqual([]);
    expect(r.reports).toEqual([]);
    expect(countsAsFailure(result as SignInFailure)).toBe(true);
  });

  it('a credential postern cannot unseal is refused but is not the client\'s failure', async () => {
    const r = rig({ kind: 'credential-unusable' });
    const result = await signIn(r.deps, attempt('smtp'), leg('smtp', () => Promise.resolve('x')).leg);
    expect(result.kind).toBe('refused');
    expect(countsAsFailure(result as SignInFailure)).toBe(false);
  });

  it('a master login a protocol cannot send is refused before anything goes upstream, and logged once', async () => {
    const r = rig(accepted(MASTER_CREDENTIAL));
    const { leg: l, sent } = leg('caldav', () => Promise.resolve('response'), { sendable: passwordOnly });
    const result = await signIn(r.deps, attempt('caldav'), l);
    expect(result.kind).toBe('unsupported');
    expect(sent).toEqual([]);
    expect(r.reports).toEqual([]);
    expect(r.events('upstream.mode_unsupported')).toMatchObject([{ protocol: 'caldav', user: 'erin', mode: 'master' }]);
    expect(countsAsFailure(result as SignInFailure)).toBe(false);
  });
});

describe('sign-in: one policy for every protocol', () => {
  it.each(['imap', 'smtp', 'caldav', 'carddav'] as const)('%s: signed in → the credential went upstream, acceptance reported, session.started logged', async (protocol) => {
    const r = rig(accepted(PASSWORD_CREDENTIAL));
    const { leg: l, sent } = leg(protocol, () => Promise.resolve('upstream-connection'));
    const result = await signIn(r.deps, attempt(protocol), l);
    expect(result).toMatchObject({ kind: 'signed-in', upstream: 'upstream-connection', credential: PASSWORD_CREDENTIAL });
    expect(sent).toEqual([PASSWORD_CREDENTIAL]);
    expect(r.reports).toEqual([{ what: 'accepted' }]);
    expect(r.events('session.started')).toMatchObject([{ protocol, user: 'erin', passwordId: 'pw-42' }]);
    expect(r.events('upstream.fault')).toEqual([]);
  });

  it('a login upstream that is not a new client login (announce → false) is reported but not logged as session.started', async () => {
    const r = rig(accepted(PASSWORD_CREDENTIAL));
    const { leg: l } = leg('caldav', () => Promise.resolve('upstream-connection'));
    const result = await signIn(r.deps, attempt('caldav'), { ...l, announce: () => false });
    expect(result.kind).toBe('signed-in');
    expect(r.reports).toEqual([{ what: 'accepted' }]);
    expect(r.events('session.started')).toEqual([]);
  });

  it.each(['imap', 'smtp', 'caldav'] as const)('%s: the upstream refusing the stored credentials is reported once, under that protocol', async (protocol) => {
    const r = rig(accepted(PASSWORD_CREDENTIAL));
    const result = await signIn(r.deps, attempt(protocol), leg(protocol, () => Promise.reject(new PosternError('UPSTREAM_AUTH_REJECTED'))).leg);
    expect(result.kind).toBe('upstream-rejected');
    expect(r.reports).toEqual([{ what: 'rejected', protocol }]);
    expect(r.events('upstream.fault')).toEqual([]);
    expect(r.events('session.started')).toEqual([]);
    expect(countsAsFailure(result as SignInFailure)).toBe(false);
  });

  it('an upstream fault is logged with its code and stage, never reported as a verdict on the credentials', async () => {
    const r = rig(accepted(PASSWORD_CREDENTIAL));
    const result = await signIn(r.deps, attempt('imap'), leg('imap', () => Promise.reject(new PosternError('UPSTREAM_TIMEOUT'))).leg);
    expect(result).toMatchObject({ kind: 'upstream-fault', code: 'UPSTREAM_TIMEOUT' });
    expect(r.reports).toEqual([]);
    expect(r.events('upstream.fault')).toMatchObject([{ stage: 'connect', protocol: 'imap', code: 'UPSTREAM_TIMEOUT', user: 'erin' }]);
  });

  it('a bug in the upstream leg is a fault without a code, not a crash', async () => {
    const r = rig(accepted(PASSWORD_CREDENTIAL));
    const result = await signIn(r.deps, attempt('smtp'), leg('smtp', () => Promise.reject(new TypeError('oops'))).leg);
    expect(result).toMatchObject({ kind: 'upstream-fault', code: undefined });
  });

  it('a client that went away is not an upstream fault; a refusal meanwhile is still reported', async () => {
    const r = rig(accepted(PASSWORD_CREDENTIAL));
    const gone = () => true;
    const aborted = await signIn(r.deps, attempt('caldav'), leg('caldav', () => Promise.reject(new PosternError('UPSTREAM_UNAVAILABLE')), { cancelled: gone }).leg);
    expect(aborted.kind).toBe('cancelled');
    expect(r.events('upstream.fault')).toEqual([]);
    const refused = await signIn(r.deps, attempt('caldav'), leg('caldav', () => Promise.reject(new PosternError('UPSTREAM_AUTH_REJECTED')), { cancelled: gone }).leg);
    expect(refused.kind).toBe('upstream-rejected');
    expect(r.reports).toEqual([{ what: 'rejected', protocol: 'caldav' }]);
  });

  it('logging in again with an admitted credential reports again (a refusal then a good login clears the flag)', async () => {
    const r = rig(accepted(PASSWORD_CREDENTIAL));
    const admission = await authenticate(r.deps, attempt('smtp'), passwordOnly);
    if (admission.kind !== 'admitted') throw new Error(`expected admitted, got ${admission.kind}`);
    expect(admission.credential).toEqual(PASSWORD_CREDENTIAL);
    await logInUpstream(r.deps, admission, { protocol: 'smtp', login: () => Promise.reject(new PosternError('UPSTREAM_AUTH_REJECTED')) });
    await logInUpstream(r.deps, admission, { protocol: 'smtp', login: () => Promise.resolve('again') });
    expect(r.reports).toEqual([{ what: 'rejected', protocol: 'smtp' }, { what: 'accepted' }]);
  });

  it('a long session whose OAuth2 access token expired meanwhile gets a temporary failure, and the account is not flagged', async () => {
    const bearer = { kind: 'bearer' as const, username: 'erin@upstream', token: 'access-token-1', expiresAt: Date.now() - 1 };
    const r = rig(accepted(bearer));
    const admission = await authenticate(r.deps, attempt('smtp'), (_c): _c is UpstreamCredential => true);
    if (admission.kind !== 'admitted') throw new Error(`expected admitted, got ${admission.kind}`);
    const again = leg('smtp', () => Promise.reject(new PosternError('UPSTREAM_AUTH_REJECTED')));
    const result = await logInUpstream(r.deps, admission, again.leg);
    expect(result).toMatchObject({ kind: 'upstream-fault', code: 'OAUTH2_FAILED' });
    expect(again.sent).toEqual([]);
    expect(r.reports).toEqual([]);
    expect(r.lines.join('\n')).not.toContain('access-token-1');
  });
});

describe('sign-in: revocation watch', () => {
  it('subscribes to the password, logs session.revoked when it fires, and unsubscribes', async () => {
    const r = rig(accepted(PASSWORD_CREDENTIAL));
    const result = await signIn(r.deps, attempt('imap'), leg('imap', () => Promise.resolve('up')).leg);
    if (result.kind !== 'signed-in') throw new Error(`expected signed-in, got ${result.kind}`);
    const fired: string[] = [];
    const unwatch = result.watch((reason) => fired.push(reason));
    r.watchers.get(42)!('admin');
    expect(fired).toEqual(['admin']);
    expect(r.events('session.revoked')).toMatchObject([{ user: 'erin', passwordId: 'pw-42', reason: 'admin' }]);
    unwatch();
    expect(r.watchers.size).toBe(0);
  });
});

describe('sign-in: secrets', () => {
  it('no password, app password or credential reaches a log line, whatever the outcome', async () => {
    const r = rig(accepted(MASTER_CREDENTIAL));
    await signIn(r.deps, attempt('caldav'), leg('caldav', () => Promise.resolve('x'), { sendable: passwordOnly }).leg);
    const r2 = rig(accepted(PASSWORD_CREDENTIAL));
    await signIn(r2.deps, attempt('imap'), leg('imap', () => Promise.reject(new PosternError('UPSTREAM_TLS_FAILED'))).leg);
    await signIn(r2.deps, attempt('imap'), leg('imap', () => Promise.reject(new PosternError('UPSTREAM_AUTH_REJECTED'))).leg);
    await signIn(r2.deps, attempt('imap'), leg('imap', () => Promise.resolve('x')).leg);
    const text = [...r.lines, ...r2.lines].join('\n');
    expect(r.lines.length + r2.lines.length).toBeGreaterThan(2);
    for (const secret of [APP_PASSWORD, PASSWORD_CREDENTIAL.password, MASTER_CREDENTIAL.password]) expect(text).not.toContain(secret);
  });
});

describe('a database that cannot be read', () => {
  it('is a temporary refusal on every protocol, logged once, never a wrong password and never a failure count', async () => {
    const { deps, events } = rig({ kind: 'failed' });
    deps.auth.authenticate = () => Promise.reject(new PosternError('STORE_UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:5432'));
    const upstream = leg('imap', () => Promise.resolve('never'));
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await signIn(deps, attempt('imap'), upstream.leg));
    for (const r of results) expect(r).toEqual({ kind: 'refused', outcome: { kind: 'store-unavailable' } });
    expect(upstream.sent).toEqual([]);
    expect(countsAsFailure(results[0] as SignInFailure)).toBe(false);
    expect(events('auth.store_unavailable')).toHaveLength(1);
  });

  it('any other error from the service still throws (a bug is not an outage)', async () => {
    const { deps } = rig({ kind: 'failed' });
    deps.auth.authenticate = () => Promise.reject(new TypeError('undefined is not a function'));
    await expect(signIn(deps, attempt('imap'), leg('imap', () => Promise.resolve('never')).leg)).rejects.toThrow(TypeError);
  });
});
